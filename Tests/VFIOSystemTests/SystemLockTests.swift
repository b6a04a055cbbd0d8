import Glibc
import Testing
import VFIOSystem

/// The lock of a `Monitor` (`cvfio_lock`, one futex word): mutual exclusion when more
/// threads contend than there are CPUs (so holders are preempted and waiters sleep in the
/// kernel), a sleeping waiter woken by each release, and `withLock(whenContended:)`
/// telling a free lock from a held one.
@Suite(.timeLimit(.minutes(1))) struct SystemLockTests {
    /// Eight threads add 1 to a plain counter 100 000 times each under the lock. An
    /// increment lost to two holders at once shows in the total; a release that failed
    /// to wake a sleeping waiter would leave it asleep until the time limit.
    @Test func contendedIncrementsAreNeverLost() {
        let threadsCount = 8
        let rounds = 100_000
        let monitor = Monitor(0)
        let threads = (0..<threadsCount).map { i in
            WorkerThread(name: "adder \(i)") {
                for _ in 0..<rounds { monitor.withLock { $0 += 1 } }
            }
        }
        for thread in threads { thread.join() }
        #expect(monitor.withLock { $0 } == threadsCount * rounds)
    }

    /// While one thread holds the lock, another's `withLock(whenContended:)` runs its
    /// `whenContended` first, then waits: it gets the lock only after the holder let go.
    @Test func whenContendedRunsOnlyWhileAnotherThreadHolds() {
        let monitor = Monitor(0)
        // What the two threads tell each other (a monitor of its own).
        let steps = Monitor((holding: false, contended: false, released: false))
        let holder = WorkerThread(name: "holder") {
            monitor.withLock { value in
                steps.update { $0.holding = true }
                _ = steps.wait { state -> Bool? in state.contended ? true : nil }
                value = 1
                steps.update { $0.released = true }
            }
        }
        _ = steps.wait { state -> Bool? in state.holding ? true : nil }
        var ranWhileHeld = false
        let seen = monitor.withLock(whenContended: {
            ranWhileHeld = true
            steps.update { $0.contended = true }
        }) { value in value }
        holder.join()
        #expect(ranWhileHeld)
        #expect(seen == 1)   // taken after the holder's change, not before
        #expect(steps.withLock { $0.released })

        var ranWhenFree = false
        monitor.withLock(whenContended: { ranWhenFree = true }) { value in value += 1 }
        #expect(!ranWhenFree)
        #expect(monitor.withLock { $0 } == 2)
    }
}
