import CVFIO
import Glibc
import VFIO

// The package's two concurrency tools are `Synchronization.Mutex` (state that no thread
// waits on) and `Monitor` below (state that threads wait on, each on the monitor's own
// condition or on a `Condition` of its own). A lock is taken in one lexical scope
// (`withLock`, `wait`), never released in another function.
//
// A `Monitor`'s lock is one futex word (`cvfio_lock`), which sleeps at once when it is
// taken; `Synchronization.Mutex` spins (1000 `pause`s) first. Where more threads contend
// than there are CPUs, the spinner burns the time slice the holder needs: use a `Monitor`
// for a lock held across a system call (measured: 16 threads sending on one socket from
// one CPU ran at a third of the rate under `Synchronization.Mutex`). `cvfio_lock` says why
// not a pthread mutex (the cost of a request's lock steps), and why ThreadSanitizer sees
// its hand-overs.

/// A lock with a condition variable (`cvfio_lock`, `cvfio_cond`), for state that threads
/// wait on.
///
/// The methods are inlinable so that a caller in another module gets them specialized
/// for its state and closures (unspecialized, every call pays for generic metadata and
/// indirect calls). The class must be `@usableFromInline` for that: Swift 6.3 inlines no
/// `@inlinable` member of a `package` type across modules unless the type is.
@usableFromInline
package final class Monitor<State>: @unchecked Sendable {
    @usableFromInline let lock: UnsafeMutablePointer<cvfio_lock>
    /// What `wait(until:)` waits on and `broadcast()` / `update` wake.
    @usableFromInline let condition = Condition()
    /// The state, in memory of its own, read and written with `lock` held only (which
    /// makes every access exclusive, with no dynamic exclusivity check to pay). Not a
    /// stored `var`: ThreadSanitizer records an access to a stored property of a generic
    /// class at the property's address, which for an empty `State` is the object's own
    /// address, and reports it as racing with the reads of the object's header that find
    /// the property (a `Monitor<Void>` used as a plain lock).
    @usableFromInline let state: UnsafeMutablePointer<State>

    package init(_ initial: State) {
        state = .allocate(capacity: 1)
        state.initialize(to: initial)
        lock = .allocate(capacity: 1)
        lock.initialize(to: cvfio_lock())
    }

    deinit {
        lock.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Runs `body` with the lock held.
    @inlinable
    package func withLock<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        cvfio_lock_acquire(lock)
        defer { cvfio_lock_release(lock) }
        return try body(&state.pointee)
    }

    /// `withLock`, but when another thread holds the lock, `whenContended` runs first
    /// (without the lock), then this waits for it: a caller that must not wait for this
    /// lock while it holds something others need gives that up there.
    @inlinable
    package func withLock<R, E: Error>(whenContended: () -> Void, _ body: (inout State) throws(E) -> R) throws(E) -> R {
        if cvfio_lock_try_acquire(lock) == 0 {
            whenContended()
            cvfio_lock_acquire(lock)
        }
        defer { cvfio_lock_release(lock) }
        return try body(&state.pointee)
    }

    /// Changes the state and wakes every thread waiting on the monitor's own condition.
    @inlinable
    package func update<R>(_ body: (inout State) -> R) -> R {
        cvfio_lock_acquire(lock)
        defer {
            condition.broadcast()
            cvfio_lock_release(lock)
        }
        return body(&state.pointee)
    }

    /// Wakes every thread waiting on the monitor's own condition (call after changing
    /// state they wait for without `update`).
    @inlinable
    package func broadcast() {
        cvfio_lock_acquire(lock)
        condition.broadcast()
        cvfio_lock_release(lock)
    }

    /// Waits on the monitor's own condition (lock held inside `body`) until `body` returns
    /// a value, re-checking after every broadcast.
    @inlinable
    package func wait<R, E: Error>(until body: (inout State) throws(E) -> R?) throws(E) -> R {
        cvfio_lock_acquire(lock)
        defer { cvfio_lock_release(lock) }
        while true {
            if let result = try body(&state.pointee) { return result }
            condition.wait(lock, until: nil)
        }
    }

    /// Runs `body` with the lock held and a function that waits on a condition variable
    /// (until signalled, or until a monotonic deadline in nanoseconds), releasing the lock
    /// meanwhile: for a holder that waits at several points of one scope.
    @inlinable
    package func withLockedWait<R, E: Error>(_ body: (inout State, (Condition, UInt64?) -> Void) throws(E) -> R) throws(E) -> R {
        cvfio_lock_acquire(lock)
        defer { cvfio_lock_release(lock) }
        let lock = self.lock
        return try body(&state.pointee) { condition, deadline in condition.wait(lock, until: deadline) }
    }

    /// Waits on `condition` (lock held inside `body`) until `body` returns a value, or
    /// until `deadline()` (monotonic nanoseconds, evaluated with the lock held; `nil`: no
    /// limit) has passed, which returns `nil`.
    @inlinable
    package func wait<R, E: Error>(on condition: Condition, deadline: (inout State) -> UInt64? = { _ in nil },
                                   until body: (inout State) throws(E) -> R?) throws(E) -> R? {
        cvfio_lock_acquire(lock)
        defer { cvfio_lock_release(lock) }
        while true {
            if let result = try body(&state.pointee) { return result }
            let limit = deadline(&state.pointee)
            if let limit, monotonicNanoseconds() >= limit { return nil }
            condition.wait(lock, until: limit)
        }
    }

    /// Waits on `condition` (lock held inside `body`) until `body` returns a value, waking
    /// at `time` (monotonic nanoseconds) at the latest to run `body` again: the body itself
    /// decides what a passed time means, with the state in hand (nothing can change between
    /// its last look and the return).
    @inlinable
    package func wait<R, E: Error>(on condition: Condition, wakingAt time: UInt64,
                                   until body: (inout State) throws(E) -> R?) throws(E) -> R {
        cvfio_lock_acquire(lock)
        defer { cvfio_lock_release(lock) }
        while true {
            if let result = try body(&state.pointee) { return result }
            condition.wait(lock, until: time)
        }
    }
}

