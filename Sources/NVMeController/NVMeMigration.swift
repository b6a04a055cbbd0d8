import NVMe
import VFIO
import VFIODeviceKit

extension NamespaceStorage {
    /// Whether the blocks travel in the migration state (a RAM namespace) rather than
    /// staying where both sides reach them (a file or device the destination opens too).
    var migratesContents: Bool { self is RAMNamespaceStorage }
}

/// Live migration (`MigratableDevice`, identity `"nvme"` version 1; STOP_COPY and P2P).
///
/// Entering quiescent or stopped, the worker starts no new command and the command in
/// flight is drained: its data transfer finishes, and its completion (like every
/// completion due while stopped) is held in the state and posted once the device runs,
/// here or on the destination. Commands the host queued but the controller has not
/// fetched stay in the submission queues (carried by their heads and tails). While
/// stopped, BAR0 register and doorbell writes are ignored.
///
/// The state: the namespaces' identities (count, block size and count, identity: a
/// destination whose namespaces differ refuses it) and, for RAM namespaces, their blocks;
/// the registers (CC, CSTS, AQA, ASQ, ACQ, INTMS); every queue (base, size, head, tail,
/// phase, vector, interrupts enabled, completion queue); features; the doorbell buffers;
/// outstanding asynchronous event requests and undelivered events; held completions; the
/// error count and the SMART counters; the configuration space. Not carried: the error
/// log's entries (the count is), an asserted INTx (MSI-X is what drivers use).
extension NVMeDevice: MigratableDevice {
    public var migration: (any MigratableDevice)? { self }
    public var migrationFeatures: MigrationFeatures { [.stopCopy, .p2p] }
    public var migrationIdentity: MigrationIdentity { MigrationIdentity(name: "nvme", version: 1) }

    public var stateSizeHint: Int? {
        4096 + core.namespaces.filter(\.migratesContents).reduce(0) { $0 + Int($1.blockCount) * $1.blockSize }
    }

    public func setMigrationRunState(_ runState: MigrationRunState) throws(VFIOError) {
        core.monitor.update { $0.runState = runState }
        guard runState != .running else { return }
        guard core.waitUntilIdle(seconds: 10) else {
            throw .errno("NVMe \(runState): the command in flight did not finish within 10 s", DeviceErrno.EBUSY)
        }
    }

    public func saveState() throws(VFIOError) -> [UInt8] {
        var w = ByteWriter(capacity: 4096)
        let namespaces = core.namespaces
        w.u32(UInt32(namespaces.count))
        for namespace in namespaces {
            w.u32(UInt32(namespace.blockSize))
            w.u64(namespace.blockCount)
            let identity = Array(namespace.identity.utf8)
            w.u16(UInt16(identity.count))
            w.append(contentsOf: identity)
            w.u8(namespace.migratesContents ? 1 : 0)
        }
        w.u32(UInt32(core.ioQueues))
        core.monitor.withLock { s in
            w.u32(s.configuration.rawValue)
            w.u32(s.status.rawValue)
            w.u32(s.adminQueueAttributes.rawValue)
            w.u64(s.adminSubmissionQueueBase)
            w.u64(s.adminCompletionQueueBase)
            w.u32(s.interruptMask)
            w.u32(s.features.arbitration)
            w.u32(s.features.interruptCoalescing)
            w.u8(s.features.volatileWriteCache ? 1 : 0)
            w.u32(s.features.asynchronousEventConfiguration)
            w.u8(s.features.queuesGranted == nil ? 0 : 1)
            w.u32(s.features.queuesGranted ?? 0)
            w.u8(s.doorbellBuffers == nil ? 0 : 1)
            w.u64(s.doorbellBuffers?.shadow ?? 0)
            w.u64(s.doorbellBuffers?.eventIndex ?? 0)
            w.u32(UInt32(s.submissionQueues.count))
            for id in s.submissionQueues.keys.sorted() {
                let q = s.submissionQueues[id]!
                w.u16(id); w.u64(q.base); w.u32(q.size); w.u32(q.head); w.u32(q.tail); w.u16(q.completionQueue)
            }
            w.u32(UInt32(s.completionQueues.count))
            for id in s.completionQueues.keys.sorted() {
                let q = s.completionQueues[id]!
                w.u16(id); w.u64(q.base); w.u32(q.size); w.u32(q.head); w.u32(q.tail)
                w.u8(q.phase ? 1 : 0); w.u16(q.vector); w.u8(q.interruptsEnabled ? 1 : 0)
            }
            w.u32(UInt32(s.outstandingEventRequests.count))
            for id in s.outstandingEventRequests { w.u16(id) }
            w.u32(UInt32(s.pendingEvents.count))
            for event in s.pendingEvents { w.u32(event.dword0) }
            w.u32(UInt32(s.reportedEvents.count))
            for event in s.reportedEvents { w.u32(event.dword0) }
            w.u32(UInt32(s.abortedCommands.count))
            for command in s.abortedCommands.sorted(by: { ($0.queue, $0.commandID) < ($1.queue, $1.commandID) }) {
                w.u16(command.queue); w.u16(command.commandID)
            }
            w.u32(UInt32(s.pendingCompletions.count))
            for pending in s.pendingCompletions {
                w.u16(pending.queue)
                w.append(contentsOf: pending.entry.encoded)
            }
            w.u64(s.errorCount)
            w.u64(s.statistics.bytesRead); w.u64(s.statistics.bytesWritten)
            w.u64(s.statistics.readCommands); w.u64(s.statistics.writeCommands)
            s.config.saveMigrationState(into: &w)
        }
        var out = w.bytes
        for namespace in namespaces where namespace.migratesContents {
            let start = out.count
            out.append(contentsOf: repeatElement(0, count: Int(namespace.blockCount) * namespace.blockSize))
            var failure: VFIOError?
            out.withUnsafeMutableBytes { raw in
                do throws(VFIOError) { try namespace.read(at: 0, into: UnsafeMutableRawBufferPointer(rebasing: raw[start...])) } catch { failure = error }
            }
            if let failure { throw failure }
        }
        return out
    }

