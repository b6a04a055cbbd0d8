import NVMe
import VFIO
import VFIODeviceKit

/// BAR0 register and doorbell accesses (the serving thread).
extension ControllerCore {
    /// Whether a `size`-byte access at `offset` is one the registers accept.
    private func checkWidth(_ offset: UInt64, _ size: Int, writing: Bool) throws(VFIOError) {
        let wide: Set<UInt64> = [ControllerRegister.capabilities, ControllerRegister.adminSubmissionQueue, ControllerRegister.adminCompletionQueue]
        guard (size == 4 || (size == 8 && wide.contains(offset))), offset % UInt64(size) == 0 else {
            throw .errno("NVMe BAR0 \(writing ? "write" : "read") of \(size) bytes at 0x\(String(offset, radix: 16))", DeviceErrno.EINVAL)
        }
    }

    func readBAR(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        let msix = try monitor.withLock { (s: inout ControllerState) throws(VFIOError) -> Bool in
            guard s.config.isMSIXAccess(bar: 0, offset: offset, count: buffer.count) else { return false }
            try s.config.readMSIX(bar: 0, offset: offset, into: buffer)
            return true
        }
        if msix { return }
        try checkWidth(offset, buffer.count, writing: false)
        let value = monitor.withLock { s -> UInt64 in
            let low = UInt64(registerDword(s, offset))
            return buffer.count == 8 ? low | UInt64(registerDword(s, offset + 4)) << 32 : low
        }
        PCIModelSupport.store(value, buffer)
    }

    private func registerDword(_ s: ControllerState, _ offset: UInt64) -> UInt32 {
        switch offset {
        case 0x00: return UInt32(truncatingIfNeeded: capabilities.rawValue)
        case 0x04: return UInt32(truncatingIfNeeded: capabilities.rawValue >> 32)
        case ControllerRegister.version: return ControllerVersion.v1_4.rawValue
        case ControllerRegister.interruptMaskSet, ControllerRegister.interruptMaskClear: return s.interruptMask
        case ControllerRegister.configuration: return s.configuration.rawValue
        case ControllerRegister.status: return s.status.rawValue
        case ControllerRegister.adminQueueAttributes: return s.adminQueueAttributes.rawValue
        case 0x28: return UInt32(truncatingIfNeeded: s.adminSubmissionQueueBase)
        case 0x2C: return UInt32(truncatingIfNeeded: s.adminSubmissionQueueBase >> 32)
        case 0x30: return UInt32(truncatingIfNeeded: s.adminCompletionQueueBase)
        case 0x34: return UInt32(truncatingIfNeeded: s.adminCompletionQueueBase >> 32)
        default: return 0  // reserved, CMBLOC/CMBSZ (no CMB), doorbells (write-only)
        }
    }

    func writeBAR(offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        let signals = try monitor.withLock { (s: inout ControllerState) throws(VFIOError) -> [IRQSignal]? in
            guard s.config.isMSIXAccess(bar: 0, offset: offset, count: buffer.count) else { return nil }
            return try s.config.writeMSIX(bar: 0, offset: offset, from: buffer)
        }
        if let signals {
            deliver(signals)
            return
        }
        try checkWidth(offset, buffer.count, writing: true)
        let value = PCIModelSupport.load(buffer)
        if let doorbell = ControllerRegister.doorbell(at: offset) {
            deliver(monitor.update { s in ringDoorbell(&s, queue: doorbell.queue, completion: doorbell.completion, value: UInt32(truncatingIfNeeded: value)) })
            return
        }
        let signals2 = monitor.update { s -> [IRQSignal] in
            if s.runState == .stopped { return [] }
            if buffer.count == 8 {
                writeRegister(&s, offset, UInt32(truncatingIfNeeded: value))
                writeRegister(&s, offset + 4, UInt32(truncatingIfNeeded: value >> 32))
                return []
            }
            return writeRegister(&s, offset, UInt32(truncatingIfNeeded: value))
        }
        deliver(signals2)
    }