/// A condition variable used with a `Monitor`'s lock: the monitor's own, or one for
/// each waiting thread (`Monitor.wait(on:...)`), so that a state change wakes only the
/// thread it concerns. One futex word (`cvfio_cond`, which says why not a
/// `pthread_cond_t`); deadlines are on `CLOCK_MONOTONIC`.
@usableFromInline
package final class Condition: @unchecked Sendable {
    @usableFromInline let raw: UnsafeMutablePointer<cvfio_cond>

    package init() {
        raw = .allocate(capacity: 1)
        raw.initialize(to: cvfio_cond())
    }

    /// Wakes the thread waiting on this condition, after its state changed under the
    /// monitor's lock (with the lock held, or after it was released: then the woken
    /// thread does not wake only to wait for the lock). A signal that finds no thread
    /// asleep does nothing (no system call), which is right only because the change was
    /// made under the lock: state changed without it must not be waited for here.
    @inlinable
    package func signal() { cvfio_cond_signal(raw, 0) }

    /// Wakes every thread waiting on this condition (as `signal`).
    @inlinable
    package func broadcast() { cvfio_cond_signal(raw, 1) }

    /// Waits (`lock` held, released meanwhile) until signalled, or until `deadline`
    /// (monotonic nanoseconds) when given. May return early (spurious wake-ups): callers
    /// re-check their state.
    @inlinable
    package func wait(_ lock: UnsafeMutablePointer<cvfio_lock>, until deadline: UInt64?) {
        cvfio_cond_wait(raw, lock, deadline == nil ? 0 : 1, deadline ?? 0)
    }

    deinit { raw.deallocate() }
}

/// A joinable POSIX thread running `body`, named `name` (its first 15 bytes: what `ps -L`,
/// `gdb` and `perf` show, and `currentThreadName()` returns).
package final class WorkerThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let joined = Monitor(false)

    package init(name: String, _ body: @escaping @Sendable () -> Void) {
        let result = Self.create(&thread, name: name, body)
        precondition(result == 0, "pthread_create failed: \(result)")
    }

    /// Starts a detached thread running `body`, named `name` (as `init`), for work that
    /// ends by itself and that nobody joins.
    /// - Throws: `pthread_create`'s error (`EAGAIN` at the thread limit).
    package static func detached(name: String, _ body: @escaping @Sendable () -> Void) throws(VFIOError) {
        var thread = pthread_t()
        let result = create(&thread, name: name, body)
        guard result == 0 else { throw .errno("pthread_create", result) }
        pthread_detach(thread)
    }

    /// `pthread_create` of a thread that names itself and runs `body`; 0 or an errno value.
    private static func create(_ thread: inout pthread_t, name: String, _ body: @escaping @Sendable () -> Void) -> Int32 {
        final class Box {
            let name: String
            let body: @Sendable () -> Void
            init(_ n: String, _ b: @escaping @Sendable () -> Void) { name = n; body = b }
        }
        let box = Unmanaged.passRetained(Box(String(decoding: name.utf8.prefix(15), as: UTF8.self), body)).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            _ = cvfio_thread_set_name(box.name)
            box.body()
            return nil
        }, box)
        if result != 0 { Unmanaged<Box>.fromOpaque(box).release() }
        return result
    }

    /// Waits for the thread to end (once; later calls return at once).
    package func join() {
        let already = joined.withLock { (joined: inout Bool) -> Bool in
            defer { joined = true }
            return joined
        }
        if !already { pthread_join(thread, nil) }
    }

    /// True when called on this thread.
    package var isCurrent: Bool { pthread_equal(thread, pthread_self()) != 0 }
}

/// The calling thread's name (`pthread_getname_np`, through CVFIO; a `WorkerThread` is named at its start).
package func currentThreadName() -> String {
    var buffer = [CChar](repeating: 0, count: 16)
    guard cvfio_thread_get_name(&buffer, buffer.count) == 0 else { return "" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Nanoseconds on `CLOCK_MONOTONIC`.
@inlinable
package func monotonicNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
}

/// Nanoseconds on `CLOCK_MONOTONIC_COARSE`: as fine as the kernel's tick (1-10 ms), read
/// from the vDSO's copy without touching the clock hardware. For deadlines of seconds on
/// a hot path: where the clocksource cannot be read from user space (HPET, which TCG
/// guests fall back to), `CLOCK_MONOTONIC` costs a system call and a device read.
@inlinable
package func coarseMonotonicNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t)
    return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
}

/// `nanoseconds` as `poll`'s timeout: milliseconds rounded up (a wait never ends before
/// its time), at most `Int32.max`.
package func pollTimeoutMilliseconds(_ nanoseconds: UInt64) -> Int32 {
    Int32(min(nanoseconds / 1_000_000 + (nanoseconds % 1_000_000 == 0 ? 0 : 1), UInt64(Int32.max)))
}

/// `duration` in nanoseconds (rounded down), 0 when negative, at most `limit`.
package func nanoseconds(_ duration: Duration, atMost limit: UInt64) -> UInt64 {
    let (seconds, attoseconds) = duration.components
    guard seconds >= 0, attoseconds >= 0 else { return 0 }
    guard UInt64(seconds) < limit / 1_000_000_000 else { return limit }
    return min(UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000), limit)
}
