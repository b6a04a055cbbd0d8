import NVMe
import VFIO
import VFIODeviceKit

/// The admin command set (submission queue 0).
extension ControllerCore {
    func executeAdmin(_ entry: SubmissionQueueEntry, generation: UInt64) -> Outcome {
        guard entry.fuse == 0 else { return .complete(.invalidField, dword0: 0) }
        guard let opcode = AdminOpcode(rawValue: entry.opcode) else { return .complete(.invalidOpcode, dword0: 0) }
        switch opcode {
        case .identify: return .complete(identify(entry), dword0: 0)
        case .createIOCompletionQueue: return .complete(createCompletionQueue(entry), dword0: 0)
        case .createIOSubmissionQueue: return .complete(createSubmissionQueue(entry), dword0: 0)
        case .deleteIOSubmissionQueue: return .complete(deleteSubmissionQueue(entry), dword0: 0)
        case .deleteIOCompletionQueue: return .complete(deleteCompletionQueue(entry), dword0: 0)
        case .getFeatures: return features(entry, set: false)
        case .setFeatures: return features(entry, set: true)
        case .getLogPage: return .complete(logPage(entry), dword0: 0)
        case .asynchronousEventRequest: return eventRequest(entry, generation: generation)
        case .abort: return abort(entry, generation: generation)
        case .doorbellBufferConfig: return .complete(configureDoorbellBuffers(entry), dword0: 0)
        default: return .complete(.invalidOpcode, dword0: 0)
        }
    }

    // MARK: Identify

    var identifyController: IdentifyController {
        var c = IdentifyController()
        c.vendorID = NVMeDevice.vendorID
        c.subsystemVendorID = NVMeDevice.vendorID
        c.serialNumber = serialNumber
        c.modelNumber = "swift-vfio NVMe controller"
        c.firmwareRevision = "1.0"
        c.arbitrationBurst = 6
        c.maximumDataTransferSize = NVMeDevice.maximumDataTransferShift
        c.controllerID = 1
        c.abortCommandLimit = 3
        c.asynchronousEventRequestLimit = UInt8(Self.eventRequestLimit - 1)
        c.firmwareUpdates = 0x03  // one slot, read-only
        c.logPageAttributes = 0x04  // extended data for Get Log Page (NUMDU, LPO)
        c.errorLogPageEntries = UInt8(Self.errorLogEntries - 1)
        c.warningTemperature = 0x157
        c.criticalTemperature = 0x175
        c.maximumOutstandingCommands = 0
        c.numberOfNamespaces = UInt32(namespaces.count)
        c.optionalAdminCommands = [.doorbellBufferConfig]
        c.optionalNVMCommands = [.datasetManagement, .writeZeroes]
        c.volatileWriteCache = 0x07  // present; Flush with NSID FFFFFFFFh flushes all
        c.subsystemNQN = "nqn.2026-01.org.swift-vfio:nvme:\(serialNumber)"
        c.powerState0MaximumPower = 2500
        return c
    }

    /// NGUID: the namespace number and a hash of the storage's identity, stable for a
    /// given backing.
    func nguid(of namespace: Int) -> [UInt8] {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in namespaces[namespace].identity.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        var id = [UInt8](repeating: 0, count: 16)
        id.putLE(hash, at: 0, width: 8)
        id.putLE(UInt64(namespace + 1), at: 8, width: 4)
        id.putLE(0x5346_5449, at: 12, width: 4)  // "ITFS"
        return id
    }

    func identifyNamespace(_ index: Int) -> IdentifyNamespace {
        let storage = namespaces[index]
        var n = IdentifyNamespace()
        n.size = storage.blockCount
        n.capacity = storage.blockCount
        n.utilization = storage.blockCount
        n.formats = [LBAFormat(dataSizeShift: UInt8(storage.blockSize.trailingZeroBitCount))]
        n.formattedLBASize = 0
        // RAM: deallocated blocks read zeroes; files: not reported (deallocation is a hint).
        // Both: Write Zeroes may deallocate.
        n.deallocateFeatures = storage.migratesContents ? 0x09 : 0x08
        n.nguid = nguid(of: index)
        return n
    }

