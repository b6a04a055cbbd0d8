import Glibc
import VFIODeviceKit
import VFIOUserWire
import VFIOSystem

/// The memory a server's device kit keeps large buffers in (a resuming migration
/// stream): anonymous private mappings advised for transparent huge pages
/// (`MADV_HUGEPAGE`), so that taking in a stream of tens of MiB faults in 2 MiB at a time
/// instead of 4 KiB (where the kernel has no transparent huge pages, the advice is
/// refused and the mapping keeps small pages). `nil` when `mmap` fails: the kit then takes
/// heap memory.
struct MappedBufferAllocator: BufferAllocator {
    func allocate(byteCount: Int) -> UnsafeMutableRawPointer? {
        guard byteCount > 0 else { return nil }
        let raw = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let raw, raw != MAP_FAILED else { return nil }
        _ = try? SystemCall.retrying("madvise") { madvise(raw, byteCount, MADV_HUGEPAGE) }
        return raw
    }

    func deallocate(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        _ = try? SystemCall.retrying("munmap") { munmap(pointer, byteCount) }
    }
}
