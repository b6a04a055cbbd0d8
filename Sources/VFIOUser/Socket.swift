import CVFIO
import Glibc
import Synchronization
import VFIO
import VFIOSystem

@inline(__always) func closeDescriptor(_ fd: Int32) { _ = Glibc.close(fd) }

/// What one read of a message gave.
public enum VFIOUserReceived: Sendable {
    /// A whole message, with its descriptors.
    case message(VFIOUserMessage)
    /// A message was read whole (so the stream stays in step) but cannot be used: too
    /// large, too many descriptors, a header that lies. Its descriptors are closed.
    /// A command should be answered with an error reply carrying `error`'s errno.
    case rejected(VFIOUserHeader, VFIOError)
    /// The peer closed the connection at a message boundary.
    case endOfStream
}

/// A connected vfio-user stream socket (`AF_UNIX`, `SOCK_STREAM`).
///
/// `send` writes a whole message (header, payload, descriptors as SCM_RIGHTS) with one
/// `sendmsg` where the kernel takes it all, looping on short writes otherwise; it may be
/// called from several threads (messages never interleave). `receive` reads one whole
/// message, looping on short reads; it must be called from one thread at a time.
public final class VFIOUserSocket: Sendable {
    private let descriptor: OwnedDescriptor
    private let sendLock = Mutex(())

    /// Takes ownership of a connected socket.
    public init(adopting fd: Int32) {
        descriptor = OwnedDescriptor(fd)
    }

    /// The descriptor, -1 once closed.
    public var fd: Int32 { descriptor.raw }