    private func identify(_ entry: SubmissionQueueEntry) -> NVMeStatus {
        let bytes: [UInt8]
        switch IdentifyCNS(rawValue: entry.cns) {
        case .controller?:
            bytes = identifyController.encoded
        case .namespace?:
            guard let index = namespaceIndex(entry.namespaceID) else { return .invalidNamespaceOrFormat }
            bytes = identifyNamespace(index).encoded
        case .activeNamespaceList?:
            guard entry.namespaceID < 0xFFFF_FFFE else { return .invalidNamespaceOrFormat }
            bytes = ActiveNamespaceList.encoded(active: (1...UInt32(namespaces.count)).map { $0 }, after: entry.namespaceID)
        case .namespaceDescriptorList?:
            guard let index = namespaceIndex(entry.namespaceID) else { return .invalidNamespaceOrFormat }
            bytes = NamespaceIdentifier.encodedList([.nguid(nguid(of: index)), .commandSet(0)])
        case .ioCommandSetController?:
            // The NVM command set's (CSI 0, CDW11 31:24): all zero, no limits beyond MDTS.
            guard entry.cdw11 >> 24 == 0 else { return .invalidField }
            bytes = [UInt8](repeating: 0, count: 4096)
        case nil:
            return .invalidField
        }
        return copyToHost(bytes, entry: entry)
    }

    /// The index of namespace `id` (1-based), or `nil` when there is no such active namespace.
    func namespaceIndex(_ id: UInt32) -> Int? {
        guard id >= 1, id <= UInt32(namespaces.count) else { return nil }
        return Int(id - 1)
    }

    // MARK: Queues

    private func createCompletionQueue(_ e: SubmissionQueueEntry) -> NVMeStatus {
        let status = createCompletionQueueState(e)
        if status.isSuccess { resetShadowEntries(queue: e.queueID, completion: true) }
        return status
    }

    private func createCompletionQueueState(_ e: SubmissionQueueEntry) -> NVMeStatus {
        monitor.update { s -> NVMeStatus in
            let id = e.queueID
            guard id >= 1, id <= s.features.completionQueuesAllowed(ioQueues), s.completionQueues[id] == nil else { return .invalidQueueIdentifier }
            guard e.queueSizeMinusOne >= 1, e.queueSizeMinusOne <= Self.maximumQueueEntries else { return .invalidQueueSize }
            guard e.physicallyContiguous else { return .invalidField }  // CAP.CQR
            guard e.prp1 != 0, e.prp1 & 0xFFF == 0 else { return .invalidField }
            guard s.configuration.completionEntrySize == 4 else { return .invalidField }
            guard Int(e.interruptVector) < s.config.msixVectorCount else { return .invalidInterruptVector }
            s.completionQueues[id] = CompletionQueueState(base: e.prp1, size: UInt32(e.queueSizeMinusOne) + 1,
                                                          vector: e.interruptVector, interruptsEnabled: e.interruptsEnabled)
            return .success
        }
    }

    private func createSubmissionQueue(_ e: SubmissionQueueEntry) -> NVMeStatus {
        let status = createSubmissionQueueState(e)
        if status.isSuccess { resetShadowEntries(queue: e.queueID, completion: false) }
        return status
    }

    private func createSubmissionQueueState(_ e: SubmissionQueueEntry) -> NVMeStatus {
        monitor.update { s -> NVMeStatus in
            let id = e.queueID
            guard id >= 1, id <= s.features.submissionQueuesAllowed(ioQueues), s.submissionQueues[id] == nil else { return .invalidQueueIdentifier }
            guard e.queueSizeMinusOne >= 1, e.queueSizeMinusOne <= Self.maximumQueueEntries else { return .invalidQueueSize }
            guard e.physicallyContiguous else { return .invalidField }
            guard e.prp1 != 0, e.prp1 & 0xFFF == 0 else { return .invalidField }
            guard s.configuration.submissionEntrySize == 6 else { return .invalidField }
            guard e.completionQueueID != 0, s.completionQueues[e.completionQueueID] != nil else { return .completionQueueInvalid }
            s.submissionQueues[id] = SubmissionQueueState(base: e.prp1, size: UInt32(e.queueSizeMinusOne) + 1, completionQueue: e.completionQueueID)
            return .success
        }
    }

    private func deleteSubmissionQueue(_ e: SubmissionQueueEntry) -> NVMeStatus {
        monitor.update { s -> NVMeStatus in
            // Commands are executed one at a time as they are fetched: none of the queue's is
            // outstanding once this one runs, so none needs an "aborted, SQ deleted" completion.
            guard e.queueID >= 1, s.submissionQueues.removeValue(forKey: e.queueID) != nil else { return .invalidQueueIdentifier }
            s.abortedCommands = s.abortedCommands.filter { $0.queue != e.queueID }
            return .success
        }
    }

