import Glibc
import VFIO
import VFIOSystem

/// Facts and texts of VFIO's no-IOMMU mode (`VFIO_NOIOMMU_IOMMU`; see
/// `ContainerIOMMUModel.noIOMMU`).
///
/// What the user must know: a device in this mode has no IOMMU between it and memory. It
/// can read and write any physical address, so a bug in the program (or the device) can
/// corrupt the kernel; the device cannot be given to a virtual machine. The kernel taints
/// itself (`TAINT_USER`) when such a device is bound and logs a warning each time one is
/// opened. Use it only where there is no IOMMU at all (e.g. a VM without a virtual IOMMU)
/// and the device is trusted.
public enum NoIOMMU {
    /// The `vfio` module's parameter that turns the mode on (`Y`/`N`); writable by root.
    public static let parameterPath = "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode"

    /// The warning a program should show its user before it opens a device this way.
    public static let warning = """
        VFIO no-IOMMU mode: the device has no IOMMU between it and memory and can read and \
        write any physical address; nothing isolates it from the kernel or other programs. \
        The kernel is tainted (TAINT_USER) and logs "vfio-noiommu device opened by user".
        """

    static let notEnabledText = """
        the kernel offers no VFIO_NOIOMMU_IOMMU: no-IOMMU mode is off (boot with \
        vfio.enable_unsafe_noiommu_mode=1 or write Y to \(parameterPath), then bind the \
        device to vfio-pci again) or the kernel lacks CONFIG_VFIO_NOIOMMU
        """

    static let groupsText = """
        no-IOMMU groups (/dev/vfio/noiommu-N) exist only for devices without an IOMMU, bound \
        to a vfio driver while enable_unsafe_noiommu_mode is on
        """

    static let noMappingText = """
        the container is in no-IOMMU mode (VFIO_NOIOMMU_IOMMU): there is no DMA mapping; \
        the device uses physical addresses (PhysicalDMAMemory gives them)
        """

    /// Whether the kernel's no-IOMMU mode is on (`parameterPath` reads `Y`); false when the
    /// parameter does not exist (a kernel without `CONFIG_VFIO_NOIOMMU`, or vfio not loaded).
    public static func isEnabled(sysfsRoot: String = "/sys") -> Bool {
        let path = sysfsRoot + parameterPath.dropFirst("/sys".count)
        return (try? Sysfs.readText(path))?.hasPrefix("Y") == true
    }

    /// Whether IOMMU group `number` is a no-IOMMU group: `/dev/vfio/noiommu-N` exists.
    public static func isNoIOMMUGroup(_ number: Int, devRoot: String = "/dev") -> Bool {
        access("\(devRoot)/vfio/noiommu-\(number)", F_OK) == 0
    }
}

/// Memory a device in a no-IOMMU container reaches by physical address: `memory` locked
/// in RAM (`mlock`) and the physical address of each of its pages, read from
/// `/proc/self/pagemap`.
///
/// What the caller must know:
/// - reading page frame numbers needs `CAP_SYS_ADMIN` (without it the kernel reads them
///   as 0, and this throws);
/// - `mlock` keeps the pages resident but does not promise they stay where they are:
///   memory compaction may move a locked page unless `vm.compact_unevictable_allowed` is
///   0 (and NUMA balancing or memory hot-remove may move it too). Long-lived DMA buffers
///   belong in huge pages, as DPDK keeps them, and a program should set that sysctl;
/// - the pages are physically contiguous only page by page: a transfer must not cross a
///   page boundary unless `contiguousBytes(from:)` says the next page follows;
/// - the device can reach all memory anyway: nothing confines it to these pages.
///
/// The pages are unlocked (`munlock`) when the last reference goes away; `memory` is kept
/// alive until then.
public final class PhysicalDMAMemory: @unchecked Sendable {
    public let memory: any DMAMemory
    /// The system page size the addresses are given in.
    public let pageSize: Int
    /// The physical address of each page of `memory`, in order.
    public let physicalAddresses: [UInt64]

