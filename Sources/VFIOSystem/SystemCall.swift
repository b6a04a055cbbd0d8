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

    /// A memfd of `size` bytes (`memfd_create` with `MFD_CLOEXEC | MFD_ALLOW_SEALING` and
    /// `extraFlags`, e.g. `MFD_HUGETLB`), sealed against shrinking, growing and further
    /// seals (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), so that a process it is passed
    /// to cannot truncate it under another's mapping (whose next access would die of
    /// SIGBUS). The caller owns the descriptor; nothing is left open on a throw.
    /// - Throws: errno of `memfd_create`, `ftruncate` (`EINVAL` for a size the huge page
    ///   size does not divide) or `F_ADD_SEALS`.
    public static func sealedMemfd(name: String, size: Int, extraFlags: UInt32 = 0) throws(VFIOError) -> Int32 {
        let fd = try retrying("memfd_create") { cvfio_memfd_create(name, UInt32(MFD_CLOEXEC | MFD_ALLOW_SEALING) | extraFlags) }
        if ftruncate(fd, off_t(size)) != 0 {
            let code = errno
            _ = Glibc.close(fd)
            throw .errno("ftruncate", code)
        }
        if cvfio_add_seals(fd, UInt32(CVFIO_F_SEAL_SHRINK | CVFIO_F_SEAL_GROW | CVFIO_F_SEAL_SEAL)) != 0 {
            let code = errno
            _ = Glibc.close(fd)
            throw .errno("F_ADD_SEALS", code)
        }
        return fd
    }
}
