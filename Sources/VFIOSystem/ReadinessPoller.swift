import CVFIO
import Glibc
import Synchronization
import VFIO

/// Suspends tasks until a descriptor becomes readable, without blocking any executor
/// thread: one background thread waits in `epoll_wait` for every registered descriptor.
public final class ReadinessPoller: Sendable {
    /// The process-wide poller, started on first use.
    public static let shared = ReadinessPoller()

    private struct Waiters {
        var next: UInt64 = 1
        var continuations: [UInt64: (fd: Int32, continuation: CheckedContinuation<Void, any Error>)] = [:]
        var cancelled: Set<UInt64> = []
    }

    private let epoll: Int32
    private let waiters = Mutex(Waiters())

    private init() {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epoll >= 0, "epoll_create1 failed: \(VFIOError.errnoText(errno))")
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { raw in
            let poller = Unmanaged<ReadinessPoller>.fromOpaque(raw!).takeUnretainedValue()
            poller.run()
            return nil
        }, box)
        precondition(result == 0, "cannot start the readiness thread: \(VFIOError.errnoText(result))")
        pthread_detach(thread)
    }

    /// Starts the process-wide poller now if nothing has used it yet. Its epoll descriptor
    /// and thread are created on first use of `shared` and stay for the life of the
    /// process; a leak check calls this before its baseline so that the descriptor is
    /// counted there.
    public static func start() { _ = shared }

    /// Returns once `fd` is readable (or has hung up or failed, which a read then reports).
    ///
    /// One task at a time may wait on a given descriptor.
    /// - Throws: `CancellationError` if the task is cancelled while waiting; `VFIOError`
    ///   (`EEXIST` when another task already waits on `fd`, `EBADF` for a closed one).
    public func waitReadable(_ fd: Int32) async throws {
        let token = waiters.withLock { state -> UInt64 in
            defer { state.next += 1 }
            return state.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelledEarly = waiters.withLock { state -> Bool in
                    if state.cancelled.remove(token) != nil { return true }
                    state.continuations[token] = (fd, continuation)
                    return false
                }
                if cancelledEarly {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                let events = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLONESHOT.rawValue)
                if cvfio_epoll_add(epoll, fd, events, token) != 0 {
                    let code = errno
                    if let entry = waiters.withLock({ $0.continuations.removeValue(forKey: token) }) {
                        entry.continuation.resume(throwing: VFIOError.errno("epoll_ctl(EPOLL_CTL_ADD)", code))
                    }
                }
            }
        } onCancel: {
            let entry = waiters.withLock { state -> (fd: Int32, continuation: CheckedContinuation<Void, any Error>)? in
                if let entry = state.continuations.removeValue(forKey: token) { return entry }
                state.cancelled.insert(token)
                return nil
            }
            if let entry {
                _ = cvfio_epoll_del(epoll, entry.fd)
                entry.continuation.resume(throwing: CancellationError())
            }
        }
    }

    private func run() {
        var tokens = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        while true {
            let count = cvfio_epoll_wait(epoll, &tokens, &events, 64, -1)
            if count < 0 { continue }   // EINTR
            for i in 0..<Int(count) {
                guard let entry = waiters.withLock({ $0.continuations.removeValue(forKey: tokens[i]) }) else { continue }
                _ = cvfio_epoll_del(epoll, entry.fd)
                entry.continuation.resume()
            }
        }
    }
}