    @discardableResult
    private func writeRegister(_ s: inout ControllerState, _ offset: UInt64, _ value: UInt32) -> [IRQSignal] {
        let idle = !s.enabled
        switch offset {
        case ControllerRegister.interruptMaskSet:
            s.interruptMask |= value & 1
            if s.interruptMask & 1 != 0 { s.config.lower() }
        case ControllerRegister.interruptMaskClear:
            s.interruptMask &= ~(value & 1)
            if s.interruptMask & 1 == 0, s.completionQueues.values.contains(where: { $0.interruptsEnabled && $0.hasEntries }),
               s.config.activeIRQIndex != PCIIRQIndex.msix.rawValue {
                return s.config.raise(vector: 0)
            }
        case ControllerRegister.configuration:
            writeConfiguration(&s, ControllerConfiguration(rawValue: value))
        case ControllerRegister.adminQueueAttributes where idle:
            s.adminQueueAttributes = AdminQueueAttributes(rawValue: value & 0x0FFF_0FFF)
        case 0x28 where idle: s.adminSubmissionQueueBase = s.adminSubmissionQueueBase & ~0xFFFF_FFFF | UInt64(value)
        case 0x2C where idle: s.adminSubmissionQueueBase = s.adminSubmissionQueueBase & 0xFFFF_FFFF | UInt64(value) << 32
        case 0x30 where idle: s.adminCompletionQueueBase = s.adminCompletionQueueBase & ~0xFFFF_FFFF | UInt64(value)
        case 0x34 where idle: s.adminCompletionQueueBase = s.adminCompletionQueueBase & 0xFFFF_FFFF | UInt64(value) << 32
        default:
            break  // read-only, reserved, or NSSR (not supported: CAP.NSSRS 0)
        }
        return []
    }

    private func writeConfiguration(_ s: inout ControllerState, _ new: ControllerConfiguration) {
        let old = s.configuration
        // Only EN, CSS, MPS, AMS, SHN, IOSQES, IOCQES are defined.
        s.configuration = ControllerConfiguration(rawValue: new.rawValue & 0x00FF_FFF1)
        if old.enable && !new.enable {
            Self.resetController(&s)
            s.configuration = ControllerConfiguration(rawValue: new.rawValue & 0x00FF_FFF0)
        } else if !old.enable && new.enable {
            enable(&s)
        }
        if new.shutdown == .normal || new.shutdown == .abrupt, old.shutdown == ControllerConfiguration.ShutdownNotification.none {
            var status = s.status
            status.rawValue = status.rawValue & ~0xC | UInt32(ControllerStatus.ShutdownStatus.processing.rawValue) << 2
            s.status = status
            s.shutdownRequested = true
        } else if new.shutdown == ControllerConfiguration.ShutdownNotification.none, old.shutdown != ControllerConfiguration.ShutdownNotification.none {
            s.status.rawValue &= ~0xC
        }
    }

    private func enable(_ s: inout ControllerState) {
        let cc = s.configuration
        let aqa = s.adminQueueAttributes
        var problem: String?
        if cc.commandSet != 0 { problem = "CC.CSS \(cc.commandSet) is not the NVM command set" }
        else if cc.memoryPageSize != 0 { problem = "CC.MPS \(cc.memoryPageSize): only 4 KiB pages (CAP.MPSMAX 0)" }
        else if aqa.submissionQueueSize < 1 || aqa.completionQueueSize < 1 { problem = "AQA sizes must be at least 2 entries" }
        else if aqa.submissionQueueSize > Self.maximumQueueEntries || aqa.completionQueueSize > Self.maximumQueueEntries { problem = "AQA sizes exceed CAP.MQES" }
        else if s.adminSubmissionQueueBase == 0 || s.adminSubmissionQueueBase & 0xFFF != 0 { problem = "ASQ 0x\(String(s.adminSubmissionQueueBase, radix: 16)) is not a 4 KiB aligned address" }
        else if s.adminCompletionQueueBase == 0 || s.adminCompletionQueueBase & 0xFFF != 0 { problem = "ACQ 0x\(String(s.adminCompletionQueueBase, radix: 16)) is not a 4 KiB aligned address" }
        if let problem {
            s.status.rawValue |= 2
            s.fatalReason = problem
            return
        }
        s.status.rawValue &= ~0xC  // SHST normal
        s.submissionQueues[0] = SubmissionQueueState(base: s.adminSubmissionQueueBase, size: UInt32(aqa.submissionQueueSize) + 1, completionQueue: 0)
        s.completionQueues[0] = CompletionQueueState(base: s.adminCompletionQueueBase, size: UInt32(aqa.completionQueueSize) + 1,
                                                     vector: 0, interruptsEnabled: true)
        s.status.rawValue |= 1
    }

