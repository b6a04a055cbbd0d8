import CVFIO
import Glibc
import VFIO

/// Page-aligned memory for device DMA, owned by this process and released (unmapped and
/// its descriptor closed) when the last reference goes away. Unmap it from every device
/// before that.
public final class DMABuffer: DMAMemory, @unchecked Sendable {
    /// How the memory is obtained.
    public enum Backing: Sendable, Equatable {
        /// A shared mapping of a memfd (`memfd_create` + `MAP_SHARED`): usable by the kernel
        /// transport and passable to a vfio-user server. The default. The memfd is sealed
        /// against shrinking, growing and further seals (F_SEAL_SHRINK | F_SEAL_GROW |
        /// F_SEAL_SEAL), so a server may map it without fearing SIGBUS (this project's
        /// server copies DMA directly only from such memfds).
        case sharedMemory
        /// Private anonymous memory (`MAP_PRIVATE | MAP_ANONYMOUS`): kernel transport only.
        case anonymous
        /// A memfd of huge pages (`MFD_HUGETLB`), sized in multiples of 2 MiB, sealed as
        /// `sharedMemory`. Needs huge pages reserved in `/proc/sys/vm/nr_hugepages`; fails
        /// with `ENOMEM` otherwise.
        case hugePages
    }

    public let baseAddress: UnsafeMutableRawPointer
    public let size: Int
    public let backing: Backing
    private let descriptor: OwnedDescriptor?

    /// The page size the buffer is aligned and sized to.
    public static func granule(for backing: Backing) -> Int {
        backing == .hugePages ? 2 << 20 : SystemCall.pageSize
    }

    /// Allocates at least `size` bytes (rounded up to the backing's page size), zeroed.
    /// - Throws: `EINVAL` for a size of 0; `ENOMEM`, `EMFILE` and the like from the system.
    public init(size requested: Int, backing: Backing = .sharedMemory, name: String = "swift-vfio-dma") throws(VFIOError) {
        guard requested > 0 else { throw .invalidArgument("DMABuffer", "size must be positive, got \(requested)") }
        let granule = DMABuffer.granule(for: backing)
        let (rounded, overflow) = requested.addingReportingOverflow(granule - 1)
        guard !overflow else { throw .invalidArgument("DMABuffer", "size \(requested) is too large") }
        size = rounded / granule * granule
        self.backing = backing
        var fd: Int32 = -1
        if backing != .anonymous {
            fd = try SystemCall.sealedMemfd(name: name, size: size, extraFlags: backing == .hugePages ? UInt32(MFD_HUGETLB) : 0)
        }
        let flags = backing == .anonymous ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, flags, fd, 0)
        if mapped == MAP_FAILED || mapped == nil {
            let code = errno
            if fd >= 0 { _ = Glibc.close(fd) }
            throw .errno("mmap", code)
        }
        baseAddress = mapped!
        descriptor = fd >= 0 ? OwnedDescriptor(fd) : nil
    }

    public var sharedDescriptor: (fd: Int32, offset: Int64)? {
        guard let descriptor else { return nil }
        return (descriptor.raw, 0)
    }

    /// The whole buffer as bytes.
    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: baseAddress, count: size)
    }

    deinit {
        munmap(baseAddress, size)
    }
}
