import Glibc
import Testing
import VFIOSystem

/// `Monitor` and its `Condition`s (one futex word each): no wake-up is lost, whether the
/// signal comes with the lock held or after it was released; a timed wait ends at its
/// deadline, not before; a broadcast wakes every waiter.
@Suite struct SystemMonitorTests {
    /// Two threads hand a turn back and forth 100 000 times, each waiting on a condition
    /// of its own and signalled after the lock is released (as the client wakes reply
    /// waiters). A lost wake-up would leave a thread asleep until its 10-second deadline,
    /// which the test records as a failure.
    @Test func turnsHandedBackAndForthLoseNoWakeUp() {
        let rounds = 100_000
        let monitor = Monitor((turn: 0, lost: 0))
        let conditions = [Condition(), Condition()]
        let threads = (0..<2).map { me in
            WorkerThread(name: "turn \(me)") {
                for _ in 0..<rounds {
                    let deadline = monotonicNanoseconds() + 10_000_000_000
                    let mine = monitor.wait(on: conditions[me], deadline: { _ in deadline }) { state -> Bool? in
                        state.turn == me ? true : nil
                    }
                    if mine == nil {
                        monitor.withLock { $0.lost += 1 }
                        return
                    }
                    monitor.withLock { $0.turn = 1 - me }
                    conditions[1 - me].signal()
                }
            }
        }
        for thread in threads { thread.join() }
        #expect(monitor.withLock { $0.lost } == 0)
    }

    /// A wait whose state never comes returns nil once its deadline has passed.
    @Test func timedWaitEndsAtItsDeadline() {
        let monitor = Monitor(false)
        let condition = Condition()
        let start = monotonicNanoseconds()
        let deadline = start + 20_000_000
        let outcome = monitor.wait(on: condition, deadline: { _ in deadline }) { ready -> Bool? in ready ? true : nil }
        #expect(outcome == nil)
        #expect(monotonicNanoseconds() >= deadline)
    }

    /// Eight threads wait on one condition; one broadcast after the state changes wakes
    /// them all (a missed one would wait until its 10-second deadline: recorded).
    @Test func broadcastWakesEveryWaiter() {
        let monitor = Monitor((open: false, asleep: 0, woken: 0, late: 0))
        let gate = Condition()
        let everyoneWaits = Condition()
        let threads = (0..<8).map { i in
            WorkerThread(name: "waiter \(i)") {
                let deadline = monotonicNanoseconds() + 10_000_000_000
                let woke = monitor.wait(on: gate, deadline: { _ in deadline }) { state -> Bool? in
                    if state.open { return true }
                    state.asleep += 1
                    everyoneWaits.signal()
                    return nil
                }
                monitor.withLock { state in if woke == nil { state.late += 1 } else { state.woken += 1 } }
            }
        }
        // Open the gate once every thread has looked at it at least once.
        _ = monitor.wait(on: everyoneWaits) { state -> Bool? in state.asleep >= 8 ? true : nil }
        monitor.withLock { $0.open = true }
        gate.broadcast()
        for thread in threads { thread.join() }
        let (woken, late) = monitor.withLock { ($0.woken, $0.late) }
        #expect(woken == 8)
        #expect(late == 0)
    }
}
