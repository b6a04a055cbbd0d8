import CVFIO
import Glibc
import VFIO

/// Helpers for calling the C library: errno capture and `EINTR` retry.
public enum SystemCall {
    /// Calls `body` until it does not fail with `EINTR`; a result of -1 becomes
    /// `VFIOError.errno(operation, errno)`.
    @discardableResult
    public static func retrying<T: FixedWidthInteger & SignedInteger>(_ operation: @autoclosure () -> String, _ body: () -> T) throws(VFIOError) -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = errno
            if code == EINTR { continue }
            throw .errno(operation(), code)
        }
    }

    /// The system page size.
    public static let pageSize: Int = Int(sysconf(Int32(_SC_PAGESIZE)))
}
