import Glibc
import Synchronization
import VFIO
import VFIOSystem

/// The limits a server puts on what a client can make its socket wait for
/// (`VFIOUserSocket.setTimeouts`).
package enum SocketTimeout: UInt8, Sendable {
    /// A message that has begun to arrive did not arrive whole in time.
    case partialMessage = 1
    /// A message being sent found no room for that long (the peer does not read).
    case send = 2

    /// The name logs and errors give it.
    package var name: String {
        switch self {
        case .partialMessage: return "partial message"
        case .send: return "send"
        }
    }
}

/// The partial-message limit as a socket's reader keeps it: how long a message may take
/// from the reader's first wait for more of it to its last byte. Reads inside a message
/// are made with `MSG_DONTWAIT` (free when the bytes are there, as they nearly always
/// are); only when they are not does the reader read the clock and `poll` for what is
/// left of the limit. The rest of a large payload (`VFIOUserSocket.blockingReadMinimum`)
/// is read blocking instead, under a receive timeout kept at what is left of the limit
/// (`timeLeft`, which starts the clock too). A wait for a message to begin is a plain
/// blocking read with no timeout: an idle peer costs nothing and is never dropped, and
/// the one-read path of a small message has no timer to arm.
struct MessageDeadline {
    /// The limit in nanoseconds; 0: none (reads inside a message block).
    var limit: UInt64 = 0
    /// When the reader first waited for more of the current message (monotonic
    /// nanoseconds); 0: not yet.
    var started: UInt64 = 0

    /// Whether reads inside a message are bounded by the limit (made with `MSG_DONTWAIT`,
    /// or, for the rest of a large payload, under a receive timeout).
    @inline(__always) var bounded: Bool { limit > 0 }

    /// A message boundary: the next message's time starts at its own first wait.
    @inline(__always) mutating func reset() { started = 0 }

    /// What is left of the limit for the current message, in nanoseconds (its clock
    /// starts now if it has not yet).
    /// - Throws: `ETIMEDOUT` once the message has taken `limit`.
    mutating func timeLeft() throws(VFIOError) -> UInt64 {
        let now = monotonicNanoseconds()
        if started == 0 { started = now }
        let elapsed = now &- started
        guard elapsed < limit else {
            throw .errno("recvmsg: a message began \(describeNanoseconds(elapsed)) ago and has not arrived whole "
                         + "(partial message timeout \(describeNanoseconds(limit)))", ETIMEDOUT)
        }
        return limit - elapsed
    }
}

/// Sets `SO_SNDTIMEO` or `SO_RCVTIMEO` (0: wait as long as it takes; anything else is at
/// least 1 µs, the option's unit). Returns `setsockopt`'s result (errno set on -1).
func setSocketTimeout(_ fd: Int32, _ option: Int32, _ nanoseconds: UInt64) -> Int32 {
    let micro = nanoseconds == 0 ? 0 : max((nanoseconds + 999) / 1000, 1)
    var value = timeval(tv_sec: Int(micro / 1_000_000), tv_usec: Int(micro % 1_000_000))
    return setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size))
}

/// "200 ms", "1.5 s", "10 s".
package func describeNanoseconds(_ nanoseconds: UInt64) -> String {
    if nanoseconds < 1_000_000 { return "\(nanoseconds / 1000) µs" }
    if nanoseconds < 1_000_000_000 { return "\(nanoseconds / 1_000_000) ms" }
    let tenths = (nanoseconds + 50_000_000) / 100_000_000
    return tenths % 10 == 0 ? "\(tenths / 10) s" : "\(tenths / 10).\(tenths % 10) s"
}

/// Nanoseconds in `duration` (rounded down), or nil unless it is positive and at most a day.
package func timeoutNanoseconds(_ duration: Duration) -> UInt64? {
    guard duration > .zero, duration <= .seconds(86_400) else { return nil }
    return max(nanoseconds(duration, atMost: 86_400 * 1_000_000_000), 1)
}

extension VFIOUserSocket {
    /// Bounds what the peer can make this socket wait for (no system call is added to a
    /// message):
    /// - `partialMessage` (nanoseconds, 0: none): a message whose first bytes came must
    ///   arrive whole within it (from the reader's first wait for more), or the read
    ///   throws `ETIMEDOUT`. Waiting for a message to begin is not bounded.
    /// - `send` (nanoseconds, 0: none; `SO_SNDTIMEO`): a blocking send throws `ETIMEDOUT`
    ///   when the peer takes none of the message for that long.
    /// After either fires, the socket is shut down (the stream is out of step) and
    /// `timeoutFired` says which. Call before the socket is read or written.
    /// - Throws: errno of `setsockopt` (`ENOTSOCK` for a descriptor that is no socket).
    package func setTimeouts(partialMessage: UInt64, send: UInt64) throws(VFIOError) {
        let fd = try descriptor.requireOpen("setsockopt")
        try SystemCall.retrying("setsockopt(SO_SNDTIMEO)") { setSocketTimeout(fd, SO_SNDTIMEO, send) }
        inbox.deadline = MessageDeadline(limit: partialMessage)
        sendLimit.store(send, ordering: .relaxed)
    }

    /// The limit that ended this connection, if one did.
    package var timeoutFired: SocketTimeout? { SocketTimeout(rawValue: fired.load(ordering: .acquiring)) }

    /// Records `timeout` (the first one counts) and shuts the socket down.
    func timedOut(_ timeout: SocketTimeout) {
        _ = fired.compareExchange(expected: 0, desired: timeout.rawValue, ordering: .acquiringAndReleasing)
        shutdown()
    }

    /// The error of a blocking send that found no room for the send limit
    /// (`EAGAIN` from `sendmsg` under `SO_SNDTIMEO`).
    func sendTimedOut(_ operation: String) -> VFIOError {
        let limit = sendLimit.load(ordering: .relaxed)
        // Not ours: a descriptor made non-blocking, or a timeout set by someone else.
        guard limit > 0 else { return .errno(operation, EAGAIN) }
        timedOut(.send)
        return .errno("\(operation): the peer took none of the message for \(describeNanoseconds(limit)) (send timeout)", ETIMEDOUT)
    }

    /// The process at the other end (`SO_PEERCRED`), nil when the kernel does not say.
    package var peerProcessID: pid_t? {
        // struct ucred: pid, uid, gid.
        var credentials: (pid_t, uid_t, gid_t) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0, credentials.0 > 0 else { return nil }
        return credentials.0
    }
}