    /// Locks `memory` (`mlock`) and reads its pages' physical addresses.
    /// - Throws: `mlock` errors (`ENOMEM`/`EPERM` past `RLIMIT_MEMLOCK` without
    ///   `CAP_IPC_LOCK`); `open`/`pread` errors of `/proc/self/pagemap`; `.unsupported`
    ///   when a page frame number reads 0 (no `CAP_SYS_ADMIN`) or a page is not present.
    ///   Nothing stays locked on a failure.
    public init(_ memory: any DMAMemory, system: HostSystem = .live, pagemapPath: String = "/proc/self/pagemap") throws(VFIOError) {
        let page = SystemCall.pageSize
        guard memory.size > 0, Int(bitPattern: memory.baseAddress) % page == 0 else {
            throw .invalidArgument("PhysicalDMAMemory", "the memory must start on a page boundary and not be empty")
        }
        guard mlock(memory.baseAddress, memory.size) == 0 else { throw .errno("mlock", errno) }
        do {
            physicalAddresses = try Self.physicalAddresses(of: memory, pageSize: page, system: system, pagemapPath: pagemapPath)
        } catch {
            munlock(memory.baseAddress, memory.size)
            throw error
        }
        self.memory = memory
        self.pageSize = page
    }

    deinit { munlock(memory.baseAddress, memory.size) }

    /// The physical address of byte `offset` of `memory`.
    public func physicalAddress(at offset: Int) -> UInt64 {
        precondition(offset >= 0 && offset < memory.size, "offset \(offset) lies outside the \(memory.size)-byte memory")
        return physicalAddresses[offset / pageSize] + UInt64(offset % pageSize)
    }

    /// How many bytes from `offset` on are physically contiguous (up to the end of memory).
    public func contiguousBytes(from offset: Int) -> Int {
        precondition(offset >= 0 && offset < memory.size, "offset \(offset) lies outside the \(memory.size)-byte memory")
        var index = offset / pageSize
        var bytes = pageSize - offset % pageSize
        while index + 1 < physicalAddresses.count, physicalAddresses[index + 1] == physicalAddresses[index] + UInt64(pageSize) {
            index += 1
            bytes += pageSize
        }
        return bytes
    }

    /// The pagemap entries of `memory`'s pages, as physical addresses.
    static func physicalAddresses(of memory: any DMAMemory, pageSize: Int, system: HostSystem, pagemapPath: String) throws(VFIOError) -> [UInt64] {
        let ioctl = Ioctl(system: system)
        let fd = OwnedDescriptor(try ioctl.open(pagemapPath, O_RDONLY))
        let pages = memory.size / pageSize + (memory.size % pageSize == 0 ? 0 : 1)
        var raw = [UInt8](repeating: 0, count: pages * PagemapEntry.size)
        let start = PagemapEntry.fileOffset(of: UInt64(UInt(bitPattern: memory.baseAddress)), pageSize: UInt64(pageSize))
        var done = 0
        while done < raw.count {
            let got = try raw.withMutableBytes { (buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int in
                try SystemCall.retryingNegatedErrno("pread(\(pagemapPath))") {
                    system.pread(fd.raw, UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), Int64(start) + Int64(done))
                }
            }
            if got == 0 { throw .errno("pread(\(pagemapPath))", EIO) }
            done += got
        }
        var reader = ByteReader(raw, context: "pagemap")
        var result: [UInt64] = []
        for index in 0..<pages {
            let entry = PagemapEntry(rawValue: try reader.u64())
            guard let frame = entry.frameNumber else {
                throw .unsupported("pread(\(pagemapPath))", "page \(index) of the memory is not present in RAM (entry 0x\(String(entry.rawValue, radix: 16)))")
            }
            guard frame != 0 else {
                throw .unsupported("pread(\(pagemapPath))", "the kernel hides page frame numbers (they read 0): reading physical addresses needs CAP_SYS_ADMIN")
            }
            result.append(frame * UInt64(pageSize))
        }
        return result
    }
}
