import Glibc
import Synchronization
import VFIO

/// A file descriptor this process owns: closed exactly once, by `close()` or when the last
/// reference goes away.
public final class OwnedDescriptor: Sendable {
    @usableFromInline let state: Atomic<Int32>

    /// Takes ownership of `raw` (which must be open).
    public init(_ raw: Int32) {
        precondition(raw >= 0, "an owned descriptor must be open")
        state = Atomic(raw)
    }

    /// The descriptor number, or -1 once closed.
    @inlinable public var raw: Int32 { state.load(ordering: .acquiring) }

    /// Closes the descriptor now. Later calls do nothing.
    public func close() {
        let fd = state.exchange(-1, ordering: .acquiringAndReleasing)
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// The descriptor number for a call that must not see a closed descriptor.
    /// - Throws: `EBADF` naming `operation` once closed.
    @inlinable
    public func requireOpen(_ operation: @autoclosure () -> String) throws(VFIOError) -> Int32 {
        let fd = raw
        if fd < 0 { throw .errno(operation(), EBADF) }
        return fd
    }

    deinit { close() }
}

/// Closes `fd`, ignoring the result (a descriptor that is gone either way).
@inline(__always) package func closeDescriptor(_ fd: Int32) { _ = Glibc.close(fd) }
