import CVFIO
import Glibc
import VFIO

/// Suspends tasks until a descriptor becomes readable, without blocking any executor
/// thread: one background thread waits in `epoll_wait` for every registered descriptor.
///
/// A wait's descriptor is registered with epoll and its waiter published in one step
/// under the waiters' lock, and a cancellation removes both under that lock, so a wait
/// cancelled at any point leaves nothing registered.
public final class ReadinessPoller: Sendable {
    /// The process-wide poller, started on first use.
    public static let shared = ReadinessPoller()

    /// Where one wait is.
    private enum Wait {
        /// Begun, not registered yet.
        case starting
        /// Cancelled before it was registered: the registration step ends it.
        case cancelled
        /// Registered with epoll (`EPOLLONESHOT`), its task suspended.
        case waiting(fd: Int32, continuation: CheckedContinuation<Void, any Error>)
    }

    private struct Waiters {
        var next: UInt64 = 1
        /// Every wait that has not ended, by token (the epoll event's data).
        var waits: [UInt64: Wait] = [:]
        /// Test hooks by descriptor (`setPublishedHook`).
        var hooks: [Int32: @Sendable () -> Void] = [:]
    }

    private let epoll: Int32
    /// A `Monitor` (its pthread mutex is visible to ThreadSanitizer), no condition used:
    /// `Synchronization.Mutex` hands a contended lock over inside the kernel (a PI
    /// futex), where ThreadSanitizer sees no release and acquire, and reports the waits
    /// and the readiness thread that take turns with it as racing.
    private let waiters = Monitor(Waiters())

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

    /// For tests: `hook` runs on the waiting task's thread each time a wait on `fd` has
    /// become visible to cancellation (registered and published), before the task
    /// suspends; `nil` removes it.
    package func setPublishedHook(fd: Int32, _ hook: (@Sendable () -> Void)?) {
        waiters.withLock { $0.hooks[fd] = hook }
    }

    /// Returns once `fd` is readable (or has hung up or failed, which a read then reports).
    ///
    /// One task at a time may wait on a given descriptor.
    /// - Throws: `CancellationError` if the task is cancelled while waiting; `VFIOError`
    ///   (`EEXIST` when another task already waits on `fd`, `EBADF` for a closed one).
    public func waitReadable(_ fd: Int32) async throws {
        let token = waiters.withLock { state -> UInt64 in
            defer { state.next += 1 }
            state.waits[state.next] = .starting
            return state.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (failure, hook) = waiters.withLock { state -> ((any Error)?, (@Sendable () -> Void)?) in
                    guard case .starting? = state.waits[token] else {
                        state.waits[token] = nil
                        return (CancellationError(), nil)
                    }
                    let events = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLONESHOT.rawValue)
                    do {
                        try SystemCall.retrying("epoll_ctl(EPOLL_CTL_ADD)") { cvfio_epoll_add(epoll, fd, events, token) }
                    } catch {
                        state.waits[token] = nil
                        return (error, nil)
                    }
                    state.waits[token] = .waiting(fd: fd, continuation: continuation)
                    return (nil, state.hooks[fd])
                }
                if let failure { continuation.resume(throwing: failure) }
                hook?()
            }
        } onCancel: {
            let continuation = waiters.withLock { state -> CheckedContinuation<Void, any Error>? in
                switch state.waits[token] {
                case .starting?:
                    state.waits[token] = .cancelled
                    return nil
                case .waiting(let fd, let continuation)?:
                    state.waits[token] = nil
                    _ = cvfio_epoll_del(epoll, fd)
                    return continuation
                case .cancelled?, nil:
                    return nil
                }
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    private func run() {
        var tokens = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        while true {
            let count: Int32
            do {
                count = try SystemCall.retrying("epoll_wait") { cvfio_epoll_wait(epoll, &tokens, &events, 64, -1) }
            } catch {
                preconditionFailure("readiness thread: \(error)")   // EINTR is retried; the rest are bugs here
            }
            for i in 0..<Int(count) {
                let continuation = waiters.withLock { state -> CheckedContinuation<Void, any Error>? in
                    // A wait cancelled meanwhile is gone (and its descriptor deregistered).
                    guard case .waiting(let fd, let continuation)? = state.waits[tokens[i]] else { return nil }
                    state.waits[tokens[i]] = nil
                    _ = cvfio_epoll_del(epoll, fd)
                    return continuation
                }
                continuation?.resume()
            }
        }
    }
}