    private func deleteCompletionQueue(_ e: SubmissionQueueEntry) -> NVMeStatus {
        monitor.update { s -> NVMeStatus in
            guard e.queueID >= 1, s.completionQueues[e.queueID] != nil else { return .invalidQueueIdentifier }
            guard !s.submissionQueues.values.contains(where: { $0.completionQueue == e.queueID }) else { return .invalidQueueDeletion }
            s.completionQueues[e.queueID] = nil
            return .success
        }
    }

    // MARK: Features

    private func features(_ e: SubmissionQueueEntry, set: Bool) -> Outcome {
        guard let id = FeatureID(rawValue: e.featureID) else { return .complete(.invalidField, dword0: 0) }
        if set && e.saveFeature { return .complete(.featureIdentifierNotSaveable, dword0: 0) }
        // SEL: 0 current, 1 default, 2 saved (= default: nothing is saveable), 3 capabilities.
        let select = set ? 0 : e.featureSelect
        if select > 3 { return .complete(.invalidField, dword0: 0) }
        let granted = UInt32(ioQueues - 1) << 16 | UInt32(ioQueues - 1)
        return monitor.update { s -> Outcome in
            let defaults = FeatureValues()
            let values = select == 0 ? s.features : defaults
            switch id {
            case .arbitration:
                if set { s.features.arbitration = e.cdw11 & 0xFFFF_FF07 }
                return .complete(.success, dword0: select == 3 ? 0x4 : values.arbitration)
            case .volatileWriteCache:
                if set { s.features.volatileWriteCache = e.cdw11 & 1 != 0 }
                return .complete(.success, dword0: select == 3 ? 0x4 : (values.volatileWriteCache ? 1 : 0))
            case .interruptCoalescing:
                if set { s.features.interruptCoalescing = e.cdw11 & 0xFFFF }
                return .complete(.success, dword0: select == 3 ? 0x4 : values.interruptCoalescing)
            case .asynchronousEventConfiguration:
                if set { s.features.asynchronousEventConfiguration = e.cdw11 }
                return .complete(.success, dword0: select == 3 ? 0x4 : values.asynchronousEventConfiguration)
            case .numberOfQueues:
                if set {
                    let requestedSQ = e.cdw11 & 0xFFFF
                    let requestedCQ = e.cdw11 >> 16
                    guard requestedSQ != 0xFFFF, requestedCQ != 0xFFFF else { return .complete(.invalidField, dword0: 0) }
                    // Granted once per reset (NSQA/NCQA: the counts requested, at most the
                    // controller's); later requests report the same counts. Not once I/O
                    // queues exist.
                    if s.features.queuesGranted == nil {
                        guard s.submissionQueues.keys.allSatisfy({ $0 == 0 }), s.completionQueues.keys.allSatisfy({ $0 == 0 }) else {
                            return .complete(.commandSequenceError, dword0: 0)
                        }
                        let maximum = UInt32(ioQueues - 1)
                        s.features.queuesGranted = min(requestedCQ, maximum) << 16 | min(requestedSQ, maximum)
                    }
                    return .complete(.success, dword0: s.features.queuesGranted!)
                }
                return .complete(.success, dword0: select == 3 ? 0x0 : (s.features.queuesGranted ?? granted))
            default:
                return .complete(.invalidField, dword0: 0)
            }
        }
    }

    // MARK: Log pages

