import VFIO

/// Where the kit takes memory for the large buffers it keeps for a device: the bytes of a
/// resuming migration stream, which can be as large as the device's state. A server
/// passes one that suits its platform (`AttachedDevice(model:context:bufferAllocator:)`),
/// e.g. memory backed by huge pages, which faults in hundreds of times less often than
/// heap memory of the same size: on a machine where every page fault is slow, that
/// decides how fast a stream can be taken in.
public protocol BufferAllocator: Sendable {
    /// `byteCount` bytes (more than 0), 64-byte aligned, contents unspecified; `nil` when
    /// the memory cannot be had (the kit then takes heap memory).
    func allocate(byteCount: Int) -> UnsafeMutableRawPointer?
    /// Gives back memory from `allocate` with the count it was asked for.
    func deallocate(_ pointer: UnsafeMutableRawPointer, byteCount: Int)
}

/// Heap memory (`UnsafeMutableRawPointer.allocate`): the default.
public struct HeapBufferAllocator: BufferAllocator {
    public init() {}

    public func allocate(byteCount: Int) -> UnsafeMutableRawPointer? {
        UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
    }

    public func deallocate(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        pointer.deallocate()
    }
}
