import Glibc
import NVMe
import NVMeController
import Testing
import TestSupport
import VFIO

/// Features, log pages, asynchronous event requests and Abort.
@Suite struct ControllerAdminTests {
    static let data = NVMeTestHost.dataOffset

    private func feature(_ host: NVMeTestHost, set: Bool, _ id: UInt8, _ value: UInt32 = 0, select: UInt32 = 0) throws -> CompletionQueueEntry {
        try host.admin(SubmissionQueueEntry(opcode: (set ? AdminOpcode.setFeatures : .getFeatures).rawValue, commandID: 0,
                                            cdw10: UInt32(id) | select << 8, cdw11: value))
    }

    @Test func features() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20, ioQueues: 8), msixVectors: 9)
        try host.enable()
        // Number of Queues: 0-based counts; the controller grants its 8 pairs.
        let queues = try feature(host, set: true, FeatureID.numberOfQueues.rawValue, 63 << 16 | 63)
        #expect(queues.status == .success && queues.dword0 == 7 << 16 | 7)
        #expect(try feature(host, set: true, FeatureID.numberOfQueues.rawValue, 0xFFFF).status == .invalidField)
        #expect(try feature(host, set: false, FeatureID.numberOfQueues.rawValue).dword0 == 7 << 16 | 7)
        // Volatile write cache: on by default, can be turned off; the default stays on.
        #expect(try feature(host, set: false, FeatureID.volatileWriteCache.rawValue).dword0 == 1)
        #expect(try feature(host, set: true, FeatureID.volatileWriteCache.rawValue, 0).status == .success)
        #expect(try feature(host, set: false, FeatureID.volatileWriteCache.rawValue).dword0 == 0)
        #expect(try feature(host, set: false, FeatureID.volatileWriteCache.rawValue, select: 1).dword0 == 1)
        // Stored values come back.
        for (id, value) in [(FeatureID.interruptCoalescing, UInt32(0x0A04)), (.arbitration, 0x0302_0103), (.asynchronousEventConfiguration, 0x0000_0100)] {
            #expect(try feature(host, set: true, id.rawValue, value).status == .success)
            #expect(try feature(host, set: false, id.rawValue).dword0 == value)
        }
        // Unknown feature, saving, a reserved select.
        #expect(try feature(host, set: false, 0x7F).status == .invalidField)
        #expect(try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.setFeatures.rawValue, commandID: 0, cdw10: 1 << 31 | 0x06, cdw11: 1)).status
                == .featureIdentifierNotSaveable)
        #expect(try feature(host, set: false, FeatureID.arbitration.rawValue, select: 4).status == .invalidField)
        // A controller reset restores the defaults.
        try host.write32(0, ControllerRegister.configuration)
        #expect(try host.waitStatus { !$0.ready })
        host.queues = [:]
        try host.enable()
        #expect(try feature(host, set: false, FeatureID.volatileWriteCache.rawValue).dword0 == 1)
        #expect(try feature(host, set: false, FeatureID.interruptCoalescing.rawValue).dword0 == 0)
    }

    private func logPage(_ host: NVMeTestHost, _ id: LogPageID, bytes: Int, offset: UInt64 = 0) throws -> (NVMeStatus, [UInt8]) {
        let dwords = UInt32(bytes / 4 - 1)
        let c = try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.getLogPage.rawValue, commandID: 0, namespaceID: 0xFFFF_FFFF,
                                                    prp1: host.iova(Self.data), cdw10: (dwords & 0xFFFF) << 16 | UInt32(id.rawValue),
                                                    cdw11: dwords >> 16, cdw12: UInt32(truncatingIfNeeded: offset), cdw13: UInt32(offset >> 32)))
        return (c.status, host.bytes(Self.data, bytes))
    }

    @Test func logPages() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable()
        try host.createIOQueuePair(1, entries: 8)
        for k in 0..<3 {
            host.store(pattern(512, seed: UInt64(k)), at: Self.data + 0x10000)
            #expect(try host.submit(ioCommand(.write, lba: UInt64(k), blocks: 1, prp1: host.iova(Self.data + 0x10000)), queue: 1).status == .success)
        }
        #expect(try host.submit(ioCommand(.read, lba: 0, blocks: 2, prp1: host.iova(Self.data + 0x10000)), queue: 1).status == .success)
        let (status, smart) = try logPage(host, .smartHealth, bytes: 512)
        #expect(status == .success)
        #expect(smart.le(80, 8) == 3)  // host write commands
        #expect(smart.le(64, 8) == 1)  // host read commands
        #expect(smart.le(48, 8) == 1)  // data units written: 1536 bytes, rounded up to one unit
        #expect(smart[3] == 100)
        let (fwStatus, firmware) = try logPage(host, .firmwareSlot, bytes: 512)
        #expect(fwStatus == .success)
        #expect(firmware[0] == 1)
        #expect(Array(firmware[8..<16]) == Array("1.0     ".utf8))
        // An offset into the page, and reading past its end (zeroes).
        let (offsetStatus, tail) = try logPage(host, .firmwareSlot, bytes: 16, offset: 8)
        #expect(offsetStatus == .success && Array(tail[0..<8]) == Array("1.0     ".utf8))
        let (pastStatus, past) = try logPage(host, .smartHealth, bytes: 1024)
        #expect(pastStatus == .success && past[512...].allSatisfy { $0 == 0 })
        #expect(try logPage(host, .smartHealth, bytes: 8, offset: 1000).0 == .invalidField)
        #expect(try logPage(host, .changedNamespaceList, bytes: 64).0 == .invalidLogPage)
        #expect(try logPage(host, .smartHealth, bytes: 256 << 10).0 == .invalidField)  // beyond MDTS
    }

    /// An Asynchronous Event Request stays outstanding; Abort of it completes it with
    /// Command Abort Requested and reports the abort (DW0 bit 0 clear); the limit holds.
    @Test func asynchronousEventRequestsAndAbort() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable()
        let aer = SubmissionQueueEntry(opcode: AdminOpcode.asynchronousEventRequest.rawValue, commandID: 0)
        let first = host.place(aer, queue: 0)
        try host.ring(0)
        // The request takes no completion; a later command completes first.
        #expect(try host.identify(cns: .controller).0 == .success)
        let abortID = host.place(SubmissionQueueEntry(opcode: AdminOpcode.abort.rawValue, commandID: 0, cdw10: UInt32(first) << 16), queue: 0)
        try host.ring(0)
        let aborted = try host.nextCompletion(0)
        #expect(aborted.commandID == first && aborted.status == .abortRequested)
        let abortReply = try host.nextCompletion(0)
        #expect(abortReply.commandID == abortID && abortReply.status == .success && abortReply.dword0 & 1 == 0)
        // Aborting a command that is not outstanding: DW0 bit 0 set.
        let missing = try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.abort.rawValue, commandID: 0, cdw10: 0x1234 << 16))
        #expect(missing.status == .success && missing.dword0 & 1 == 1)
        // AERL + 1 = 4 requests may be outstanding; the fifth fails.
        for _ in 0..<4 { host.place(aer, queue: 0) }
        let fifth = host.place(aer, queue: 0)
        try host.ring(0)
        let limit = try host.nextCompletion(0)
        #expect(limit.commandID == fifth && limit.status == .asynchronousEventRequestLimitExceeded)
    }
}

