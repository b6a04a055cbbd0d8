import CVFIO
import Glibc
import Synchronization
import VFIO
import VFIOSystem


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
    let descriptor: OwnedDescriptor
    /// Held while a message goes out, so that messages never interleave. A `Monitor`'s
    /// mutex, not a `Synchronization.Mutex`: that one spins (1000 `pause`s) before it
    /// sleeps, and with more senders than CPUs the spinner burns the time the holder
    /// needs to finish its send (measured: 16 threads sending on one CPU ran at a third
    /// of the rate).
    private let sendLock = Monitor(())
    /// Bytes read ahead (`receive`, one reader at a time).
    @usableFromInline let inbox = Inbox()
    /// The send limit in nanoseconds (`setTimeouts`; 0: none).
    let sendLimit = Atomic<UInt64>(0)
    /// The `SocketTimeout` that ended the connection (0: none).
    let fired = Atomic<UInt8>(0)

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
    /// (borrowed: the caller keeps them), blocking while the socket is full.
    /// - Throws: `EPIPE`/`ECONNRESET` when the peer is gone; `EINVAL` for more than
    ///   `CVFIO_MAX_FDS` descriptors; `ETIMEDOUT` when the send limit (`setTimeouts`)
    ///   passed with no room (the socket is then shut down).
    public func send(_ header: VFIOUserHeader, payload: [UInt8], fds: [Int32] = []) throws(VFIOError) {
        try payload.withBytes { (p: UnsafeRawBufferPointer) throws(VFIOError) in
            try send(header, p, fds: fds)
        }
    }

    /// Builds the header for `payload` and sends (blocking while the socket is full).
    public func send(id: UInt16, command: UInt16, flags: VFIOUserMessageFlags, error: UInt32 = 0,
                     payload: [UInt8] = [], fds: [Int32] = []) throws(VFIOError) {
        let header = VFIOUserHeader(messageID: id, command: command,
                                    messageSize: UInt32(VFIOUserHeader.size + payload.count), flags: flags, error: error)
        try send(header, payload: payload, fds: fds)
    }

    /// Sends `header` and a payload in up to two pieces (`first`, then `second`) with one
    /// `sendmsg` where the kernel takes it all: the payload is gathered from where it lies,
    /// not copied into one buffer first. The header's size must be 16 + both counts.
    /// Blocks while the socket is full (throws as `send(_:payload:fds:)`).
    public func send(_ header: VFIOUserHeader, _ first: UnsafeRawBufferPointer,
                     _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                     fds: [Int32] = []) throws(VFIOError) {
        // A blocking send sees EAGAIN only when SO_SNDTIMEO passed with no room.
        try transmit(header, first, second, fds: fds, dontWait: false,
                     whenFull: { () throws(VFIOError) in throw sendTimedOut("sendmsg") })
    }

    /// Sends `bytes`, one or more whole messages already framed, non-blocking as
    /// `transmit` with `dontWait` (no descriptors).
    package func sendStream(_ bytes: UnsafeRawBufferPointer, whenFull: () throws(VFIOError) -> Void) throws(VFIOError) {
        let fd = try descriptor.requireOpen("send")
        try sendLock.withLock { (_: inout ()) throws(VFIOError) in
            try Self.sendAll(fd, bytes, flags: Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT), whenFull: whenFull)
        }
    }

    /// Sends `header` and a payload in up to two pieces (`first`, then `second`): the one
    /// implementation of the sends. A message of at most 128 bytes without descriptors is
    /// copied into one buffer and goes out with `send` (no iovec to import); anything else
    /// with one `sendmsg` where the kernel takes it all, gathered from where it lies.
    /// With `dontWait` (`MSG_DONTWAIT`), `whenFull` is called each time the socket cannot
    /// take more, and must return once it may (it waits for `POLLOUT`, and may read the
    /// socket meanwhile); what it throws ends the send. Without, it is called when a
    /// blocking send found no room within `SO_SNDTIMEO`. (Non-escaping closures: the
    /// request path allocates nothing for them.) `whenSendLockBusy` runs before this
    /// waits for another thread's send to end.
    package func transmit(_ header: VFIOUserHeader, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer,
                          fds: [Int32], dontWait: Bool, whenSendLockBusy: () -> Void = {},
                          whenFull: () throws(VFIOError) -> Void) throws(VFIOError) {
        let total = VFIOUserHeader.size + first.count + second.count
        precondition(Int(header.messageSize) == total, "header size does not match the payload")
        let fd = try descriptor.requireOpen("sendmsg")
        let flags = Int32(MSG_NOSIGNAL) | (dontWait ? Int32(MSG_DONTWAIT) : 0)
        if fds.isEmpty && total <= 128 {
            try withUnsafeTemporaryAllocation(byteCount: 128, alignment: 16) { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in
                header.store(into: raw)
                if first.count > 0 { copyBytes(raw.baseAddress! + 16, first.baseAddress!, first.count) }
                if second.count > 0 { copyBytes(raw.baseAddress! + 16 + first.count, second.baseAddress!, second.count) }
                try sendLock.withLock(whenContended: whenSendLockBusy) { (_: inout ()) throws(VFIOError) in
                    try Self.sendAll(fd, UnsafeRawBufferPointer(rebasing: raw[0..<total]), flags: flags, whenFull: whenFull)
                }
            }
            return
        }
        var head = (UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &head) { header.store(into: $0) }
        try withUnsafeBytes(of: &head) { (h: UnsafeRawBufferPointer) throws(VFIOError) in
            try sendLock.withLock(whenContended: whenSendLockBusy) { (_: inout ()) throws(VFIOError) in
                try Self.sendAll(fd, h, first, second, fds, flags: flags, whenFull: whenFull)
            }
        }
    }

    /// Sends all of `bytes` with `send`, calling `whenFull` whenever the socket is full.
    private static func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, flags: Int32,
                                whenFull: () throws(VFIOError) -> Void) throws(VFIOError) {
        var done = 0
        while done < bytes.count {
            if let sent = try SystemCall.retryingUnlessWouldBlock("send", { cvfio_send(fd, bytes.baseAddress! + done, bytes.count - done, flags) }) {
                done += sent
            } else {
                try whenFull()
            }
        }
    }

    /// Sends all of `a`, `b` and `c` with `sendmsg`, `fds` with the first byte, calling
    /// `whenFull` whenever the socket is full.
    private static func sendAll(_ fd: Int32, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, _ c: UnsafeRawBufferPointer,
                                _ fds: [Int32], flags: Int32, whenFull: () throws(VFIOError) -> Void) throws(VFIOError) {
        var iov = (iovec(), iovec(), iovec())
        var pendingFDs = fds
        try withUnsafeMutableBytes(of: &iov) { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in
            let vector = raw.bindMemory(to: iovec.self)
            var count = 0
            func add(_ piece: UnsafeRawBufferPointer) {
                guard piece.count > 0 else { return }
                vector[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: piece.baseAddress), iov_len: piece.count)
                count += 1
            }
            add(a)
            add(b)
            add(c)
            var first = 0
            while first < count {
                let sent = try SystemCall.retryingUnlessWouldBlock("sendmsg") {
                    pendingFDs.withUnsafeBufferPointer { fdBuffer in
                        cvfio_sendmsg_fds(fd, vector.baseAddress! + first, Int32(count - first), fdBuffer.baseAddress,
                                          Int32(fdBuffer.count), flags)
                    }
                }
                guard var left = sent else {
                    try whenFull()
                    continue
                }
                pendingFDs = []   // the descriptors went with the first byte
                while left > 0 && first < count {
                    if left >= vector[first].iov_len {
                        left -= vector[first].iov_len
                        first += 1
                    } else {
                        vector[first].iov_base = vector[first].iov_base! + left
                        vector[first].iov_len -= left
                        left = 0
                    }
                }
            }
        }
    }

    // MARK: Receiving

    /// Reads one whole message.
    ///
    /// Reads ahead: one `recvmsg` takes up to 8 KiB into a buffer, so a small message
    /// (header and payload) costs one system call, and pipelined messages may come several
    /// at once; a larger payload's remainder is read straight into the message. The kernel
    /// hands descriptors over with the bytes of the `sendmsg` that carried them and ends
    /// the read there, so descriptors go with the message holding the last byte of the
    /// read that brought them (peers send a message's descriptors with its first byte).
    /// Callers that poll the descriptor must first take the messages already read:
    /// `hasBufferedMessage`.
    ///
    /// - Parameters:
    ///   - maxPayload: payloads above this are read and dropped (`.rejected` with `E2BIG`).
    ///   - maxFDs: descriptors beyond this are closed and the message is `.rejected` (`EINVAL`).
    /// - Throws: `ECONNRESET` when the stream ends inside a message; `ETIMEDOUT` when the
    ///   partial-message limit (`setTimeouts`) passed inside a message; errno of `recvmsg`.
    public func receive(maxPayload: Int, maxFDs: Int) throws(VFIOError) -> VFIOUserReceived {
        guard let header = try receiveHeader(maxFDs: maxFDs) else { return .endOfStream }
        return try receiveBody(header, maxPayload: maxPayload, maxFDs: maxFDs)
    }

    /// The first step of reading a message in parts: reads its 16-byte header. Then read
    /// the payload with `receivePayload(into:)` (any number of times, in order) and finish
    /// with `finishMessage`, or take the rest with `receiveBody`. Returns `nil` at end of
    /// stream (at a message boundary).
    /// - Parameter plain: read ahead with `recv` instead of `recvmsg` (cheaper: no
    ///   message header to copy in and out), for a reader that knows no descriptor may
    ///   come with any byte it reads: descriptors that come anyway are closed by the
    ///   kernel, never received.
    /// - Throws: `ECONNRESET` when the stream ends inside the header; `ETIMEDOUT` when the
    ///   partial-message limit (`setTimeouts`) passed inside the header; errno of `recvmsg`.
    package func receiveHeader(maxFDs: Int, plain: Bool = false) throws(VFIOError) -> VFIOUserHeader? {
        let fd = try descriptor.requireOpen("recvmsg")
        let box = inbox
        guard box.payloadLeft == 0 else {
            throw .errno("recvmsg (the previous message was not read to its end)", EPROTO)
        }
        box.deadline.reset()
        while box.count < VFIOUserHeader.size {
            // Waiting for a message to begin blocks; inside one the wait is bounded.
            let n = try box.fill(fd, maxFDs: maxFDs, plain: plain, dontWait: box.count > 0 && box.deadline.bounded)
            if n < 0 {
                try waitForMore(fd)
                continue
            }
            if n == 0 {
                if box.count == 0 && box.batches.isEmpty { return nil }
                box.closeAll()
                throw .errno("recvmsg (stream ended inside a message header)", ECONNRESET)
            }
        }
        let header = VFIOUserHeader(loading: box.storage + box.start)
        box.messageEnd = box.position + UInt64(max(header.messageSize, UInt32(VFIOUserHeader.size)))
        box.consume(VFIOUserHeader.size)
        box.payloadLeft = Int(header.messageSize) - VFIOUserHeader.size
        if box.payloadLeft < 0 { box.payloadLeft = 0 }
        return header
    }

    /// True when descriptors came with the bytes of the current message read so far (peers
    /// send a message's descriptors with its first byte).
    @inlinable @inline(__always)
    package var currentMessageHasDescriptors: Bool {
        let box = inbox
        return !box.late.isEmpty || box.batches.contains { $0.mark < box.messageEnd }
    }

    /// Reads the next `buffer.count` bytes of the current message's payload into `buffer`
    /// (from what was read ahead, the rest straight from the socket).
    /// - Throws: `ECONNRESET` when the stream ends first; errno of `recvmsg`.
    @inlinable @inline(__always)
    package func receivePayload(into buffer: UnsafeMutableRawBufferPointer, maxFDs: Int) throws(VFIOError) {
        let box = inbox
        precondition(buffer.count <= box.payloadLeft, "reading past the message")
        // All of it read ahead (every small message): a copy, no call.
        if buffer.count <= box.count {
            if buffer.count > 0 { copyBytes(buffer.baseAddress!, box.storage + box.start, buffer.count) }
            box.consume(buffer.count)
            box.payloadLeft -= buffer.count
            return
        }
        try receivePayloadFromSocket(into: buffer, maxFDs: maxFDs)
    }

    /// `receivePayload` for a buffer larger than what was read ahead.
    @usableFromInline
    func receivePayloadFromSocket(into buffer: UnsafeMutableRawBufferPointer, maxFDs: Int) throws(VFIOError) {
        let box = inbox
        let fd = try descriptor.requireOpen("recvmsg")
        let buffered = box.count
        if buffered > 0 { buffer.baseAddress!.copyMemory(from: box.storage + box.start, byteCount: buffered) }
        box.consume(buffered)
        box.payloadLeft -= buffered
        let rest = UnsafeMutableRawBufferPointer(rebasing: buffer[buffered...])
        let n = try readFully(fd, rest, maxFDs: maxFDs, fds: &box.late, truncated: &box.lateTruncated)
        box.payloadLeft -= n
        box.base += UInt64(n)
        if n < rest.count {
            box.payloadLeft = 0
            box.closeMessageDescriptors()
            throw .errno("recvmsg (stream ended inside a message)", ECONNRESET)
        }
    }

    /// Reads and drops the rest of the current message's payload.
    @inlinable @inline(__always)
    package func skipPayload() throws(VFIOError) {
        if inbox.payloadLeft == 0 { return }
        try skipPayloadSlowly()
    }

    @usableFromInline
    func skipPayloadSlowly() throws(VFIOError) {
        let box = inbox
        let buffered = min(box.count, box.payloadLeft)
        box.consume(buffered)
        box.payloadLeft -= buffered
        guard box.payloadLeft > 0 else { return }
        let fd = try descriptor.requireOpen("recvmsg")
        let left = box.payloadLeft
        box.payloadLeft = 0
        try drain(fd, left, fds: &box.late, truncated: &box.lateTruncated)
        box.base += UInt64(left)
    }

    /// Ends the current message when no descriptor came with it (the common case: then
    /// there is nothing to collect) and returns true; false means `finishMessage` must be
    /// called.
    @inlinable @inline(__always)
    package func finishMessageWithoutDescriptors() -> Bool {
        let box = inbox
        return box.payloadLeft == 0 && box.late.isEmpty && !box.lateTruncated
            && (box.batches.isEmpty || box.batches[0].mark >= box.messageEnd)
    }

    /// Ends the current message (its payload read or skipped): its descriptors, or an
    /// error (`EINVAL`) when more than `maxFDs` came (then none are kept open).
    package func finishMessage(maxFDs: Int, command: UInt16) -> Result<[Int32], VFIOError> {
        let box = inbox
        precondition(box.payloadLeft == 0, "finishMessage before the payload was read")
        if finishMessageWithoutDescriptors() { return .success([]) }
        var (fds, truncated) = box.take(before: box.messageEnd)
        fds += box.late
        truncated = truncated || box.lateTruncated
        box.late = []
        box.lateTruncated = false
        if fds.count > maxFDs { truncated = true }
        if truncated {
            for f in fds { closeDescriptor(f) }
            return .failure(.errno("\(VFIOUserCommand.name(command)): more than \(maxFDs) descriptor(s) came with the message", EINVAL))
        }
        return .success(fds)
    }

    /// The rest of a message whose header `receiveHeader` returned: its payload into a new
    /// array (or dropped when above `maxPayload`) and its descriptors.
    package func receiveBody(_ header: VFIOUserHeader, maxPayload: Int, maxFDs: Int) throws(VFIOError) -> VFIOUserReceived {
        if header.messageSize < UInt32(VFIOUserHeader.size) {
            if case .success(let fds) = finishMessage(maxFDs: maxFDs, command: header.command) { for f in fds { closeDescriptor(f) } }
            return .rejected(header, .malformed("vfio_user_header", "message size \(header.messageSize) is smaller than the 16-byte header"))
        }
        let payloadSize = inbox.payloadLeft
        if payloadSize > maxPayload {
            try skipPayload()
            if case .success(let fds) = finishMessage(maxFDs: maxFDs, command: header.command) { for f in fds { closeDescriptor(f) } }
            return .rejected(header, .errno("\(VFIOUserCommand.name(header.command)): message of \(header.messageSize) bytes exceeds the limit of \(maxPayload + 16)", E2BIG))
        }
        var failure: VFIOError?
        // No payload: `[]`. (`Array(unsafeUninitializedCapacity: 0)` stores the count into
        // the shared empty-array storage, a write ThreadSanitizer reports as a race
        // between any two threads receiving or sending empty payloads.)
        let payload = payloadSize == 0 ? [] : [UInt8](unsafeUninitializedCapacity: payloadSize) { raw, initialized in
            do throws(VFIOError) {
                try receivePayload(into: UnsafeMutableRawBufferPointer(raw), maxFDs: maxFDs)
            } catch {
                failure = error
            }
            initialized = failure == nil ? payloadSize : 0
        }
        if let failure { throw failure }
        switch finishMessage(maxFDs: maxFDs, command: header.command) {
        case .failure(let error):
            return .rejected(header, error)
        case .success(let fds):
            if header.type > 1 {
                for f in fds { closeDescriptor(f) }
                return .rejected(header, .malformed("vfio_user_header", "message type \(header.type) is neither command nor reply"))
            }
            return .message(VFIOUserMessage(header: header, payload: payload, descriptors: fds))
        }
    }

    /// True when a whole message has been read ahead and waits in the buffer (the
    /// descriptor will not poll readable for it). Reader thread only.
    @inlinable @inline(__always)
    public var hasBufferedMessage: Bool {
        let box = inbox
        guard box.count >= VFIOUserHeader.size else { return false }
        let size = UInt32(littleEndian: (box.storage + box.start).loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        return Int(size) <= box.count || size < UInt32(VFIOUserHeader.size)
    }

    /// Waits until `fd` is readable (after a read inside a message found nothing), at most
    /// for what is left of the partial-message limit (`setTimeouts`). The caller then
    /// reads again.
    /// - Throws: `ETIMEDOUT` when the limit has passed (the socket is then shut down);
    ///   errno of `poll`.
    private func waitForMore(_ fd: Int32) throws(VFIOError) {
        let left = try partialMessageTimeLeft()
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        try SystemCall.retrying("poll") { poll(&p, 1, pollTimeoutMilliseconds(left)) }
    }

    /// What is left of the current message's partial-message limit (`MessageDeadline.timeLeft`).
    /// - Throws: `ETIMEDOUT` when it has passed (the socket is then shut down).
    private func partialMessageTimeLeft() throws(VFIOError) -> UInt64 {
        do throws(VFIOError) {
            return try inbox.deadline.timeLeft()
        } catch {
            if error.errnoValue == ETIMEDOUT { timedOut(.partialMessage) }
            throw error
        }
    }

    /// The smallest rest of a payload read blocking under a receive timeout, when the
    /// socket has a partial-message limit (`readFully`).
    static let blockingReadMinimum = 64 << 10

    /// Reads (inside a message) until `buffer` is full or the stream ends; returns the
    /// bytes read. On an error the descriptors gathered in `fds` are closed.
    private func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, maxFDs: Int,
                           fds: inout [Int32], truncated: inout Bool) throws(VFIOError) -> Int {
        var done = 0
        var received = [Int32](repeating: -1, count: max(maxFDs, 1))
        // Inside a message with a limit, small rests are read without blocking
        // (`waitForMore` waits). A large rest is read blocking, under a receive timeout
        // (SO_RCVTIMEO) kept at what is left of the limit to within a millisecond: a
        // refill of the socket buffer then costs one `recvmsg`, where a read that does
        // not block costs three (`recvmsg` finding nothing, `poll`, `recvmsg`); setting
        // and clearing the timeout costs two calls, which a small rest would not repay.
        let bounded = inbox.deadline.bounded
        let blocking = bounded && buffer.count >= Self.blockingReadMinimum
        var receiveTimeout: UInt64 = 0   // the SO_RCVTIMEO in force (0: none known; read without blocking)
        var timeoutSet = false           // SO_RCVTIMEO was set here: cleared on the way out
        defer { if timeoutSet { _ = setSocketTimeout(fd, SO_RCVTIMEO, 0) } }
        while done < buffer.count {
            var iov = iovec(iov_base: buffer.baseAddress! + done, iov_len: buffer.count - done)
            var count: Int32 = 0
            var cut: Int32 = 0
            let read: Int?
            do throws(VFIOError) {
                var flags = bounded ? Int32(MSG_DONTWAIT) : 0
                if blocking {
                    let left = try partialMessageTimeLeft()
                    if receiveTimeout == 0 || receiveTimeout > left &+ 1_000_000 {
                        // A timeout that could not be set (or lowered) leaves this read
                        // not blocking; the socket's timeout is cleared all the same.
                        timeoutSet = true
                        receiveTimeout = setSocketTimeout(fd, SO_RCVTIMEO, left) == 0 ? left : 0
                    }
                    if receiveTimeout != 0 { flags = 0 }
                }
                read = try SystemCall.retryingUnlessWouldBlock("recvmsg") {
                    received.withUnsafeMutableBufferPointer { r in
                        cvfio_recvmsg_fds(fd, &iov, 1, r.baseAddress, Int32(maxFDs), &count, &cut, flags)
                    }
                }
                // Nothing there yet, or the receive timeout passed: only a bounded read
                // sees that.
                if read == nil {
                    guard bounded else { throw .errno("recvmsg", EAGAIN) }
                    try waitForMore(fd)
                    continue
                }
            } catch {
                for f in fds { closeDescriptor(f) }
                fds = []
                throw error
            }
            let n = read!
            for i in 0..<Int(count) {
                if fds.count < maxFDs { fds.append(received[i]) } else { closeDescriptor(received[i]); truncated = true }
            }
            if cut != 0 { truncated = true }
            if n == 0 { break }
            done += n
        }
        return done
    }

    private func drain(_ fd: Int32, _ count: Int, fds: inout [Int32], truncated: inout Bool) throws(VFIOError) {
        var left = count
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: min(count, 65536), alignment: 16)
        defer { scratch.deallocate() }
        while left > 0 {
            let chunk = min(left, scratch.count)
            let n = try readFully(fd, UnsafeMutableRawBufferPointer(rebasing: scratch[0..<chunk]), maxFDs: 0, fds: &fds, truncated: &truncated)
            if n < chunk { throw .errno("recvmsg (stream ended inside a message)", ECONNRESET) }
            left -= n
        }
    }

    /// True when a byte (or end of stream) can be read now, or bytes were read ahead.
    /// Reader thread only.
    public func hasInput() -> Bool {
        if inbox.count > 0 { return true }
        var p = pollfd(fd: descriptor.raw, events: Int16(POLLIN), revents: 0)
        return ((try? SystemCall.retrying("poll") { poll(&p, 1, 0) }) ?? 0) > 0
    }
}