    /// Connects to a server's socket at `path`.
    public static func connect(path: String) throws(VFIOError) -> VFIOUserSocket {
        let fd = try SystemCall.retrying("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            _ = try withUnixAddress(path, "connect") { (address: UnsafePointer<sockaddr>, length: socklen_t) throws(VFIOError) in
                try SystemCall.retrying("connect(\(path))") { Glibc.connect(fd, address, length) }
            }
        } catch {
            closeDescriptor(fd)
            throw error
        }
        return VFIOUserSocket(adopting: fd)
    }

    /// A connected pair (`socketpair(AF_UNIX, SOCK_STREAM)`).
    public static func pair() throws(VFIOError) -> (VFIOUserSocket, VFIOUserSocket) {
        var fds: [Int32] = [-1, -1]
        try SystemCall.retrying("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        }
        return (VFIOUserSocket(adopting: fds[0]), VFIOUserSocket(adopting: fds[1]))
    }

    /// Shuts both directions down: a blocked `receive` returns end of stream, later sends fail.
    public func shutdown() {
        let fd = descriptor.raw
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// Closes the descriptor.
    public func close() { descriptor.close() }

    // MARK: Sending

    /// Sends `header` (whose size must be 16 + `payload.count`), `payload` and `fds`
    /// (borrowed: the caller keeps them).
    /// - Throws: `EPIPE`/`ECONNRESET` when the peer is gone; `EINVAL` for more than
    ///   `CVFIO_MAX_FDS` descriptors.
    public func send(_ header: VFIOUserHeader, payload: [UInt8], fds: [Int32] = []) throws(VFIOError) {
        precondition(Int(header.messageSize) == VFIOUserHeader.size + payload.count, "header size does not match the payload")
        let head = header.encoded
        let fd = try descriptor.requireOpen("sendmsg")
        try sendLock.withLock { _ throws(VFIOError) in
            try head.withBytes { (h: UnsafeRawBufferPointer) throws(VFIOError) in
                try payload.withBytes { (p: UnsafeRawBufferPointer) throws(VFIOError) in
                    try Self.sendAll(fd, [h, p], fds)
                }
            }
        }
    }

    /// Builds the header for `payload` and sends.
    public func send(id: UInt16, command: UInt16, flags: VFIOUserMessageFlags, error: UInt32 = 0,
                     payload: [UInt8] = [], fds: [Int32] = []) throws(VFIOError) {
        let header = VFIOUserHeader(messageID: id, command: command,
                                    messageSize: UInt32(VFIOUserHeader.size + payload.count), flags: flags, error: error)
        try send(header, payload: payload, fds: fds)
    }

    private static func sendAll(_ fd: Int32, _ parts: [UnsafeRawBufferPointer], _ fds: [Int32]) throws(VFIOError) {
        var pieces = parts.filter { $0.count > 0 }
        var pendingFDs = fds
        while !pieces.isEmpty {
            var iov = pieces.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
            let sent = pendingFDs.withUnsafeBufferPointer { fdBuffer in
                cvfio_sendmsg_fds(fd, &iov, Int32(iov.count), fdBuffer.baseAddress, Int32(fdBuffer.count), 0)
            }
            if sent < 0 {
                let code = errno
                if code == EINTR { continue }
                throw .errno("sendmsg", code)
            }
            pendingFDs = []   // the descriptors went with the first byte
            var left = sent
            while left > 0, let first = pieces.first {
                if left >= first.count {
                    left -= first.count
                    pieces.removeFirst()
                } else {
                    pieces[0] = UnsafeRawBufferPointer(rebasing: first[left...])
                    left = 0
                }
            }
        }
    }

    // MARK: Receiving

    /// Reads one whole message.
    ///
    /// - Parameters:
    ///   - maxPayload: payloads above this are read and dropped (`.rejected` with `E2BIG`).
    ///   - maxFDs: descriptors beyond this are closed and the message is `.rejected` (`EINVAL`).
    /// - Throws: `ECONNRESET` when the stream ends inside a message; errno of `recvmsg`.
    public func receive(maxPayload: Int, maxFDs: Int) throws(VFIOError) -> VFIOUserReceived {
        let fd = try descriptor.requireOpen("recvmsg")
        var fds: [Int32] = []
        var truncatedFDs = false
        var head = [UInt8](repeating: 0, count: VFIOUserHeader.size)
        let got = try head.withMutableBytes { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int in
            try Self.readFully(fd, raw, maxFDs: maxFDs, fds: &fds, truncated: &truncatedFDs)
        }
        if got == 0 { return .endOfStream }
        if got < VFIOUserHeader.size {
            for f in fds { closeDescriptor(f) }
            throw .errno("recvmsg (stream ended inside a message header)", ECONNRESET)
        }
        var reader = ByteReader(head, context: "vfio_user_header")
        let header = VFIOUserHeader(messageID: try reader.u16(), command: try reader.u16(),
                                    messageSize: try reader.u32(),
                                    flags: VFIOUserMessageFlags(rawValue: try reader.u32()), error: try reader.u32())
        if header.messageSize < UInt32(VFIOUserHeader.size) {
            for f in fds { closeDescriptor(f) }
            return .rejected(header, .malformed("vfio_user_header", "message size \(header.messageSize) is smaller than the 16-byte header"))
        }
        let payloadSize = Int(header.messageSize) - VFIOUserHeader.size
        if payloadSize > maxPayload {
            for f in fds { closeDescriptor(f) }
            try drain(fd, payloadSize)
            return .rejected(header, .errno("\(VFIOCommandName(header.command)): message of \(header.messageSize) bytes exceeds the limit of \(maxPayload + 16)", E2BIG))
        }
        var payload = [UInt8](repeating: 0, count: payloadSize)
        if payloadSize > 0 {
            let n = try payload.withMutableBytes { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int in
                try Self.readFully(fd, raw, maxFDs: maxFDs, fds: &fds, truncated: &truncatedFDs)
            }
            if n < payloadSize {
                for f in fds { closeDescriptor(f) }
                throw .errno("recvmsg (stream ended inside a message)", ECONNRESET)
            }
        }
        if truncatedFDs {
            for f in fds { closeDescriptor(f) }
            return .rejected(header, .errno("\(VFIOCommandName(header.command)): more than \(maxFDs) descriptor(s) came with the message", EINVAL))
        }
        if header.type > 1 {
            for f in fds { closeDescriptor(f) }
            return .rejected(header, .malformed("vfio_user_header", "message type \(header.type) is neither command nor reply"))
        }
        return .message(VFIOUserMessage(header: header, payload: payload, descriptors: fds))
    }

    /// Reads until `buffer` is full or the stream ends; returns the bytes read.
    private static func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, maxFDs: Int,
                                  fds: inout [Int32], truncated: inout Bool) throws(VFIOError) -> Int {
        var done = 0
        var received = [Int32](repeating: -1, count: max(maxFDs, 1))
        while done < buffer.count {
            var iov = iovec(iov_base: buffer.baseAddress! + done, iov_len: buffer.count - done)
            var count: Int32 = 0
            var cut: Int32 = 0
            let n = received.withUnsafeMutableBufferPointer { r in
                cvfio_recvmsg_fds(fd, &iov, 1, r.baseAddress, Int32(maxFDs), &count, &cut, 0)
            }
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                for f in fds { closeDescriptor(f) }
                fds = []
                throw .errno("recvmsg", code)
            }
            for i in 0..<Int(count) {
                if fds.count < maxFDs { fds.append(received[i]) } else { closeDescriptor(received[i]); truncated = true }
            }
            if cut != 0 { truncated = true }
            if n == 0 { break }
            done += n
        }
        return done
    }

    private func drain(_ fd: Int32, _ count: Int) throws(VFIOError) {
        var left = count
        var scratch = [UInt8](repeating: 0, count: 65536)
        var fds: [Int32] = []
        var truncated = false
        while left > 0 {
            let chunk = min(left, scratch.count)
            let n = try scratch.withMutableBytes { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int in
                try Self.readFully(fd, UnsafeMutableRawBufferPointer(rebasing: raw[0..<chunk]), maxFDs: 0, fds: &fds, truncated: &truncated)
            }
            if n < chunk { throw .errno("recvmsg (stream ended inside a message)", ECONNRESET) }
            left -= n
        }
    }

    /// True when a byte (or end of stream) can be read now.
    public func hasInput() -> Bool {
        var p = pollfd(fd: descriptor.raw, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) > 0
    }
}

func VFIOCommandName(_ raw: UInt16) -> String { VFIOUserCommand.name(raw) }

/// Calls `body` with a `sockaddr_un` for `path`.
func withUnixAddress<R>(_ path: String, _ operation: String,
                        _ body: (UnsafePointer<sockaddr>, socklen_t) throws(VFIOError) -> R) throws(VFIOError) -> R {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard !bytes.isEmpty, bytes.count < capacity else {
        throw .invalidArgument(operation, "socket path '\(path)' must have 1...\(capacity - 1) bytes")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
    return try withUnsafePointer(to: &address) { (pointer: UnsafePointer<sockaddr_un>) throws(VFIOError) -> R in
        try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (p: UnsafePointer<sockaddr>) throws(VFIOError) -> R in
            try body(p, length)
        }
    }
}
