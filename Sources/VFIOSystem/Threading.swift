import CVFIO
import Glibc

/// A mutex with a condition variable (pthread), for state that threads wait on.
package final class Monitor<State>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// What `wait(until:)` waits on and `broadcast()` / `update` wake.
    private let condition = Condition()
    /// The mutex makes access exclusive (see `UncheckedCell`).
    private let storage: UncheckedCell<State>
    private var state: UnsafeMutablePointer<State> { storage.pointer }

    package init(_ initial: State) {
        storage = UncheckedCell(initial)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held.
    package func withLock<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state.pointee)
    }

    /// Waits (lock held inside `body`) until `body` returns a value, re-checking after
    /// every broadcast.
    package func wait<R, E: Error>(until body: (inout State) throws(E) -> R?) throws(E) -> R {
        try wait(on: condition, until: body)!   // no deadline: never nil
    }

    /// Runs `body` with the lock held and a function that waits on a condition variable
    /// (with an optional monotonic deadline in nanoseconds), releasing the lock meanwhile.
    package func withLockedWait<R, E: Error>(_ body: (inout State, (UnsafeMutablePointer<pthread_cond_t>, UInt64?) -> Void) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        let mutex = self.mutex
        return try body(&state.pointee) { condition, deadline in
            if let deadline {
                var t = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
                _ = pthread_cond_timedwait(condition, mutex, &t)
            } else {
                pthread_cond_wait(condition, mutex)
            }
        }
    }

    /// As `wait(until:)`, but also re-checks every `interval` nanoseconds without a
    /// broadcast (for state that changes without the lock).
    package func wait<R, E: Error>(recheckingEvery interval: UInt64, until body: (inout State) throws(E) -> R?) throws(E) -> R {
        let condition = self.condition
        return try withLockedWait { (state: inout State, wait: (UnsafeMutablePointer<pthread_cond_t>, UInt64?) -> Void) throws(E) -> R in
            while true {
                if let result = try body(&state) { return result }
                wait(condition.raw, monotonicNanoseconds() &+ interval)
            }
        }
    }

    /// Wakes every waiter (call after changing the state).
    package func broadcast() {
        pthread_mutex_lock(mutex)
        condition.broadcast()
        pthread_mutex_unlock(mutex)
    }

    /// Changes the state and wakes every waiter.
    package func update<R>(_ body: (inout State) -> R) -> R {
        pthread_mutex_lock(mutex)
        defer {
            condition.broadcast()
            pthread_mutex_unlock(mutex)
        }
        return body(&state.pointee)
    }
}

/// A joinable POSIX thread running `body`.
package final class WorkerThread: @unchecked Sendable {
    private var thread = pthread_t()
    private var joined = false
    private let lock = Monitor(())

    package init(name: String, _ body: @escaping @Sendable () -> Void) {
        final class Box { let body: @Sendable () -> Void; let name: String; init(_ b: @escaping @Sendable () -> Void, _ n: String) { body = b; name = n } }
        let box = Unmanaged.passRetained(Box(body, name)).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(result == 0, "pthread_create failed: \(result)")
    }

    /// Waits for the thread to end (once; later calls return at once).
    package func join() {
        let already = lock.withLock { (_: inout ()) -> Bool in
            defer { joined = true }
            return joined
        }
        if !already { pthread_join(thread, nil) }
    }

    /// True when called on this thread.
    package var isCurrent: Bool { pthread_equal(thread, pthread_self()) != 0 }
}

/// A condition variable of its own for one waiting thread, used with a `Monitor`'s mutex
/// (`Monitor.wait(on:deadline:until:)`), so that a state change wakes only the thread it
/// concerns.
package final class Condition: @unchecked Sendable {
    package let raw: UnsafeMutablePointer<pthread_cond_t>

    package init() {
        raw = .allocate(capacity: 1)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(raw, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// Wakes the thread waiting on this condition (call with the monitor's lock held, after
    /// changing the state it waits for).
    package func signal() { pthread_cond_signal(raw) }

    /// Wakes every thread waiting on this condition (lock held, as for `signal`).
    package func broadcast() { pthread_cond_broadcast(raw) }

    deinit {
        pthread_cond_destroy(raw)
        raw.deallocate()
    }
}

/// Nanoseconds on `CLOCK_MONOTONIC`.
@inline(__always)
package func monotonicNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
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

extension Monitor {
    /// Waits on `condition` (lock held inside `body`) until `body` returns a value, or
    /// until `deadline()` (monotonic nanoseconds, evaluated with the lock held; `nil`: no
    /// limit) has passed, which returns `nil`.
    package func wait<R, E: Error>(on condition: Condition, deadline: (inout State) -> UInt64? = { _ in nil },
                           until body: (inout State) throws(E) -> R?) throws(E) -> R? {
        try withLockedWait { (state: inout State, wait: (UnsafeMutablePointer<pthread_cond_t>, UInt64?) -> Void) throws(E) -> R? in
            while true {
                if let result = try body(&state) { return result }
                let limit = deadline(&state)
                if let limit, monotonicNanoseconds() >= limit { return nil }
                wait(condition.raw, limit)
            }
        }
    }

    /// Waits on `condition` (lock held inside `body`) until `body` returns a value, waking
    /// at `time` (monotonic nanoseconds) at the latest to run `body` again: the body itself
    /// decides what a passed time means, with the state in hand (nothing can change between
    /// its last look and the return).
    package func wait<R, E: Error>(on condition: Condition, wakingAt time: UInt64,
                           until body: (inout State) throws(E) -> R?) throws(E) -> R {
        try withLockedWait { (state: inout State, wait: (UnsafeMutablePointer<pthread_cond_t>, UInt64?) -> Void) throws(E) -> R in
            while true {
                if let result = try body(&state) { return result }
                wait(condition.raw, time)
            }
        }
    }
}

/// A plain mutex whose lock and unlock may sit in different functions: one futex word
/// (`cvfio_lock`), so that taking it uncontended is one atomic instruction. Not
/// recursive; no condition goes with it (use `Monitor` for waiting).
package final class PlainLock: @unchecked Sendable {
    private let word: UnsafeMutablePointer<UInt32>

    package init() {
        word = .allocate(capacity: 1)
        word.initialize(to: 0)
    }

    @inline(__always) package func lock() { cvfio_lock(word) }
    @inline(__always) package func unlock() { cvfio_unlock(word) }

    deinit { word.deallocate() }
}

/// Storage for state whose exclusive use its owner already guarantees (a lock, the
/// reading token), reached through a pointer: a class's stored `var` would pay a dynamic
/// exclusivity check on every access, which on the message paths costs more than the
/// work around it. The storage is freed with the cell.
package struct UncheckedCell<Value>: ~Copyable {
    package let pointer: UnsafeMutablePointer<Value>

    package init(_ value: Value) {
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: value)
    }

    deinit {
        pointer.deinitialize(count: 1)
        pointer.deallocate()
    }
}
