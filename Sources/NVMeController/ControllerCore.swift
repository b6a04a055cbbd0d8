import Glibc
import NVMe
import Synchronization
import VFIO
import VFIODeviceKit
import VFIOSystem

/// The controller's state and its I/O worker. The serving thread changes registers and
/// doorbells under `monitor` (every change broadcasts, which wakes the worker); the
/// worker fetches, executes and completes commands, taking the monitor only to pick work
/// and to change controller state, never across DMA or namespace I/O (DMA may need the
/// server's device lock, which the serving thread holds while it takes the monitor).
final class ControllerCore: @unchecked Sendable {
    static let maximumQueueEntries = NVMeDevice.maximumQueueEntries
    let monitor: Monitor<ControllerState>
    let namespaces: [any NamespaceStorage]
    let ioQueues: Int
    let serialNumber: String
    let capabilities: ControllerCapabilities
    private let contextBox = Monitor<(any DeviceContext)?>(nil)
    private let worker = Monitor<WorkerThread?>(nil)
    let lastLoadError = Monitor<String?>(nil)
    /// Broadcast (monitor held) whenever the worker finishes what it picked.
    let idle = Condition()
    /// Broadcast (monitor held) when the worker answers `waitUntilQuiescent`'s requests.
    private let quiescent = Condition()
    /// The Asynchronous Event Request Limit (AERL + 1).
    static let eventRequestLimit = 4
    /// Error log entries kept (ELPE + 1).
    static let errorLogEntries = 16

    init(config: PCIConfigSpace, namespaces: [any NamespaceStorage], ioQueues: Int, serialNumber: String) {
        monitor = Monitor(ControllerState(config: config))
        self.namespaces = namespaces
        self.ioQueues = ioQueues
        self.serialNumber = serialNumber
        // TO = 20: the host waits up to 10 s for RDY.
        capabilities = ControllerCapabilities(maximumQueueEntries: Self.maximumQueueEntries, contiguousQueuesRequired: true, timeout: 20)
    }

    func attach(_ context: any DeviceContext) {
        contextBox.withLock { $0 = context }
        worker.withLock { thread in
            guard thread == nil else { return }
            thread = WorkerThread(name: "nvme-io") { [self] in self.run() }
        }
    }

    var context: (any DeviceContext)? { contextBox.withLock { $0 } }

    func deliver(_ signals: [IRQSignal]) {
        guard !signals.isEmpty, let context else { return }
        for signal in signals { context.triggerIRQ(index: signal.index, vector: signal.vector) }
    }

    /// Ends the worker (the model is being released). The last reference may go on the
    /// worker itself (a context call it made released the server): then nobody can join
    /// it, and it detaches itself.
    func shutDownWorker() {
        monitor.update { $0.exiting = true }
        guard let thread = worker.withLock({ $0 }) else { return }
        if thread.isCurrent {
            pthread_detach(pthread_self())
        } else {
            thread.join()
        }
    }

    // MARK: DMA

    func dmaRead(_ address: UInt64, count: Int) throws(VFIOError) -> [UInt8] {
        guard let context else { throw .errno("NVMe DMA read (no context)", DeviceErrno.EIO) }
        var bytes = [UInt8](repeating: 0, count: count)
        var failure: VFIOError?
        bytes.withUnsafeMutableBytes { raw in
            do throws(VFIOError) { try context.dmaRead(iova: address, into: raw) } catch { failure = error }
        }
        if let failure { throw failure }
        return bytes
    }

    func dmaWrite(_ address: UInt64, _ bytes: UnsafeRawBufferPointer) throws(VFIOError) {
        guard let context else { throw .errno("NVMe DMA write (no context)", DeviceErrno.EIO) }
        try context.dmaWrite(iova: address, from: bytes)
    }

    // MARK: The worker

    private enum Work {
        case exit
        /// A doorbell register write with shadow doorbells in use: read the shadow.
        case recheck
        case shutdown(generation: UInt64)
        /// Completions held while the device was stopped, to post now that it runs.
        case flushCompletions(generation: UInt64)
        case command(queue: UInt16, address: UInt64, head: UInt32, generation: UInt64)
        /// An Asynchronous Event Request to complete with an event.
        case event(commandID: UInt16, event: AsynchronousEvent, generation: UInt64)
    }

