import CVFIO
import NVMe
import Synchronization
import VFIO
import VFIOSystem

/// A command ready for a queue: its entry (the command identifier and data pointer are
/// filled in at placement) and the data it transfers, contiguous in IOVA space.
struct PreparedCommand: Sendable {
    var entry: SubmissionQueueEntry
    var name: String
    var data: (iova: UInt64, length: Int)?
}

/// One submission queue and its completion queue (same id, same number of entries), in
/// DMA memory, with a PRP list page per command identifier.
///
/// At most `entries - 1` commands are outstanding, so neither queue can overflow. The
/// completion queue is drained by whoever calls `reap()`: the interrupt thread after each
/// signal of `interrupt`, or, in polled mode (no interrupt), the tasks waiting for their
/// commands. All queue state is behind one lock; continuations resume outside it.
/// Checked continuations, not unsafe ones: an unsafe continuation resumed by the
/// interrupt thread while its task is still suspending synchronizes only inside the
/// concurrency runtime, which ThreadSanitizer does not see (it reported a race in CI).
final class QueuePair: Sendable {
    private struct Slot {
        var name: String
        var opcode: UInt8
        /// On `coarseMonotonicNanoseconds()`.
        var deadline: UInt64
        var completion: CompletionQueueEntry?
        var waiter: CheckedContinuation<CompletionQueueEntry, any Error>?
        /// Timed out: the identifier stays in use until a completion for it arrives.
        var abandoned = false
    }

    private struct State {
        var tail: UInt16 = 0
        var head: UInt16 = 0
        var phase = true
        var free: [UInt16]
        var slots: [Slot?]
        var slotWaiters: [CheckedContinuation<Void, Never>] = []
        var failure: NVMeDriverError?
        var shadowTail: UInt16 = 0
        var shadowHead: UInt16 = 0
    }

    let id: UInt16
    let entries: Int
    let submissionQueue: NVMeBuffer
    let completionQueue: NVMeBuffer
    let prpLists: NVMeBuffer
    let prp: PRPBuilder
    let doorbells: Doorbells
    let shadow: ShadowDoorbells?
    /// The MSI-X vector's eventfd; nil in polled mode.
    let interrupt: EventFD?
    let vector: UInt16
    let timeout: Duration
    /// `timeout` in nanoseconds, for deadlines on the coarse clock.
    private let timeoutNanoseconds: UInt64
    /// A pthread monitor, not `Synchronization.Mutex`: the lock is held across the doorbell
    /// write, a system call or a message on the region-write path.
    private let state: Monitor<State>

    /// - Parameters: the queue memory comes from `allocator` (released by it on close).
    init(id: UInt16, entries: Int, allocator: DMAAllocator, doorbells: Doorbells, shadow: ShadowDoorbells?,
         interrupt: EventFD?, vector: UInt16, timeout: Duration) throws(NVMeDriverError) {
        precondition(entries >= 2 && entries <= 65536)
        self.id = id
        self.entries = entries
        submissionQueue = try allocator.allocate(entries * SubmissionQueueEntry.size)
        completionQueue = try allocator.allocate(entries * CompletionQueueEntry.size)
        prpLists = try allocator.allocate((entries - 1) * allocator.pageSize, zeroed: false)
        prp = PRPBuilder(pageSize: allocator.pageSize)
        self.doorbells = doorbells
        self.shadow = id == 0 ? nil : shadow
        self.interrupt = interrupt
        self.vector = vector
        self.timeout = timeout
        timeoutNanoseconds = nanoseconds(timeout, atMost: UInt64.max / 2)
        state = Monitor(State(free: (0..<UInt16(entries - 1)).reversed(), slots: Array(repeating: nil, count: entries - 1)))
        self.shadow?.resetEntries(queue: id)
    }

    /// The commands that may be outstanding at once.
    var depth: Int { entries - 1 }

    var isPolled: Bool { interrupt == nil }

    // MARK: Submission

