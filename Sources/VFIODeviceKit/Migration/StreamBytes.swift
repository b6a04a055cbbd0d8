import Glibc
import VFIO

/// The bytes of a resuming stream as they arrive: storage that grows at the end and can be
/// written in place (a socket read straight into it), unlike an array, which must
/// initialize what it appends.
///
/// Capacity doubles (from 64 KiB), so a stream of n bytes costs its n bytes of copying
/// once more at most. Not thread-safe: the driver's lock guards it.
final class StreamBytes: @unchecked Sendable {
    private let allocator: any BufferAllocator
    private var storage: UnsafeMutableRawPointer?
    /// Whether `storage` came from the heap because `allocator` had none.
    private var storageFromHeap = false
    private var capacity = 0
    /// The bytes held.
    private(set) var count = 0

    init(allocator: any BufferAllocator = HeapBufferAllocator()) {
        self.allocator = allocator
    }

    deinit { release() }

    private func release() {
        guard let storage else { return }
        if storageFromHeap { storage.deallocate() } else { allocator.deallocate(storage, byteCount: capacity) }
    }

    /// The bytes held, valid until the next change.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage, count: count) }

    /// Appends `length` bytes that `fill` writes in place. They count only when `fill`
    /// returns; when it throws, nothing is appended.
    func append(length: Int, _ fill: (UnsafeMutableRawBufferPointer) throws(VFIOError) -> Void) throws(VFIOError) {
        guard length > 0 else {
            try fill(UnsafeMutableRawBufferPointer(start: nil, count: 0))
            return
        }
        reserve(length)
        try fill(UnsafeMutableRawBufferPointer(start: storage! + count, count: length))
        count += length
    }

    /// Makes room for `total` bytes in all (nothing when there is room already), so that
    /// appending up to there copies nothing.
    func reserve(total: Int) {
        if total > capacity { reallocate(total) }
    }

    /// `reserve(total:)`, and the memory up to `total` faulted in now
    /// (`MADV_POPULATE_WRITE`, or a write to every page where the kernel refuses it), so
    /// that appending there later takes no page fault.
    func prepare(total: Int) {
        reserve(total: total)
        guard let storage, total > count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: storage + count) + page - 1) / page * page
        let end = Int(bitPattern: storage + total)
        guard end > start else { return }
        if madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_POPULATE_WRITE) == 0 { return }
        var at = start
        while at < end {
            UnsafeMutableRawPointer(bitPattern: at)!.storeBytes(of: 0, as: UInt8.self)
            at += page
        }
    }

    private func reserve(_ more: Int) {
        let needed = count + more
        guard needed > capacity else { return }
        var grown = max(capacity * 2, 64 << 10)
        while grown < needed { grown *= 2 }
        reallocate(grown)
    }

    private func reallocate(_ grown: Int) {
        let given = allocator.allocate(byteCount: grown)
        let fresh = given ?? UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 64)
        if let storage { fresh.copyMemory(from: storage, byteCount: count) }
        release()
        storage = fresh
        storageFromHeap = given == nil
        capacity = grown
    }
}