    private func run() {
        while true {
            let kicks = monitor.withLock { $0.doorbellKicks }
            syncShadowDoorbells()
            var work = monitor.withLock { s in Self.pickWork(&s) }
            if work == nil, publishEventIndexesAndRecheck() { continue }
            if work == nil {
                // Woken by every doorbell write, register change and reset (monitor.update).
                work = monitor.wait { s -> Work? in
                    if let picked = Self.pickWork(&s) { return picked }
                    if s.doorbellKicks != kicks { return .recheck }
                    parked(&s)
                    return nil
                }
            }
            switch work! {
            case .exit:
                return
            case .recheck:
                continue
            case .shutdown(let generation):
                for namespace in namespaces { try? namespace.flush() }
                monitor.update { s in
                    if s.generation == generation, s.status.shutdown == .processing {
                        s.status.rawValue = s.status.rawValue & ~0xC | UInt32(ControllerStatus.ShutdownStatus.complete.rawValue) << 2
                    }
                    markIdle(&s)
                }
            case .flushCompletions(let generation):
                let pending = monitor.withLock { s -> [PendingCompletion] in
                    defer { s.pendingCompletions = [] }
                    return s.pendingCompletions
                }
                for completion in pending { post(completion.entry, to: completion.queue, generation: generation) }
                monitor.update { markIdle(&$0) }
            case .command(let queue, let address, let head, let generation):
                process(queue: queue, address: address, head: head, generation: generation)
            case .event(let commandID, let event, let generation):
                post(CompletionQueueEntry(dword0: event.dword0, submissionQueueHead: currentHead(0), submissionQueueID: 0,
                                          commandID: commandID, phase: false, status: .success),
                     to: 0, generation: generation)
                monitor.update { markIdle(&$0) }
            }
        }
    }

    /// The next thing for the worker: exit, a shutdown to finish, or a command; `nil`
    /// when there is nothing.
    private static func pickWork(_ s: inout ControllerState) -> Work? {
        if s.exiting { return .exit }
        if s.shutdownRequested {
            s.shutdownRequested = false
            s.workerBusy = true
            return .shutdown(generation: s.generation)
        }
        guard s.ready, s.status.rawValue & 2 == 0, s.runState == .running else { return nil }
        if !s.pendingCompletions.isEmpty {
            s.workerBusy = true
            return .flushCompletions(generation: s.generation)
        }
        if let report = takeReportableEvent(&s) {
            s.workerBusy = true
            return .event(commandID: report.commandID, event: report.event, generation: s.generation)
        }
        guard let pick = nextCommand(&s) else { return nil }
        s.workerBusy = true
        return pick
    }

    /// Round robin over the submission queues with entries: the next command's address,
    /// its queue's head advanced.
    private static func nextCommand(_ s: inout ControllerState) -> Work? {
        let ids = s.submissionQueues.keys.sorted()
        guard !ids.isEmpty else { return nil }
        let start = ids.firstIndex { $0 >= s.nextQueue } ?? 0
        for k in 0..<ids.count {
            let id = ids[(start + k) % ids.count]
            guard var sq = s.submissionQueues[id], !sq.isEmpty else { continue }
            let address = sq.base &+ UInt64(sq.head) * UInt64(SubmissionQueueEntry.size)
            sq.head = (sq.head + 1) % sq.size
            s.submissionQueues[id] = sq
            s.nextQueue = id &+ 1
            return .command(queue: id, address: address, head: sq.head, generation: s.generation)
        }
        return nil
    }

    /// The worker has nothing in flight: a reset waiting for it clears RDY.
    private static func finishIdle(_ s: inout ControllerState) {
        if s.readyClearsWhenIdle {
            s.readyClearsWhenIdle = false
            s.status.rawValue &= ~0x1
        }
    }

    /// A fatal controller error: CSTS.CFS, processing stops until a reset. Ignored when
    /// the controller was reset since `generation` (the failure belongs to the old one:
    /// a client that left takes its memory with it).
    func fail(_ reason: String, generation: UInt64) {
        monitor.update { s in
            guard s.generation == generation else { return }
            s.status.rawValue |= 2
            s.fatalReason = reason
        }
    }

    /// What a command's execution produces: the completion's status and DW0, or nothing
    /// yet (an Asynchronous Event Request completes later).
    enum Outcome {
        case complete(NVMeStatus, dword0: UInt32)
        case deferred
    }

    private func process(queue: UInt16, address: UInt64, head: UInt32, generation: UInt64) {
        let entry: SubmissionQueueEntry
        do {
            entry = SubmissionQueueEntry(try dmaRead(address, count: SubmissionQueueEntry.size))
        } catch {
            fail("fetching a command of submission queue \(queue) at 0x\(String(address, radix: 16)): \(error)", generation: generation)
            monitor.update { markIdle(&$0) }
            return
        }
        let abortRequested = monitor.withLock { s in
            s.abortedCommands.remove(QueuedCommand(queue: queue, commandID: entry.commandID)) != nil
        }
        let outcome = abortRequested ? .complete(.abortRequested, dword0: 0)
            : queue == 0 ? executeAdmin(entry, generation: generation) : executeIO(entry, queue: queue)
        let completionQueue = monitor.withLock { s -> UInt16? in
            guard s.generation == generation else { return nil }
            return s.submissionQueues[queue]?.completionQueue ?? (queue == 0 ? 0 : nil)
        }
        if case .complete(let status, let dword0) = outcome, let completionQueue {
            if !status.isSuccess { recordError(entry, queue: queue, status: status) }
            post(CompletionQueueEntry(dword0: dword0, submissionQueueHead: UInt16(head), submissionQueueID: queue,
                                      commandID: entry.commandID, phase: false, status: status),
                 to: completionQueue, generation: generation)
        }
        monitor.update { markIdle(&$0) }
    }

