#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The one error type of swift-vfio.
///
/// Every failure names the operation that failed (an ioctl's C name such as
/// `VFIO_DEVICE_GET_REGION_INFO`, a struct being decoded such as `vfio_region_info`,
/// or a helper such as `vfio_set_irqs_validate_and_prepare`) and why: the errno the
/// kernel or the peer returned, or a sentence saying what was wrong with the input.
public struct VFIOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Why the operation failed.
    public enum Reason: Sendable, Equatable {
        /// A system call or the peer answered with this errno value.
        case errno(Int32)
        /// The caller passed a value the operation cannot accept; the text says which and why.
        case invalidArgument(String)
        /// Bytes to decode (from the kernel or a peer) do not form a valid structure.
        case malformed(String)
        /// The device, kernel or peer does not offer what was asked for.
        case unsupported(String)
    }

    /// What was being done: a C ioctl name, a C struct name, or a helper's name.
    public var operation: String
    public var reason: Reason

    public init(_ operation: String, _ reason: Reason) {
        self.operation = operation
        self.reason = reason
    }

    public static func errno(_ operation: String, _ code: Int32) -> VFIOError {
        VFIOError(operation, .errno(code))
    }

    public static func invalidArgument(_ operation: String, _ why: String) -> VFIOError {
        VFIOError(operation, .invalidArgument(why))
    }

    public static func malformed(_ operation: String, _ why: String) -> VFIOError {
        VFIOError(operation, .malformed(why))
    }

    public static func unsupported(_ operation: String, _ why: String) -> VFIOError {
        VFIOError(operation, .unsupported(why))
    }

    /// The errno value when the failure came from the kernel or the peer, else `nil`.
    public var errnoValue: Int32? {
        if case .errno(let code) = reason { return code }
        return nil
    }

    public var description: String {
        switch reason {
        case .errno(let code):
            return "\(operation): \(VFIOError.errnoName(code)) (\(code)): \(VFIOError.errnoText(code))"
        case .invalidArgument(let why):
            return "\(operation): invalid argument: \(why)"
        case .malformed(let why):
            return "\(operation): malformed: \(why)"
        case .unsupported(let why):
            return "\(operation): not supported: \(why)"
        }
    }

    /// The C library's text for `code` (`strerror`).
    public static func errnoText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// The symbolic name of the errno values VFIO users meet most, else `errno N`.
    public static func errnoName(_ code: Int32) -> String {
        switch code {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case ENXIO: return "ENXIO"
        case E2BIG: return "E2BIG"
        case EBADF: return "EBADF"
        case EAGAIN: return "EAGAIN"
        case ENOMEM: return "ENOMEM"
        case EACCES: return "EACCES"
        case EFAULT: return "EFAULT"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case ENODEV: return "ENODEV"
        case EINVAL: return "EINVAL"
        case ENOSPC: return "ENOSPC"
        case ENOTTY: return "ENOTTY"
        case ERANGE: return "ERANGE"
        case ENOSYS: return "ENOSYS"
        case EOPNOTSUPP: return "EOPNOTSUPP"
        case EOVERFLOW: return "EOVERFLOW"
        case ECONNRESET: return "ECONNRESET"
        case EPIPE: return "EPIPE"
        case ETIMEDOUT: return "ETIMEDOUT"
        case EPROTO: return "EPROTO"
        default: return "errno \(code)"
        }
    }
}