    private func logPage(_ e: SubmissionQueueEntry) -> NVMeStatus {
        let length = (Int(e.logDwordsMinusOne) + 1) * 4
        guard length <= NVMeDevice.maximumTransferBytes else { return .invalidField }
        guard e.logOffset & 3 == 0 else { return .invalidField }
        let page: [UInt8]
        switch LogPageID(rawValue: e.logPageID) {
        case .errorInformation?:
            let entries = monitor.withLock { $0.errorLog }
            page = (0..<Self.errorLogEntries).flatMap { $0 < entries.count ? entries[$0].encoded : [UInt8](repeating: 0, count: ErrorLogEntry.size) }
        case .smartHealth?:
            let stats = monitor.withLock { $0.statistics }
            var log = SMARTHealthLog()
            log.compositeTemperature = 0x13B  // 315 K
            log.availableSpare = 100
            log.availableSpareThreshold = 10
            log.dataUnitsRead = (stats.bytesRead / 512 + 999) / 1000
            log.dataUnitsWritten = (stats.bytesWritten / 512 + 999) / 1000
            log.hostReadCommands = stats.readCommands
            log.hostWriteCommands = stats.writeCommands
            log.powerCycles = 1
            log.errorLogEntries = monitor.withLock { $0.errorCount }
            page = log.encoded
        case .firmwareSlot?:
            page = FirmwareSlotLog(activeSlot: 1, revisions: ["1.0"]).encoded
        default:
            return .invalidLogPage
        }
        guard e.logOffset <= UInt64(page.count) else { return .invalidField }
        // Bytes past the end of the page read as zero.
        var out = [UInt8](repeating: 0, count: length)
        let start = Int(e.logOffset)
        let available = min(length, page.count - start)
        if available > 0 { out.replaceSubrange(0..<available, with: page[start..<(start + available)]) }
        if !e.retainAsynchronousEvent {
            monitor.update { s in Self.clearEvents(logPage: e.logPageID, &s) }
        }
        return copyToHost(out, entry: e)
    }

    // MARK: Asynchronous events and Abort

    /// An Asynchronous Event Request becomes outstanding; the worker completes it with the
    /// next reportable event (at once when one waits).
    private func eventRequest(_ e: SubmissionQueueEntry, generation: UInt64) -> Outcome {
        let accepted = monitor.update { s -> Bool in
            guard s.outstandingEventRequests.count < Self.eventRequestLimit else { return false }
            s.outstandingEventRequests.append(e.commandID)
            return true
        }
        return accepted ? .deferred : .complete(.asynchronousEventRequestLimitExceeded, dword0: 0)
    }

    /// Abort: an outstanding Asynchronous Event Request completes now with Command Abort
    /// Requested; a command still in its submission queue (between head and tail, not
    /// fetched) completes so when fetched, without executing. Other commands execute as
    /// they are fetched and cannot be aborted. DW0 bit 0 is 1 when the command was not
    /// aborted.
    private func abort(_ e: SubmissionQueueEntry, generation: UInt64) -> Outcome {
        let aborted = monitor.withLock { s -> Bool in
            guard e.abortSubmissionQueueID == 0, let index = s.outstandingEventRequests.firstIndex(of: e.abortCommandID) else { return false }
            s.outstandingEventRequests.remove(at: index)
            return true
        }
        guard aborted else {
            let queued = abortQueued(QueuedCommand(queue: e.abortSubmissionQueueID, commandID: e.abortCommandID), generation: generation)
            return .complete(.success, dword0: queued ? 0 : 1)
        }
        post(CompletionQueueEntry(submissionQueueHead: currentHead(0), submissionQueueID: 0, commandID: e.abortCommandID,
                                  phase: false, status: .abortRequested),
             to: 0, generation: generation)
        return .complete(.success, dword0: 0)
    }

    /// Looks for `command` among the entries of its submission queue not fetched yet (the
    /// shadow tail read first); when found, it is marked to complete as aborted.
    private func abortQueued(_ command: QueuedCommand, generation: UInt64) -> Bool {
        syncShadowDoorbells()
        guard let sq = monitor.withLock({ $0.submissionQueues[command.queue] }), !sq.isEmpty else { return false }
        // The queued entries: head up to the end of the queue, then from slot 0 when the
        // tail has wrapped (at most two reads, at most a queue's 64 KiB).
        let ranges = sq.head < sq.tail ? [sq.head..<sq.tail] : [sq.head..<sq.size, 0..<sq.tail]
        for range in ranges where !range.isEmpty {
            let size = SubmissionQueueEntry.size
            guard let entries = try? dmaRead(sq.base &+ UInt64(range.lowerBound) * UInt64(size), count: range.count * size) else { return false }
            // Command Identifier: bytes 3:2 of an entry.
            let found = (0..<range.count).contains { k in UInt16(entries[k * size + 2]) | UInt16(entries[k * size + 3]) << 8 == command.commandID }
            if found {
                return monitor.withLock { s in
                    // Only this worker fetches, and it runs this Abort: the entry is still
                    // queued unless the controller was reset meanwhile.
                    guard s.generation == generation else { return false }
                    s.abortedCommands.insert(command)
                    return true
                }
            }
        }
        return false
    }

    func currentHead(_ queue: UInt16) -> UInt16 {
        monitor.withLock { UInt16(truncatingIfNeeded: $0.submissionQueues[queue]?.head ?? 0) }
    }
}