    /// The worker has finished what it picked (its DMA included): a reset waiting for it
    /// clears RDY, a migration stop waiting for it goes on.
    private func markIdle(_ s: inout ControllerState) {
        s.workerBusy = false
        Self.finishIdle(&s)
        idle.broadcast()
    }

    /// Waits until the worker has nothing in flight, at most `seconds`; false when it
    /// still has (its DMA may be waiting for the device lock the caller's thread holds,
    /// with a client whose memory is reached through messages).
    func waitUntilIdle(seconds: UInt64) -> Bool {
        let deadline = monotonicNanoseconds() + seconds * 1_000_000_000
        return monitor.withLockedWait { s, wait in
            while s.workerBusy {
                if monotonicNanoseconds() >= deadline { return false }
                wait(idle, deadline)
            }
            return true
        }
    }

    /// The worker goes to sleep with nothing it can do until the state changes: the
    /// quiescence requests made so far are answered.
    private func parked(_ s: inout ControllerState) {
        guard s.quiescentAt != s.quiescenceRequests else { return }
        s.quiescentAt = s.quiescenceRequests
        quiescent.broadcast()
    }

    /// Waits until the worker has gone to sleep with nothing it can do (no command to
    /// fetch, or a full completion queue to wait on) after every state change made
    /// before this call, at most `seconds`; false when it has not (a worker that never
    /// settles, or one that has ended).
    func waitUntilQuiescent(seconds: UInt64) -> Bool {
        let request = monitor.update { s -> UInt64 in
            s.quiescenceRequests += 1
            return s.quiescenceRequests
        }
        let deadline = monotonicNanoseconds() + seconds * 1_000_000_000
        return monitor.wait(on: quiescent, deadline: { _ in deadline }) { s in s.quiescentAt >= request ? true : nil } ?? false
    }

    private func recordError(_ entry: SubmissionQueueEntry, queue: UInt16, status: NVMeStatus) {
        monitor.withLock { s in
            Self.logError(&s, submissionQueueID: queue, commandID: entry.commandID, status: status, namespaceID: entry.namespaceID)
        }
    }

    /// Posts `entry` (its phase set here) to completion queue `queue`, waiting while the
    /// queue is full, then raises the queue's vector. Dropped when the controller was
    /// reset since `generation` or the queue was deleted.
    func post(_ entry: CompletionQueueEntry, to queue: UInt16, generation: UInt64) {
        func reserve(_ s: inout ControllerState) -> (address: UInt64, phase: Bool)?? {
            guard s.generation == generation, !s.exiting, s.status.rawValue & 2 == 0, let cq = s.completionQueues[queue] else { return .some(nil) }
            // Stopped or quiescent: no DMA; the completion waits in the state (and migrates).
            if s.runState != .running {
                s.pendingCompletions.append(PendingCompletion(queue: queue, entry: entry))
                return .some(nil)
            }
            if cq.isFull { return nil }
            var q = cq
            let address = q.base &+ UInt64(q.tail) * UInt64(CompletionQueueEntry.size)
            let phase = q.phase
            q.tail = (q.tail + 1) % q.size
            if q.tail == 0 { q.phase.toggle() }
            s.completionQueues[queue] = q
            return .some((address, phase))
        }
        enum Wait { case reserved((address: UInt64, phase: Bool)?), retry }
        var reserved: (address: UInt64, phase: Bool)??
        while reserved == nil {
            let kicks = monitor.withLock { $0.doorbellKicks }
            reserved = monitor.withLock { reserve(&$0) }
            if reserved != nil { break }
            // Full: with shadow doorbells the head may be in the shadow buffer only.
            if requestCompletionHead(queue) { continue }
            // A head doorbell write (the EventIdx asks for one) or a reset wakes this.
            let outcome = monitor.wait { s -> Wait? in
                if let r = reserve(&s) { return .reserved(r) }
                if s.doorbellKicks != kicks { return .retry }
                parked(&s)
                return nil
            }
            if case .reserved(let r) = outcome { reserved = .some(r) }
        }
        guard let slot = reserved! else { return }
        var entry = entry
        entry.phase = slot.phase
        var failure: VFIOError?
        entry.encoded.withUnsafeBytes { raw in
            do throws(VFIOError) { try dmaWrite(slot.address, raw) } catch { failure = error }
        }
        if let failure {
            fail("posting to completion queue \(queue) at 0x\(String(slot.address, radix: 16)): \(failure)", generation: generation)
            return
        }
        deliver(monitor.withLock { s -> [IRQSignal] in
            guard s.generation == generation, let cq = s.completionQueues[queue], cq.interruptsEnabled else { return [] }
            if s.config.activeIRQIndex != PCIIRQIndex.msix.rawValue && s.interruptMask & 1 != 0 { return [] }
            return s.config.raise(vector: Int(cq.vector))
        })
    }
}