/// Set Features Number of Queues grants what was asked, up to the controller's queues;
/// queue identifiers above the grant are invalid. Abort of a command still queued.
@Suite struct ControllerQueueGrantTests {
    private func numberOfQueues(_ host: NVMeTestHost, submission: UInt32, completion: UInt32) throws -> CompletionQueueEntry {
        try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.setFeatures.rawValue, commandID: 0,
                                            cdw10: UInt32(FeatureID.numberOfQueues.rawValue), cdw11: completion << 16 | submission))
    }

    private func create(_ host: NVMeTestHost, _ opcode: AdminOpcode, id: UInt32, completionQueue: UInt32 = 1) throws -> NVMeStatus {
        let memory = host.allocateQueueMemory(4096)
        let cdw11: UInt32 = opcode == .createIOCompletionQueue ? 1 << 16 | 0x3 : completionQueue << 16 | 0x1
        return try host.admin(SubmissionQueueEntry(opcode: opcode.rawValue, commandID: 0, prp1: host.iova(memory),
                                                   cdw10: 15 << 16 | id, cdw11: cdw11)).status
    }

    @Test func theGrantIsWhatWasAskedUpToTheControllersQueues() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20, ioQueues: 8), msixVectors: 9)
        try host.enable()
        // 0-based: 2 submission queues, 3 completion queues.
        let grant = try numberOfQueues(host, submission: 1, completion: 2)
        #expect(grant.status == .success && grant.dword0 == 2 << 16 | 1)
        #expect(try create(host, .createIOCompletionQueue, id: 3) == .success)
        #expect(try create(host, .createIOCompletionQueue, id: 4) == .invalidQueueIdentifier)
        #expect(try create(host, .createIOCompletionQueue, id: 1) == .success)
        #expect(try create(host, .createIOSubmissionQueue, id: 2) == .success)
        #expect(try create(host, .createIOSubmissionQueue, id: 3) == .invalidQueueIdentifier)
        // Asked again: the grant stands for this reset.
        #expect(try numberOfQueues(host, submission: 7, completion: 7).dword0 == 2 << 16 | 1)
        // After a reset: asking once I/O queues exist is a Command Sequence Error; more than
        // the controller has is capped.
        try host.write32(0, ControllerRegister.configuration)
        #expect(try host.waitStatus { !$0.ready })
        try host.enable()
        #expect(try create(host, .createIOCompletionQueue, id: 8) == .success)  // no grant yet: every queue
        #expect(try numberOfQueues(host, submission: 1, completion: 1).status == .commandSequenceError)
        try host.write32(0, ControllerRegister.configuration)
        #expect(try host.waitStatus { !$0.ready })
        try host.enable()
        #expect(try numberOfQueues(host, submission: 100, completion: 3).dword0 == 3 << 16 | 7)
    }

    /// Abort of a command behind it in the admin queue (rung together, not fetched when
    /// the Abort runs): that command completes with Command Abort Requested, unexecuted.
    /// With 14 commands before, the queued entries wrap past the end of the 16-entry queue.
    @Test(arguments: [0, 14]) func abortOfACommandStillInItsQueue(commandsBefore: Int) throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable(adminEntries: 16)
        for _ in 0..<commandsBefore { #expect(try host.identify(cns: .controller).0 == .success) }
        let data = NVMeTestHost.dataOffset
        memset(host.memory.baseAddress + data, 0xEE, 4096)
        let slot = Int(host.queues[0]!.submissionBase - NVMeTestHost.iovaBase) + Int(host.queues[0]!.tail) * 64
        let abortID = host.place(SubmissionQueueEntry(opcode: AdminOpcode.abort.rawValue, commandID: 0), queue: 0)
        let between = commandsBefore > 0 ? host.place(SubmissionQueueEntry(opcode: AdminOpcode.getFeatures.rawValue, commandID: 0,
                                                                            cdw10: UInt32(FeatureID.volatileWriteCache.rawValue)), queue: 0) : nil
        let identifyID = host.place(SubmissionQueueEntry(opcode: AdminOpcode.identify.rawValue, commandID: 0, prp1: host.iova(data),
                                                         cdw10: UInt32(IdentifyCNS.controller.rawValue)), queue: 0)
        // The Abort names the Identify placed after it (SQID 0 in CDW10 15:0).
        host.store(SubmissionQueueEntry(opcode: AdminOpcode.abort.rawValue, commandID: abortID, cdw10: UInt32(identifyID) << 16).encoded, at: slot)
        try host.ring(0)
        let first = try host.nextCompletion(0)
        #expect(first.commandID == abortID && first.status == .success && first.dword0 & 1 == 0)
        if let between { #expect(try host.nextCompletion(0).commandID == between) }
        let second = try host.nextCompletion(0)
        #expect(second.commandID == identifyID && second.status == .abortRequested)
        #expect(host.bytes(data, 4096).allSatisfy { $0 == 0xEE })  // not executed
        // The controller goes on.
        #expect(try host.identify(cns: .controller).0 == .success)
    }
}
