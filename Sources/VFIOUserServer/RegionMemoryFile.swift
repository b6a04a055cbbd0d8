import Glibc
import VFIO
import VFIODeviceKit
import VFIOSystem

/// Memory the server provides for a memory-backed region: a memfd of the region's size
/// (rounded up to pages), mapped here and passed to the client with the region info.
/// Sealed against shrinking, growing and further seals (F_SEAL_SHRINK | F_SEAL_GROW |
/// F_SEAL_SEAL): a client that truncated it would make the server's next access to the
/// region die of SIGBUS.
final class RegionMemoryFile: @unchecked Sendable {
    let descriptor: OwnedDescriptor
    let base: UnsafeMutableRawPointer
    let mappedSize: Int
    let size: Int

    init(index: UInt32, size: Int) throws(VFIOError) {
        let page = SystemCall.pageSize
        let rounded = max((size + page - 1) / page * page, page)
        let fd = try SystemCall.sealedMemfd(name: "vfio-user-region-\(index)", size: rounded)
        guard let mapped = mmap(nil, rounded, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            let code = errno
            closeDescriptor(fd)
            throw .errno("mmap", code)
        }
        descriptor = OwnedDescriptor(fd)
        base = mapped
        mappedSize = rounded
        self.size = size
    }

    var memory: RegionMemory { RegionMemory(UnsafeMutableRawBufferPointer(start: base, count: size)) }

    deinit { _ = try? SystemCall.retrying("munmap") { munmap(base, mappedSize) } }
}