    /// Places `commands` (at most `depth`) and rings the tail doorbell once; returns each
    /// one's completion or failure, in order.
    func submit(_ commands: [PreparedCommand]) async -> [Result<CompletionQueueEntry, NVMeDriverError>] {
        precondition(!commands.isEmpty && commands.count <= depth)
        let ids: [UInt16]
        do {
            ids = try await reserve(commands.count) { s in
                defer { s.free.removeLast(commands.count) }
                return Array(s.free.suffix(commands.count))
            }
        } catch {
            return commands.map { _ in .failure(error) }
        }
        if let error = place(commands.count, ids: ids, { commands[$0] }) { return commands.map { _ in .failure(error) } }
        var results: [Result<CompletionQueueEntry, NVMeDriverError>] = []
        results.reserveCapacity(ids.count)
        for cid in ids {
            do { results.append(.success(try await completion(of: cid))) } catch {
                results.append(.failure(error as? NVMeDriverError ?? .closed))
            }
        }
        return results
    }

    /// `submit` of one command, with no array made on the way (the I/O path).
    func submit(_ command: PreparedCommand) async -> Result<CompletionQueueEntry, NVMeDriverError> {
        let cid: UInt16
        do { cid = try await reserve(1) { s in s.free.removeLast() } } catch { return .failure(error) }
        if let error = place(1, ids: CollectionOfOne(cid), { _ in command }) { return .failure(error) }
        do { return .success(try await completion(of: cid)) } catch { return .failure(error as? NVMeDriverError ?? .closed) }
    }

