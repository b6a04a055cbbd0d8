import Glibc
import Synchronization
import Testing
import VFIOSystem
import TestSupport

/// The server's serving lock (`PlainLock`, one futex word): exclusive under contention,
/// and a thread that sleeps waiting for it wakes when it is released.
@Suite struct UserPlainLockTests {
    final class Counter: @unchecked Sendable {
        var value = 0
    }

    @Test func incrementsFromFourThreadsAllCount() {
        let lock = PlainLock()
        let counter = Counter()
        let perThread = 200_000
        let threads = (0..<4).map { _ in
            WorkerThread(name: "lock-test") {
                for _ in 0..<perThread {
                    lock.lock()
                    counter.value += 1
                    lock.unlock()
                }
            }
        }
        for thread in threads { thread.join() }
        #expect(counter.value == 4 * perThread)
    }

    final class Flags: Sendable {
        let released = Atomic(false)
        let sawRelease = Atomic(false)
        let waiterThread = Atomic<Int32>(0)
    }

    @Test func aWaiterSleepsUntilTheHolderUnlocks() {
        let lock = PlainLock()
        let flags = Flags()
        lock.lock()
        let waiter = WorkerThread(name: "lock-waiter") {
            flags.waiterThread.store(currentThreadID(), ordering: .releasing)
            lock.lock()
            flags.sawRelease.store(flags.released.load(ordering: .acquiring), ordering: .releasing)
            lock.unlock()
        }
        // The waiter is blocked in lock(): asleep in a futex wait.
        let blocked = poll(for: .seconds(10)) {
            let tid = flags.waiterThread.load(ordering: .acquiring)
            return tid != 0 && blockedSystemCall(ofThread: tid) == futexSystemCall
        }
        #expect(blocked, "the waiter never blocked in lock()")
        flags.released.store(true, ordering: .releasing)
        lock.unlock()
        waiter.join()
        let saw = flags.sawRelease.load(ordering: .acquiring)
        #expect(saw, "the waiter took the lock before it was released")
        // Free again: taking it does not block.
        lock.lock()
        lock.unlock()
    }
}
