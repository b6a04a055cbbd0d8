import NVMe
import VFIO
import VFIOSystem

/// The steps of `NVMeHost.open`, holding what they made so a failure releases all of it.
final class BringUp {
    let device: any VFIODevice
    let options: NVMeHost.Options
    private var allocator: DMAAllocator?
    private var events: [EventFD] = []
    private var tasks: [Task<Void, Never>] = []
    private var interruptThread: InterruptThread?
    private var queues: [QueuePair] = []
    private var irqsEnabled = false
    private var enabled = false

    init(device: any VFIODevice, options: NVMeHost.Options) {
        self.device = device
        self.options = options
    }

    func run() async throws(NVMeDriverError) -> NVMeHost {
        guard (1...64).contains(options.ioQueues) else { throw .invalidArgument("ioQueues \(options.ioQueues) (1...64)") }
        guard (2...4096).contains(options.queueEntries) else { throw .invalidArgument("queueEntries \(options.queueEntries) (2...4096)") }
        guard (2...4096).contains(options.adminEntries) else { throw .invalidArgument("adminEntries \(options.adminEntries) (2...4096)") }
        let registers = Registers(device: device)

        // PCI command register: memory space and bus master.
        do {
            let command = try device.readConfig(UInt16.self, offset: 4)
            if command & 0x6 != 0x6 { try device.writeConfig(command | 0x6, offset: 4) }
        } catch { throw .transport(error) }

        let cap = try registers.capabilities
        guard cap.commandSets & 1 != 0 else { throw .unsupported("the controller lacks the NVM command set (CAP.CSS 0x\(String(cap.commandSets, radix: 16)))") }
        guard cap.memoryPageSizeMinimum == 0 else { throw .unsupported("CAP.MPSMIN \(cap.memoryPageSizeMinimum): the driver uses 4 KiB pages") }
        let pageSize = 4096
        try await registers.disable(timeout: cap.readyTimeout)

        let allocator = try DMAAllocator(device: device, pageSize: pageSize)
        self.allocator = allocator
        let maxEntries = Int(cap.maximumQueueEntries) + 1
        let ioEntries = min(options.queueEntries, maxEntries)
        let adminEntries = min(options.adminEntries, maxEntries)

        // Interrupts: vector 0 for the admin queue, vector q for I/O queue q.
        var ioQueueCount = options.ioQueues
        if options.interrupts {
            let info: IRQInfo
            do { info = try device.irqInfo(PCIIRQIndex.msix.rawValue) } catch { throw .transport(error) }
            guard info.count >= 2 else { throw .unsupported("interrupts need MSI-X with 2 vectors or more; the device has \(info.count) (use polled mode)") }
            ioQueueCount = min(ioQueueCount, Int(info.count) - 1)
            do {
                for _ in 0...ioQueueCount { events.append(try EventFD()) }
                interruptThread = try InterruptThread()
                try device.setIRQs(.enableMSIX(events.map(\.fd)))
            } catch { throw .transport(error) }
            irqsEnabled = true
        }

        let doorbells = Doorbells(device: device, dstrd: cap.doorbellStride, lastQueue: UInt16(ioQueueCount), pageSize: pageSize,
                                  preferMapping: options.mapDoorbells)
        let admin = try QueuePair(id: 0, entries: adminEntries, allocator: allocator, doorbells: doorbells, shadow: nil,
                                  interrupt: events.first, vector: 0, timeout: options.commandTimeout)
        queues.append(admin)
        try registers.write32(AdminQueueAttributes(submissionQueueSize: UInt16(adminEntries - 1), completionQueueSize: UInt16(adminEntries - 1)).rawValue,
                              ControllerRegister.adminQueueAttributes)
        try registers.write64(admin.submissionQueue.iova, ControllerRegister.adminSubmissionQueue)
        try registers.write64(admin.completionQueue.iova, ControllerRegister.adminCompletionQueue)
        let cc = ControllerConfiguration(enable: true, commandSet: 0, memoryPageSize: 0, submissionEntrySize: 6, completionEntrySize: 4)
        try registers.write32(cc.rawValue, ControllerRegister.configuration)
        enabled = true
        _ = try await registers.wait(for: "CSTS.RDY = 1", timeout: cap.readyTimeout) { $0.ready }
        let version = ControllerVersion(rawValue: try registers.read32(ControllerRegister.version))
        do { try interruptThread?.watch(admin) } catch { throw .transport(error) }

        // Identify.
        let scratch = try allocator.allocate(pageSize)
        defer { allocator.release(scratch) }
        try await Command.run(admin, Command.identify(cns: IdentifyCNS.controller.rawValue, namespace: 0, into: scratch))
        let controller = IdentifyController(decoding: scratch.load(IdentifyController.size))
        var ids: [UInt32] = []
        if version.rawValue >= ControllerVersion(major: 1, minor: 1).rawValue {
            try await Command.run(admin, Command.identify(cns: IdentifyCNS.activeNamespaceList.rawValue, namespace: 0, into: scratch))
            let list = scratch.load(4096)
            for k in 0..<1024 {
                let id = UInt32(list.le(4 * k, 4))
                if id == 0 { break }
                ids.append(id)
            }
        } else {
            ids = Array(1...max(1, min(controller.numberOfNamespaces, 1024)))
        }
        var namespaces: [NVMeNamespace] = []
        for id in ids {
            try await Command.run(admin, Command.identify(cns: IdentifyCNS.namespace.rawValue, namespace: id, into: scratch))
            let identify = IdentifyNamespace(decoding: scratch.load(IdentifyNamespace.size))
            guard identify.size > 0, let format = identify.formatInUse, (9...16).contains(format.dataSizeShift) else { continue }
            namespaces.append(NVMeNamespace(id: id, blockSize: 1 << Int(format.dataSizeShift), blockCount: identify.size, identify: identify))
        }

        // Number of Queues: NSQR 15:0 and NCQR 31:16, 0-based; the answer's dword 0 alike.
        let wanted = UInt32(ioQueueCount - 1)
        let granted = try await Command.run(admin, Command.setFeatures(FeatureID.numberOfQueues.rawValue, value: wanted << 16 | wanted))
        ioQueueCount = min(ioQueueCount, Int(granted.dword0 & 0xFFFF) + 1, Int(granted.dword0 >> 16) + 1)

        // Shadow doorbells before the I/O queues exist, so they start from zeroed entries.
        var shadow: ShadowDoorbells?
        if options.shadowDoorbells && controller.optionalAdminCommands.contains(.doorbellBufferConfig) {
            let shadowPage = try allocator.allocate(pageSize)
            let eventPage = try allocator.allocate(pageSize)
            let candidate = ShadowDoorbells(shadow: shadowPage, eventIndex: eventPage, strideDwords: 1 << Int(cap.doorbellStride))
            guard (2 * ioQueueCount + 2) * candidate.strideDwords * 4 <= pageSize else {
                throw .unsupported("shadow doorbells for \(ioQueueCount) queues do not fit one page")
            }
            try await Command.run(admin, Command.doorbellBufferConfig(shadow: shadowPage.iova, eventIndex: eventPage.iova))
            shadow = candidate
        }

        // I/O queue pairs: the completion queue first, then its submission queue.
        var ioQueues: [QueuePair] = []
        for q in 1...ioQueueCount {
            let id = UInt16(q)
            let event = events.isEmpty ? nil : events[q]
            let queue = try QueuePair(id: id, entries: ioEntries, allocator: allocator, doorbells: doorbells, shadow: shadow,
                                      interrupt: event, vector: event == nil ? 0 : id, timeout: options.commandTimeout)
            queues.append(queue)
            try await Command.run(admin, Command.createCompletionQueue(queue))
            do { try interruptThread?.watch(queue) } catch { throw .transport(error) }
            try await Command.run(admin, Command.createSubmissionQueue(queue))
            ioQueues.append(queue)
        }
        tasks.append(NVMeHost.startWatchdog(for: [admin] + ioQueues, device: device))
        let host = NVMeHost(device: device, allocator: allocator, admin: admin, ioQueues: ioQueues, doorbells: doorbells,
                            events: events, interruptThread: interruptThread, tasks: tasks, capabilities: cap, version: version, controller: controller,
                            namespaces: namespaces, shadow: shadow != nil)
        tasks = []
        interruptThread = nil
        events = []
        queues = []
        self.allocator = nil
        return host
    }

    /// Undoes what `run` made before it failed: the controller disabled, the interrupt
    /// thread and the watchdog stopped, MSI-X disabled, eventfds closed, DMA unmapped.
    func release() async {
        if enabled { try? await Registers(device: device).disable(timeout: .seconds(5)) }
        for queue in queues { queue.fail(.closed) }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        tasks = []
        interruptThread?.stop()
        interruptThread = nil
        if irqsEnabled { try? device.setIRQs(.disable(index: PCIIRQIndex.msix.rawValue)) }
        for event in events { event.close() }
        events = []
        queues = []
        allocator?.close()
        allocator = nil
    }
}
