import Glibc
import VFIO
import VFIOUserWire
import VFIOSystem

/// How long a client thread waits for the server, and for what: the message named in the
/// `ETIMEDOUT` error it gets when the time has passed.
struct ClientDeadline {
    /// Monotonic nanoseconds.
    let at: UInt64
    let timeout: UInt64
    let command: UInt16
    let id: UInt16
    /// The message waited on is this client's reply to a server command.
    let isReply: Bool

    /// A deadline `timeout` nanoseconds from now. (The precise clock: the coarse one would
    /// cost 20 ns less per request, but it lags by up to two kernel ticks in a VM, measured
    /// at 8 ms here, and a deadline must never pass early.)
    init(command: UInt16, id: UInt16, timeout: UInt64, isReply: Bool = false) {
        at = monotonicNanoseconds() &+ timeout
        self.timeout = timeout
        self.command = command
        self.id = id
        self.isReply = isReply
    }

    var passed: Bool { monotonicNanoseconds() >= at }

    /// The time left in milliseconds, rounded up (0 once passed), for `poll`.
    var pollMilliseconds: Int32 {
        let now = monotonicNanoseconds()
        guard now < at else { return 0 }
        return pollTimeoutMilliseconds(at - now)
    }

    private var name: String {
        "\(VFIOUserCommand.name(command))\(isReply ? " reply" : "") (message id \(id))"
    }

    /// The error of a caller whose reply did not come in time.
    var noReply: VFIOError {
        .errno("\(name): no reply within \(timeout / 1_000_000) ms", ETIMEDOUT)
    }

    /// The error of a sender whose message the server did not take in time.
    var notTaken: VFIOError {
        .errno("\(name): the server read nothing for \(timeout / 1_000_000) ms while the socket was full", ETIMEDOUT)
    }
}
