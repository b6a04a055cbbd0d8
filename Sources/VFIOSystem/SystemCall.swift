import CVFIO
import Glibc
import VFIO

/// The one way this package calls the C library and the kernel: `retrying` and its two
/// variants retry `EINTR` and turn a failure into a typed `VFIOError` naming the call and
/// its errno. Nothing else loops on `EINTR`.
///
/// - `retrying`: a call that returns -1 and sets `errno` on failure;
/// - `retryingUnlessWouldBlock`: the same for a non-blocking call, for which `EAGAIN` /
///   `EWOULDBLOCK` (no data, no room) is an answer, not a failure;
/// - `retryingNegatedErrno`: a call that returns `-errno` on failure (the kernel's own
///   convention, and that of `HostSystem`'s injectable calls).
///
/// All three are inlined into their callers: the socket's message paths pay for the call
/// itself and one comparison.
public enum SystemCall {
    /// Calls `body` until it does not fail with `EINTR`; returns its result, or throws
    /// `VFIOError.errno(operation, errno)` when it returned -1.
    @inlinable @inline(__always) @discardableResult
    public static func retrying<T: FixedWidthInteger & SignedInteger>(_ operation: @autoclosure () -> String, _ body: () -> T) throws(VFIOError) -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = errno
            if code == EINTR { continue }
            throw .errno(operation(), code)
        }
    }

    /// `retrying` for a non-blocking call (`MSG_DONTWAIT`, `O_NONBLOCK`): returns `nil`
    /// when it failed with `EAGAIN` or `EWOULDBLOCK` (nothing to read, no room to write;
    /// a blocking socket call also gets it when `SO_SNDTIMEO` / `SO_RCVTIMEO` passed).
    @inlinable @inline(__always)
    public static func retryingUnlessWouldBlock<T: FixedWidthInteger & SignedInteger>(_ operation: @autoclosure () -> String,
                                                                                       _ body: () -> T) throws(VFIOError) -> T? {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return nil }
            throw .errno(operation(), code)
        }
    }

    /// `retrying` for a call that returns `-errno` on failure: calls `body` until it does
    /// not return `-EINTR`; returns a result >= 0, or throws `VFIOError.errno(operation,
    /// -result)` for any other negative one.
    @inlinable @inline(__always) @discardableResult
    public static func retryingNegatedErrno<T: FixedWidthInteger & SignedInteger>(_ operation: @autoclosure () -> String,
                                                                                   _ body: () -> T) throws(VFIOError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            if result == -T(EINTR) { continue }
            throw .errno(operation(), Int32(truncatingIfNeeded: -result))
        }
    }

    /// The system page size.
    public static let pageSize: Int = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// A memfd of `size` bytes (`memfd_create` with `MFD_CLOEXEC | MFD_ALLOW_SEALING` and
    /// `extraFlags`, e.g. `MFD_HUGETLB`), sealed against shrinking, growing and further
    /// seals (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), so that a process it is passed
    /// to cannot truncate it under another's mapping (whose next access would die of
    /// SIGBUS). The caller owns the descriptor; nothing is left open on a throw.
    /// - Throws: errno of `memfd_create`, `ftruncate` (`EINVAL` for a size the huge page
    ///   size does not divide) or `F_ADD_SEALS`.
    public static func sealedMemfd(name: String, size: Int, extraFlags: UInt32 = 0) throws(VFIOError) -> Int32 {
        let fd = try retrying("memfd_create") { cvfio_memfd_create(name, UInt32(MFD_CLOEXEC | MFD_ALLOW_SEALING) | extraFlags) }
        do {
            try retrying("ftruncate") { ftruncate(fd, off_t(size)) }
            try retrying("F_ADD_SEALS") { cvfio_add_seals(fd, UInt32(CVFIO_F_SEAL_SHRINK | CVFIO_F_SEAL_GROW | CVFIO_F_SEAL_SEAL)) }
        } catch {
            closeDescriptor(fd)
            throw error
        }
        return fd
    }
}