    /// Waits until `count` command identifiers are free and takes them with `take`
    /// (lock held, at least `count` free).
    private func reserve<IDs>(_ count: Int, _ take: (inout State) -> IDs) async throws(NVMeDriverError) -> IDs {
        while true {
            let taken = try state.withLock { s throws(NVMeDriverError) -> IDs? in
                if let failure = s.failure { throw failure }
                guard s.free.count >= count else { return nil }
                return take(&s)
            }
            if let taken { return taken }
            if isPolled {
                reap()
                await Task.yield()
            } else {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { s -> Bool in
                        if s.failure != nil || s.free.count >= count { return true }
                        s.slotWaiters.append(c)
                        return false
                    }
                    if now { c.resume() }
                }
            }
        }
    }

    /// Writes the `count` entries `command(k)` at the tail, with the identifiers `ids`, and
    /// rings; on a doorbell failure the tail is rolled back and the identifiers freed.
    private func place<IDs: Collection<UInt16>>(_ count: Int, ids: IDs, _ command: (Int) -> PreparedCommand) -> NVMeDriverError? {
        // The coarse clock: a vDSO read even where the precise clock is a system call.
        let deadline = coarseMonotonicNanoseconds() &+ timeoutNanoseconds
        let outcome = state.withLock { s -> (NVMeDriverError?, [CheckedContinuation<Void, Never>]) in
            let start = s.tail
            for (k, cid) in ids.enumerated() {
                let prepared = command(k)
                var entry = prepared.entry
                entry.commandID = cid
                if let data = prepared.data {
                    let listOffset = Int(cid) * prp.pageSize
                    let pointer = prp.pointer(iova: data.iova, length: data.length, listIOVA: prpLists.iova + UInt64(listOffset))
                    entry.prp1 = pointer.prp1
                    entry.prp2 = pointer.prp2
                    if !pointer.list.isEmpty {
                        let list = (prpLists.memory.baseAddress + listOffset).assumingMemoryBound(to: UInt64.self)
                        for (k, page) in pointer.list.enumerated() { list[k] = page.littleEndian }
                    }
                }
                s.slots[Int(cid)] = Slot(name: prepared.name, opcode: prepared.entry.opcode, deadline: deadline)
                entry.store(to: submissionQueue.memory.baseAddress + Int(s.tail) * SubmissionQueueEntry.size)
                s.tail = UInt16((Int(s.tail) + 1) % entries)
            }
            do throws(VFIOError) {
                try ringSubmission(&s)
                return (nil, [])
            } catch {
                s.tail = start
                var woken: [CheckedContinuation<Void, Never>] = []
                for cid in ids { woken += Self.free(cid, &s) }
                return (.transport(error), woken)
            }
        }
        for w in outcome.1 { w.resume() }
        return outcome.0
    }

    private func ringSubmission(_ s: inout State) throws(VFIOError) {
        if let shadow {
            let need = shadow.update(index: shadow.index(queue: id, completion: false), old: s.shadowTail, new: s.tail)
            s.shadowTail = s.tail
            if !need { return }
        }
        try doorbells.ring(doorbells.submissionTail(queue: id), UInt32(s.tail))
    }

    // MARK: Completion

    /// The completion of command `cid`, waiting for the interrupt thread or polling.
    private func completion(of cid: UInt16) async throws -> CompletionQueueEntry {
        if isPolled {
            var round = 0
            while true {
                // The deadline only every 256th poll (as measured in Benchmarks/README.md):
                // command timeouts are seconds, and a poll is a few loads.
                let now: UInt64? = round % 256 == 255 ? coarseMonotonicNanoseconds() : nil
                var resumes: [(CheckedContinuation<CompletionQueueEntry, any Error>, CompletionQueueEntry)] = []
                var woken: [CheckedContinuation<Void, Never>] = []
                let outcome = state.withLock { s -> Result<CompletionQueueEntry, NVMeDriverError>? in
                    reapLocked(&s, resumes: &resumes, woken: &woken)
                    guard let slot = s.slots[Int(cid)] else { return .failure(.closed) }
                    if let entry = slot.completion {
                        woken += Self.free(cid, &s)
                        return .success(entry)
                    }
                    if let failure = s.failure { return .failure(failure) }
                    if let now, now > slot.deadline {
                        s.slots[Int(cid)]!.abandoned = true
                        return .failure(.timeout("the completion of \(slot.name) (queue \(id), command \(cid))"))
                    }
                    return nil
                }
                for w in woken { w.resume() }
                for (waiter, entry) in resumes { waiter.resume(returning: entry) }
                if let outcome { return try outcome.get() }
                round &+= 1
                // A few reads of the queue between yields: a completion that comes soon is
                // seen without a trip through the executor; other tasks still get turns.
                if round % Self.pollsPerYield == 0 { await Task.yield() }
            }
        }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<CompletionQueueEntry, any Error>) in
            let (ready, woken) = state.withLock { s -> (Result<CompletionQueueEntry, NVMeDriverError>?, [CheckedContinuation<Void, Never>]) in
                guard let slot = s.slots[Int(cid)] else { return (.failure(.closed), []) }
                if let entry = slot.completion { return (.success(entry), Self.free(cid, &s)) }
                if let failure = s.failure { return (.failure(failure), []) }
                s.slots[Int(cid)]!.waiter = c
                return (nil, [])
            }
            for w in woken { w.resume() }
            if let ready { c.resume(with: ready.mapError { $0 as any Error }) }
        }
    }

    /// Frees `cid`; returns the tasks waiting for identifiers, to resume outside the lock.
    private static func free(_ cid: UInt16, _ s: inout State) -> [CheckedContinuation<Void, Never>] {
        s.slots[Int(cid)] = nil
        s.free.append(cid)
        let waiters = s.slotWaiters
        s.slotWaiters = []
        return waiters
    }

    /// Drains the completion queue: completions go to their waiters (or are kept for
    /// them), the head doorbell is rung once. A completion naming no outstanding command
    /// is skipped. Returns the number of entries consumed.
    @discardableResult
    func reap() -> Int {
        var resumes: [(CheckedContinuation<CompletionQueueEntry, any Error>, CompletionQueueEntry)] = []
        var woken: [CheckedContinuation<Void, Never>] = []
        let consumed = state.withLock { s in reapLocked(&s, resumes: &resumes, woken: &woken) }
        for w in woken { w.resume() }
        for (waiter, entry) in resumes { waiter.resume(returning: entry) }
        return consumed
    }

    /// `reap` with the lock held: the continuations to resume (outside the lock) are
    /// added to `resumes` and `woken`.
    @discardableResult
    private func reapLocked(_ s: inout State, resumes: inout [(CheckedContinuation<CompletionQueueEntry, any Error>, CompletionQueueEntry)],
                            woken: inout [CheckedContinuation<Void, Never>]) -> Int {
        var count = 0
        let base = completionQueue.memory.baseAddress
        while true {
            let slotAddress = base + Int(s.head) * CompletionQueueEntry.size
            let dword3 = cvfio_mmio_read32(slotAddress + 12)
            guard (dword3 >> 16 & 1 != 0) == s.phase else { break }
            atomicMemoryFence(ordering: .acquiring)
            let entry = CompletionQueueEntry(loadingFrom: slotAddress)
            count += 1
            s.head += 1
            if Int(s.head) == entries {
                s.head = 0
                s.phase.toggle()
            }
            let cid = Int(entry.commandID)
            guard cid < s.slots.count, let slot = s.slots[cid], slot.completion == nil else { continue }
            if slot.abandoned {
                woken += Self.free(entry.commandID, &s)
            } else if let waiter = slot.waiter {
                woken += Self.free(entry.commandID, &s)
                resumes.append((waiter, entry))
            } else {
                s.slots[cid]!.completion = entry
            }
        }
        if count > 0 { ringCompletion(&s) }
        return count
    }

    private func ringCompletion(_ s: inout State) {
        if let shadow {
            let need = shadow.update(index: shadow.index(queue: id, completion: true), old: s.shadowHead, new: s.head)
            s.shadowHead = s.head
            if !need { return }
        }
        // A failed head doorbell leaves the controller's view behind; the next reap rings again.
        try? doorbells.ring(doorbells.completionHead(queue: id), UInt32(s.head))
    }

    // MARK: Failure

    /// Fails the commands past their deadline with `.timeout`; their identifiers stay
    /// taken until the controller completes them.
    func expire(now: UInt64) {
        var timedOut: [(CheckedContinuation<CompletionQueueEntry, any Error>, String, UInt16)] = []
        state.withLock { s in
            for cid in s.slots.indices {
                guard let slot = s.slots[cid], !slot.abandoned, slot.completion == nil, let waiter = slot.waiter, now > slot.deadline else { continue }
                s.slots[cid]!.abandoned = true
                s.slots[cid]!.waiter = nil
                timedOut.append((waiter, slot.name, UInt16(cid)))
            }
        }
        for (waiter, name, cid) in timedOut {
            waiter.resume(throwing: NVMeDriverError.timeout("the completion of \(name) (queue \(id), command \(cid))"))
        }
    }

    /// Fails every outstanding and future command with `error`.
    func fail(_ error: NVMeDriverError) {
        let (waiters, slotWaiters) = state.withLock { s in
            if s.failure == nil { s.failure = error }
            var waiters: [CheckedContinuation<CompletionQueueEntry, any Error>] = []
            for cid in s.slots.indices {
                if let waiter = s.slots[cid]?.waiter {
                    waiters.append(waiter)
                    s.slots[cid]!.waiter = nil
                    s.slots[cid]!.abandoned = true
                }
            }
            let slotWaiters = s.slotWaiters
            s.slotWaiters = []
            return (waiters, slotWaiters)
        }
        for w in slotWaiters { w.resume() }
        for w in waiters { w.resume(throwing: error) }
    }

    /// Polls of the completion queue between `Task.yield()`s in polled mode.
    static let pollsPerYield = 4

    /// Commands placed and not yet completed (abandoned ones included).
    var outstanding: Int { state.withLock { s in s.slots.count - s.free.count } }
}