/// The read-ahead buffer of a socket, and the descriptors that came with its bytes.
@usableFromInline
final class Inbox: @unchecked Sendable {
    static let capacity = 8 * 1024
    @usableFromInline let storage = UnsafeMutableRawPointer.allocate(byteCount: Inbox.capacity, alignment: 16)

    // One reader at a time uses the fields (the socket's contract), which makes every
    // access exclusive: the dynamic exclusivity check would cost more than the work.

    /// Where `recvmsg` puts the descriptors of one read.
    private let received = UnsafeMutableBufferPointer<Int32>.allocate(capacity: Int(CVFIO_MAX_FDS) + 1)
    /// The unread bytes are storage[start..<end].
    @exclusivity(unchecked) @usableFromInline var start = 0
    @exclusivity(unchecked) @usableFromInline var end = 0
    /// The stream position of storage[0].
    @exclusivity(unchecked) @usableFromInline var base: UInt64 = 0
    /// Descriptors (and whether some were cut off) by the stream position of the last byte
    /// of the read that brought them.
    @exclusivity(unchecked) @usableFromInline var batches: [(mark: UInt64, fds: [Int32], truncated: Bool)] = []
    /// The stream position just past the message being read.
    @exclusivity(unchecked) @usableFromInline var messageEnd: UInt64 = 0
    /// Payload bytes of the message being read that are not read yet.
    @exclusivity(unchecked) @usableFromInline var payloadLeft = 0
    /// Descriptors that came with payload bytes read straight into a caller's buffer.
    @exclusivity(unchecked) @usableFromInline var late: [Int32] = []
    @exclusivity(unchecked) @usableFromInline var lateTruncated = false
    /// The partial-message limit of the message being read.
    @exclusivity(unchecked) var deadline = MessageDeadline()

