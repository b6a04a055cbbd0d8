import Glibc
import Synchronization
import Testing
import VFIO
import VFIOSystem

/// `ReadinessPoller`: a wait cancelled at any point leaves nothing behind, so the next
/// wait on the same descriptor works.
@Suite struct SystemReadinessPollerTests {
    /// The task is cancelled right after its waiter became visible to cancellation (the
    /// poller's test hook runs there, on the waiting task's thread, and cancels that task:
    /// the cancellation handler has run when `cancel()` returns). Before the fix the poller
    /// registered the descriptor with epoll only after that point, so the cancellation
    /// found nothing to remove and the registration that followed stayed: the next wait
    /// failed with `EEXIST`.
    @Test func cancellationRightAfterPublishingLeavesTheDescriptorFree() async throws {
        let event = try EventFD()
        let fd = event.fd
        let poller = ReadinessPoller.shared
        let hookRan = HookRecord()
        poller.setPublishedHook(fd: fd) {
            hookRan.ran.store(true, ordering: .relaxed)
            withUnsafeCurrentTask { $0?.cancel() }
        }
        let cancelled = Task { try await poller.waitReadable(fd) }
        let outcome = await cancelled.result
        poller.setPublishedHook(fd: fd, nil)
        let ran = hookRan.ran.load(ordering: .relaxed)
        #expect(ran)
        #expect(throws: CancellationError.self) { try outcome.get() }

        // Readable now: the second wait must return at once, not fail.
        try event.signal()
        try await poller.waitReadable(fd)
        #expect(try event.consume() == 1)
    }

    /// A task cancelled before it waits gets `CancellationError` and registers nothing.
    @Test func waitOfACancelledTaskLeavesTheDescriptorFree() async throws {
        let event = try EventFD()
        let fd = event.fd
        let outcome = await Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await ReadinessPoller.shared.waitReadable(fd)
        }.result
        #expect(throws: CancellationError.self) { try outcome.get() }
        try event.signal()
        try await ReadinessPoller.shared.waitReadable(fd)
        #expect(try event.consume() == 1)
    }

    /// Waits on one descriptor one after another, each ending normally.
    @Test func waitsOnOneDescriptorOneAfterAnother() async throws {
        let event = try EventFD()
        for round in 1...3 {
            try event.signal(UInt64(round))
            try await ReadinessPoller.shared.waitReadable(event.fd)
            #expect(try event.consume() == UInt64(round))
        }
    }
}

/// Whether the test hook ran.
private final class HookRecord: Sendable {
    let ran = Atomic<Bool>(false)
}
