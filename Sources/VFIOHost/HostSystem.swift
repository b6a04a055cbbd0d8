import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// The system calls the kernel transport makes, as closures, so tests can inject errno
/// values (`EINTR`, `ENOSPC`, `EINVAL`, ...) without a device.
///
/// Every closure returns what the system call returns on success and `-errno` on failure
/// (the kernel's own convention), so an injected failure is just a negative number.
/// `HostSystem.live` calls the C library.
public struct HostSystem: Sendable {
    /// `open(path, flags | O_CLOEXEC)`: the descriptor, or `-errno`.
    public var open: @Sendable (_ path: String, _ flags: Int32) -> Int32
    /// `ioctl(fd, request, pointer)`: the result, or `-errno`.
    public var ioctlPointer: @Sendable (_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) -> Int32
    /// `ioctl(fd, request, value)` with an integer argument: the result, or `-errno`.
    public var ioctlValue: @Sendable (_ fd: Int32, _ request: UInt, _ value: UInt) -> Int32
    /// `pread(fd, buffer, count, offset)`: the bytes read, or `-errno`.
    public var pread: @Sendable (_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, _ offset: Int64) -> Int
    /// `pwrite(fd, buffer, count, offset)`: the bytes written, or `-errno`.
    public var pwrite: @Sendable (_ fd: Int32, _ buffer: UnsafeRawBufferPointer, _ offset: Int64) -> Int
    /// `read(fd, buffer, count)` (a stream such as a migration `data_fd`): the bytes read, or `-errno`.
    public var read: @Sendable (_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int
    /// `write(fd, buffer, count)` (a stream such as a migration `data_fd`): the bytes written, or `-errno`.
    public var write: @Sendable (_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Int

    public init(
        open: @escaping @Sendable (String, Int32) -> Int32,
        ioctlPointer: @escaping @Sendable (Int32, UInt, UnsafeMutableRawPointer?) -> Int32,
        ioctlValue: @escaping @Sendable (Int32, UInt, UInt) -> Int32,
        pread: @escaping @Sendable (Int32, UnsafeMutableRawBufferPointer, Int64) -> Int,
        pwrite: @escaping @Sendable (Int32, UnsafeRawBufferPointer, Int64) -> Int,
        read: @escaping @Sendable (Int32, UnsafeMutableRawBufferPointer) -> Int = HostSystem.liveRead,
        write: @escaping @Sendable (Int32, UnsafeRawBufferPointer) -> Int = HostSystem.liveWrite
    ) {
        self.open = open
        self.ioctlPointer = ioctlPointer
        self.ioctlValue = ioctlValue
        self.pread = pread
        self.pwrite = pwrite
        self.read = read
        self.write = write
    }

    /// `read(2)` from the C library.
    public static let liveRead: @Sendable (Int32, UnsafeMutableRawBufferPointer) -> Int = { fd, buffer in
        let result = Glibc.read(fd, buffer.baseAddress, buffer.count)
        return result >= 0 ? result : -Int(errno)
    }

    /// `write(2)` from the C library.
    public static let liveWrite: @Sendable (Int32, UnsafeRawBufferPointer) -> Int = { fd, buffer in
        let result = Glibc.write(fd, buffer.baseAddress, buffer.count)
        return result >= 0 ? result : -Int(errno)
    }

    /// The C library.
    public static let live = HostSystem(
        open: { path, flags in
            let fd = Glibc.open(path, flags | O_CLOEXEC)
            return fd >= 0 ? fd : -errno
        },
        ioctlPointer: { fd, request, argument in
            let result = cvfio_ioctl_ptr(fd, request, argument)
            return result >= 0 ? result : -errno
        },
        ioctlValue: { fd, request, value in
            let result = cvfio_ioctl_int(fd, request, value)
            return result >= 0 ? result : -errno
        },
        pread: { fd, buffer, offset in
            let result = Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
            return result >= 0 ? result : -Int(errno)
        },
        pwrite: { fd, buffer, offset in
            let result = Glibc.pwrite(fd, buffer.baseAddress, buffer.count, off_t(offset))
            return result >= 0 ? result : -Int(errno)
        }
    )
}

/// The ioctl layer: every ioctl the transport makes goes through here, named by its C
/// name, and through `SystemCall.retryingNegatedErrno`: `EINTR` is retried; any other
/// failure becomes `VFIOError.errno(name, code)`.
struct Ioctl: Sendable {
    let system: HostSystem

    /// An ioctl whose argument is `bytes` (read and written in place, also on failure:
    /// the kernel may write a needed size before failing with `ENOSPC`).
    @discardableResult
    func call(_ name: String, _ fd: Int32, _ request: UInt, _ bytes: inout [UInt8]) throws(VFIOError) -> Int32 {
        try SystemCall.retryingNegatedErrno(name) { bytes.withUnsafeMutableBytes { system.ioctlPointer(fd, request, $0.baseAddress) } }
    }

    /// An ioctl whose argument is an integer (or none: pass 0).
    @discardableResult
    func call(_ name: String, _ fd: Int32, _ request: UInt, value: UInt = 0) throws(VFIOError) -> Int32 {
        try SystemCall.retryingNegatedErrno(name) { system.ioctlValue(fd, request, value) }
    }

    /// An ioctl with a raw pointer argument the caller keeps alive.
    @discardableResult
    func call(_ name: String, _ fd: Int32, _ request: UInt, pointer: UnsafeMutableRawPointer) throws(VFIOError) -> Int32 {
        try SystemCall.retryingNegatedErrno(name) { system.ioctlPointer(fd, request, pointer) }
    }

    /// A query with an `argsz` reply, retried once with the size the kernel asks for
    /// (through a larger `argsz` in the reply, or `ENOSPC`).
    func query(_ name: String, _ fd: Int32, _ request: UInt, _ bytes: [UInt8],
               neededSize: ([UInt8]) -> Int = ArgszRetry.statedArgsz) throws(VFIOError) -> [UInt8] {
        try ArgszRetry.run(name, request: bytes, neededSize: neededSize) { (buffer: inout [UInt8]) throws(VFIOError) in
            try call(name, fd, request, &buffer)
        }
    }

    /// Opens `path`, retrying `EINTR`; the descriptor is owned by the caller.
    func open(_ path: String, _ flags: Int32 = O_RDWR) throws(VFIOError) -> Int32 {
        try SystemCall.retryingNegatedErrno("open(\(path))") { system.open(path, flags) }
    }
}