    @inlinable @inline(__always) var count: Int { end - start }
    /// The stream position of the first unread byte.
    var position: UInt64 { base + UInt64(start) }

    @inlinable @inline(__always)
    func consume(_ n: Int) {
        // Within the 8 KiB buffer (callers consume at most `count`): no overflow to check.
        start &+= n
        if start == end {
            base &+= UInt64(truncatingIfNeeded: start)
            start = 0
            end = 0
        }
    }

    /// The descriptors of the bytes before stream position `end`.
    func take(before end: UInt64) -> (fds: [Int32], truncated: Bool) {
        var fds: [Int32] = []
        var truncated = false
        while let first = batches.first, first.mark < end {
            fds += first.fds
            truncated = truncated || first.truncated
            batches.removeFirst()
        }
        return (fds, truncated)
    }

    /// One `recvmsg` (with `plain`: `recv`, receiving no descriptors) into the free space;
    /// returns the bytes read (0 at end of stream), or, with `dontWait` (`MSG_DONTWAIT`),
    /// -1 when nothing was there to read.
    @inline(__always)
    func fill(_ fd: Int32, maxFDs: Int, plain: Bool = false, dontWait: Bool = false) throws(VFIOError) -> Int {
        if start > 0 {
            if count > 0 { memmove(storage, storage + start, count) }
            base += UInt64(start)
            end -= start
            start = 0
        }
        var iov = iovec(iov_base: storage + end, iov_len: Inbox.capacity - end)
        var got: Int32 = 0
        var cut: Int32 = 0
        let limit = min(maxFDs, received.count)
        let flags = dontWait ? Int32(MSG_DONTWAIT) : 0
        let read = try SystemCall.retryingUnlessWouldBlock(plain ? "recv" : "recvmsg") {
            plain ? cvfio_recv(fd, iov.iov_base, iov.iov_len, flags)
                  : cvfio_recvmsg_fds(fd, &iov, 1, received.baseAddress, Int32(limit), &got, &cut, flags)
        }
        guard let n = read else {
            // Only `MSG_DONTWAIT` asks for "nothing there" (or a descriptor someone made non-blocking).
            if dontWait { return -1 }
            throw .errno(plain ? "recv" : "recvmsg", EAGAIN)
        }
        end += n
        if got > 0 || cut != 0 {
            batches.append((mark: base + UInt64(max(end, 1) - 1), fds: Array(received[0..<Int(got)]), truncated: cut != 0))
        }
        return n
    }

    func closeAll() {
        for batch in batches { for f in batch.fds { closeDescriptor(f) } }
        batches = []
        closeMessageDescriptors()
    }

    /// Closes the descriptors gathered for the message being read.
    func closeMessageDescriptors() {
        for f in late { closeDescriptor(f) }
        late = []
        lateTruncated = false
        for f in take(before: messageEnd).fds { closeDescriptor(f) }
    }

    deinit {
        closeAll()
        storage.deallocate()
        received.deallocate()
    }
}