    public func loadState(_ bytes: [UInt8], version: UInt32) throws(VFIOError) {
        do {
            try load(bytes, version: version)
            core.lastLoadError.withLock { $0 = nil }
        } catch {
            core.lastLoadError.withLock { $0 = "\(error)" }
            throw error
        }
    }

    /// Why the last `loadState` refused its state, or `nil` (the client sees only an
    /// errno; this names the field).
    public var lastLoadError: String? { core.lastLoadError.withLock { $0 } }

    private func load(_ bytes: [UInt8], version: UInt32) throws(VFIOError) {
        let what = "nvme state"
        guard version == 1 else { throw .malformed(what, "version \(version) is not supported (this model reads version 1)") }
        var r = ByteReader(bytes, context: what)
        let namespaces = core.namespaces
        let count = try r.u32()
        guard count == UInt32(namespaces.count) else { throw .malformed(what, "\(count) namespace(s); this controller has \(namespaces.count)") }
        for (k, namespace) in namespaces.enumerated() {
            let blockSize = try r.u32()
            let blockCount = try r.u64()
            let identityLength = Int(try r.u16())
            let identity = String(decoding: try r.bytes(identityLength), as: UTF8.self)
            let carries = try r.u8() != 0
            guard blockSize == UInt32(namespace.blockSize), blockCount == namespace.blockCount else {
                throw .malformed(what, "namespace \(k + 1) has \(blockCount) blocks of \(blockSize) bytes there, \(namespace.blockCount) of \(namespace.blockSize) here")
            }
            guard identity == namespace.identity, carries == namespace.migratesContents else {
                throw .malformed(what, "namespace \(k + 1) is '\(identity)' there, '\(namespace.identity)' here")
            }
        }
        let queues = try r.u32()
        guard queues == UInt32(core.ioQueues) else { throw .malformed(what, "\(queues) I/O queues there, \(core.ioQueues) here") }
        var s = core.monitor.withLock { $0 }
        s.configuration = ControllerConfiguration(rawValue: try r.u32())
        s.status = ControllerStatus(rawValue: try r.u32())
        s.adminQueueAttributes = AdminQueueAttributes(rawValue: try r.u32())
        s.adminSubmissionQueueBase = try r.u64()
        s.adminCompletionQueueBase = try r.u64()
        s.interruptMask = try r.u32() & 1
        s.features.arbitration = try r.u32()
        s.features.interruptCoalescing = try r.u32()
        s.features.volatileWriteCache = try r.u8() != 0
        s.features.asynchronousEventConfiguration = try r.u32()
        let granted = try r.u8() != 0
        let grantedValue = try r.u32()
        s.features.queuesGranted = granted ? grantedValue : nil
        let hasBuffers = try r.u8() != 0
        let shadow = try r.u64(), eventIndex = try r.u64()
        s.doorbellBuffers = hasBuffers ? DoorbellBuffers(shadow: shadow, eventIndex: eventIndex) : nil
        let maxEntries = UInt32(Self.maximumQueueEntries) + 1
        func checkQueue(_ id: UInt16, _ size: UInt32, _ head: UInt32, _ tail: UInt32) throws(VFIOError) {
            guard Int(id) <= core.ioQueues, size >= 2, size <= maxEntries, head < size, tail < size else {
                throw .malformed(what, "queue \(id): size \(size), head \(head), tail \(tail) out of range")
            }
        }
        s.submissionQueues = [:]
        for _ in 0..<min(try r.u32(), 65) {
            let id = try r.u16(), base = try r.u64(), size = try r.u32(), head = try r.u32(), tail = try r.u32(), cq = try r.u16()
            try checkQueue(id, size, head, tail)
            s.submissionQueues[id] = SubmissionQueueState(base: base, size: size, head: head, tail: tail, completionQueue: cq)
        }
        s.completionQueues = [:]
        for _ in 0..<min(try r.u32(), 65) {
            let id = try r.u16(), base = try r.u64(), size = try r.u32(), head = try r.u32(), tail = try r.u32()
            let phase = try r.u8() != 0, vector = try r.u16(), enabled = try r.u8() != 0
            try checkQueue(id, size, head, tail)
            guard Int(vector) <= core.ioQueues else { throw .malformed(what, "completion queue \(id) has vector \(vector)") }
            s.completionQueues[id] = CompletionQueueState(base: base, size: size, head: head, tail: tail, phase: phase, vector: vector, interruptsEnabled: enabled)
        }
        for (id, sq) in s.submissionQueues where s.completionQueues[sq.completionQueue] == nil {
            throw .malformed(what, "submission queue \(id) completes to queue \(sq.completionQueue), which is not there")
        }
        s.outstandingEventRequests = []
        for _ in 0..<min(try r.u32(), UInt32(ControllerCore.eventRequestLimit)) { s.outstandingEventRequests.append(try r.u16()) }
        func events() throws(VFIOError) -> [AsynchronousEvent] {
            let count = try r.u32()
            guard count <= UInt32(ControllerCore.pendingEventLimit) else { throw .malformed(what, "\(count) asynchronous events") }
            var events: [AsynchronousEvent] = []
            for _ in 0..<count {
                let dword0 = try r.u32()
                guard let type = AsynchronousEventType(rawValue: UInt8(dword0 & 0x7)) else { throw .malformed(what, "event type \(dword0 & 7)") }
                events.append(AsynchronousEvent(type: type, information: UInt8(truncatingIfNeeded: dword0 >> 8), logPage: UInt8(truncatingIfNeeded: dword0 >> 16)))
            }
            return events
        }
        s.pendingEvents = try events()
        s.reportedEvents = try events()
        s.abortedCommands = []
        let aborted = try r.u32()
        guard aborted <= 65 * maxEntries else { throw .malformed(what, "\(aborted) aborted commands") }
        for _ in 0..<aborted {
            let queue = try r.u16(), commandID = try r.u16()
            guard s.submissionQueues[queue] != nil else { throw .malformed(what, "an aborted command of queue \(queue), which is not there") }
            s.abortedCommands.insert(QueuedCommand(queue: queue, commandID: commandID))
        }
        s.pendingCompletions = []
        let held = try r.u32()
        guard held <= 65 * maxEntries else { throw .malformed(what, "\(held) held completions") }
        for _ in 0..<held {
            let queue = try r.u16()
            guard s.completionQueues[queue] != nil else { throw .malformed(what, "a held completion for queue \(queue), which is not there") }
            s.pendingCompletions.append(PendingCompletion(queue: queue, entry: CompletionQueueEntry(try r.bytes(CompletionQueueEntry.size))))
        }
        s.errorCount = try r.u64()
        s.errorLog = []
        s.statistics = .init(bytesRead: try r.u64(), bytesWritten: try r.u64(), readCommands: try r.u64(), writeCommands: try r.u64())
        r.context = "nvme state (config space)"
        try s.config.loadMigrationState(from: &r)
        r.context = what
        let carried = namespaces.filter(\.migratesContents)
        let dataBytes = carried.reduce(0) { $0 + Int($1.blockCount) * $1.blockSize }
        guard r.remaining == dataBytes else { throw .malformed(what, "\(r.remaining) byte(s) of namespace data, expected \(dataBytes)") }
        var at = r.offset
        for namespace in carried {
            let size = Int(namespace.blockCount) * namespace.blockSize
            var failure: VFIOError?
            bytes.withUnsafeBytes { raw in
                do throws(VFIOError) {
                    try namespace.write(at: 0, from: UnsafeRawBufferPointer(rebasing: raw[at..<(at + size)]), durable: false)
                } catch { failure = error }
            }
            if let failure { throw failure }
            at += size
        }
        core.monitor.update { current in
            s.runState = current.runState
            s.generation = current.generation &+ 1
            s.workerBusy = false
            s.readyClearsWhenIdle = false
            s.shutdownRequested = false
            s.exiting = current.exiting
            current = s
        }
    }
}