    /// Controller reset (CC.EN 1 -> 0, function level reset): queues deleted, outstanding
    /// commands dropped, features back to their defaults; RDY clears now, or when the
    /// command in flight has finished.
    static func resetController(_ s: inout ControllerState) {
        s.generation &+= 1
        s.submissionQueues = [:]
        s.completionQueues = [:]
        s.features = FeatureValues()
        s.doorbellBuffers = nil
        s.outstandingEventRequests = []
        s.pendingCompletions = []
        s.pendingEvents = []
        s.reportedEvents = []
        s.abortedCommands = []
        s.interruptMask = 0
        s.configuration = ControllerConfiguration(rawValue: 0)
        s.status.rawValue &= ~0x2  // CFS clears on reset
        s.fatalReason = nil
        s.config.lower()
        if s.workerBusy {
            s.readyClearsWhenIdle = true
        } else {
            s.status.rawValue &= ~0x1
        }
    }

    /// A doorbell write: a new SQ tail or CQ head. A doorbell of a queue that does not
    /// exist, an SQ tail outside the queue and a CQ head outside it or past the entries
    /// posted are ignored and raise the Error status event Invalid Doorbell Register or
    /// Invalid Doorbell Write Value. With shadow doorbells an I/O queue's write only
    /// wakes the worker, which takes the value from the shadow buffer.
    func ringDoorbell(_ s: inout ControllerState, queue: UInt16, completion: Bool, value: UInt32) -> [IRQSignal] {
        guard s.ready, s.status.rawValue & 2 == 0, s.runState != .stopped else { return [] }
        guard completion ? s.completionQueues[queue] != nil : s.submissionQueues[queue] != nil else {
            Self.doorbellError(.invalidDoorbellRegister, &s)
            return []
        }
        if queue != 0, s.doorbellBuffers != nil {
            s.doorbellKicks &+= 1
            return []
        }
        if completion {
            guard var cq = s.completionQueues[queue], cq.acceptsHead(value) else {
                Self.doorbellError(.invalidDoorbellWriteValue, &s)
                return []
            }
            cq.head = value
            s.completionQueues[queue] = cq
            if !s.completionQueues.values.contains(where: { $0.interruptsEnabled && $0.hasEntries }) {
                s.config.lower()
            }
        } else {
            guard var sq = s.submissionQueues[queue], value < sq.size else {
                Self.doorbellError(.invalidDoorbellWriteValue, &s)
                return []
            }
            sq.tail = value
            s.submissionQueues[queue] = sq
        }
        return []
    }

    /// A signal of an SQ tail doorbell's ioeventfd (`NVMeDevice.ioEventSignalled`): the
    /// value written is not known, so it is taken from the shadow doorbell buffer; without
    /// one (no Doorbell Buffer Config) the write is lost and raises Invalid Doorbell Write
    /// Value.
    func doorbellSignalled(_ s: inout ControllerState, queue: UInt16, completion: Bool) {
        guard s.ready, s.status.rawValue & 2 == 0, s.runState != .stopped else { return }
        guard completion ? s.completionQueues[queue] != nil : s.submissionQueues[queue] != nil else {
            Self.doorbellError(.invalidDoorbellRegister, &s)
            return
        }
        guard queue != 0, s.doorbellBuffers != nil else {
            Self.doorbellError(.invalidDoorbellWriteValue, &s)
            return
        }
        s.doorbellKicks &+= 1
    }
}
