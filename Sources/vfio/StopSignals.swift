import Glibc
import Synchronization
import VFIO

/// SIGINT and SIGTERM, taken by a handler and waited for on a socket pair: how
/// `vfio serve` stops.
///
/// The tool's root command is async, so a command's `run()` is on a pool thread while the
/// main thread waits in libdispatch's `sigsuspend` with no signal blocked: a signal mask
/// set by one thread cannot keep a signal's default action (ending the process) away,
/// only the process-wide disposition can. `install()` gives both signals a handler (also
/// when the process started with them ignored, as a background job of a non-interactive
/// shell starts with SIGINT ignored) that sends the signal's number to a socket;
/// `wait()` reads it.
enum StopSignals {
    static let numbers: [Int32] = [SIGINT, SIGTERM]

    /// The end the handler sends on (-1 until `install()`); an atomic load is safe in a
    /// signal handler.
    private static let sendFD = Atomic<Int32>(-1)
    /// The end `wait()` reads.
    private static let receiveFD = Atomic<Int32>(-1)

    /// Installs the handler for SIGINT and SIGTERM and blocks both in the calling thread,
    /// so that the threads it starts from now on inherit the mask and are never
    /// interrupted by them. Call once, before starting those threads, from the thread that
    /// will `wait()`.
    /// - Throws: `.errno("socketpair")` or `.errno("sigaction(N)")`.
    static func install() throws(VFIOError) {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            throw .errno("socketpair", errno)
        }
        receiveFD.store(ends[0], ordering: .sequentiallyConsistent)
        sendFD.store(ends[1], ordering: .sequentiallyConsistent)
        var mask = signalMask()
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { signal in
            let saved = errno
            var byte = UInt8(truncatingIfNeeded: signal)
            // Never blocks: with the socket full, a stop is already waiting to be read.
            _ = send(StopSignals.sendFD.load(ordering: .relaxed), &byte, 1, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            errno = saved
        }
        action.sa_flags = SA_RESTART
        sigfillset(&action.sa_mask)
        for signal in numbers {
            guard sigaction(signal, &action, nil) == 0 else { throw .errno("sigaction(\(signal))", errno) }
        }
    }

    /// Why `wait()` returned.
    enum Reason: Equatable, CustomStringConvertible {
        case signal(Int32)
        /// `post()` was called.
        case posted
        /// Reading the socket failed with this errno: stop rather than spin.
        case waitFailed(Int32)

        var description: String {
            switch self {
            case .signal(SIGINT): return "SIGINT"
            case .signal(SIGTERM): return "SIGTERM"
            case .signal(let number): return "signal \(number)"
            case .posted: return "the connection closed"
            case .waitFailed(let code): return "waiting for a signal failed: \(VFIOError.errnoName(code))"
            }
        }
    }

    /// Blocks until SIGINT or SIGTERM arrives or `post()` is called. Unblocks the two
    /// signals in the calling thread first, so that they are taken even if every other
    /// thread blocks them (the threads started after `install()` do).
    static func wait() -> Reason {
        var mask = signalMask()
        pthread_sigmask(SIG_UNBLOCK, &mask, nil)
        let fd = receiveFD.load(ordering: .sequentiallyConsistent)
        while true {
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            if n == 1 { return byte == 0 ? .posted : .signal(Int32(byte)) }
            if n < 0 && errno == EINTR { continue }
            return .waitFailed(n < 0 ? errno : ECONNRESET)
        }
    }

    /// Ends a `wait()` (it returns `.posted`), as a signal would.
    static func post() {
        var byte: UInt8 = 0
        _ = send(sendFD.load(ordering: .sequentiallyConsistent), &byte, 1, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
    }

    private static func signalMask() -> sigset_t {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in numbers { sigaddset(&mask, signal) }
        return mask
    }
}
