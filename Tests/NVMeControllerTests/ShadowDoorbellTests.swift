import Glibc
import NVMe
import NVMeController
import Synchronization
import Testing
import TestSupport
import VFIO

/// Doorbell Buffer Config: shadow doorbells and EventIdx, with a host that follows
/// Linux's rule (write the shadow, fence, read the EventIdx, write the register only when
/// the controller asked for it).
@Suite struct ShadowDoorbellTests {
    static let data = NVMeTestHost.dataOffset

    final class ShadowHost {
        let host: NVMeTestHost
        let shadow: Int
        let eventIndex: Int
        var registerWrites = 0

        init(queueEntries: UInt32, completionEntries: UInt32) throws {
            host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
            try host.enable()
            shadow = host.allocateQueueMemory(4096)
            eventIndex = host.allocateQueueMemory(4096)
            let (_, controller) = try host.identify(cns: .controller)
            #expect(controller.le(256, 2) & 0x100 != 0)  // OACS: Doorbell Buffer Config
            let config = try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.doorbellBufferConfig.rawValue, commandID: 0,
                                                             prp1: host.iova(shadow), prp2: host.iova(eventIndex)))
            #expect(config.status == .success)
            // The I/O queues: created after the config, CQ and SQ sizes of their own.
            let sq = host.allocateQueueMemory(Int(queueEntries) * 64)
            let cq = host.allocateQueueMemory(Int(completionEntries) * 16)
            #expect(try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.createIOCompletionQueue.rawValue, commandID: 0, prp1: host.iova(cq),
                                                        cdw10: (completionEntries - 1) << 16 | 1, cdw11: 1 << 16 | 0x3)).status == .success)
            #expect(try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.createIOSubmissionQueue.rawValue, commandID: 0, prp1: host.iova(sq),
                                                        cdw10: (queueEntries - 1) << 16 | 1, cdw11: 1 << 16 | 0x1)).status == .success)
            host.queues[1] = NVMeTestHost.Queue(id: 1, submissionBase: host.iova(sq), completionBase: host.iova(cq), size: queueEntries, completionSize: completionEntries, vector: 1)
        }

        func entry(_ base: Int, _ index: Int) -> UnsafeMutablePointer<UInt32> {
            (host.memory.baseAddress + base + index * 4).assumingMemoryBound(to: UInt32.self)
        }

        /// Linux's `nvme_dbbuf_need_event`.
        static func needEvent(_ eventIndex: UInt16, _ new: UInt16, _ old: UInt16) -> Bool {
            new &- eventIndex &- 1 < new &- old
        }

        /// Publishes a new doorbell value (index 2 = SQ 1 tail, 3 = CQ 1 head) the Linux way.
        func update(_ index: Int, _ value: UInt32, old: UInt32, register: UInt64) throws {
            entry(shadow, index).pointee = value
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            let event = UInt16(truncatingIfNeeded: entry(eventIndex, index).pointee)
            if Self.needEvent(event, UInt16(value), UInt16(old)) {
                registerWrites += 1
                try host.write32(value, register)
            }
        }

        func submit(_ commands: [SubmissionQueueEntry]) throws -> [UInt16] {
            let old = host.queues[1]!.tail
            let ids = commands.map { host.place($0, queue: 1) }
            try update(2, host.queues[1]!.tail, old: old, register: ControllerRegister.submissionTailDoorbell(queue: 1))
            return ids
        }

        /// The next completion of queue 1 (waiting for its vector), head published the Linux way.
        func nextCompletion() throws -> CompletionQueueEntry {
            var q = host.queues[1]!
            let offset = Int(q.completionBase - NVMeTestHost.iovaBase) + Int(q.head) * 16
            var entry = CompletionQueueEntry(host.bytes(offset, 16))
            while entry.phase != q.phase {
                guard try waitSignalled(host.vectors[1]) != nil else { throw NVMeTestHost.WaitError.noCompletion(queue: 1) }
                entry = CompletionQueueEntry(host.bytes(offset, 16))
            }
            let old = q.head
            q.head = (q.head + 1) % q.cqEntries
            if q.head == 0 { q.phase.toggle() }
            host.queues[1] = q
            try update(3, q.head, old: old, register: ControllerRegister.completionHeadDoorbell(queue: 1))
            return entry
        }
    }

    @Test func commandsThroughTheShadowBuffer() throws {
        let s = try ShadowHost(queueEntries: 32, completionEntries: 32)
        let host = s.host
        var expected: [UInt8] = []
        for round in 0..<6 {
            let commands = (0..<5).map { k -> SubmissionQueueEntry in
                let block = round * 5 + k
                let bytes = pattern(512, seed: UInt64(block))
                expected += bytes
                host.store(bytes, at: Self.data + 512 * block)
                return ioCommand(.write, lba: UInt64(block), blocks: 1, prp1: host.iova(Self.data + 512 * block))
            }
            let ids = try s.submit(commands)
            for id in ids {
                let c = try s.nextCompletion()
                #expect(c.commandID == id && c.status == .success)
            }
        }
        // The tail the controller saw last is its EventIdx once it is idle.
        #expect(poll(for: .seconds(5)) { s.entry(s.eventIndex, 2).pointee == host.queues[1]!.tail })
        let read = try s.submit([ioCommand(.read, lba: 0, blocks: 30, prp1: host.iova(Self.data + (1 << 20)),
                                           prp2: { host.storeList((1..<4).map { host.iova(Self.data + (1 << 20) + 4096 * $0) }, at: Self.data - 4096); return host.iova(Self.data - 4096) }())])
        #expect(try s.nextCompletion().commandID == read[0])
        #expect(host.bytes(Self.data + (1 << 20), 30 * 512) == expected)
    }

    /// Commands the register write does not cover are found in the shadow buffer: the
    /// register says 1, the shadow says 4.
    @Test func theShadowTailIsRead() throws {
        let s = try ShadowHost(queueEntries: 16, completionEntries: 16)
        let host = s.host
        let ids = (0..<4).map { host.place(ioCommand(.read, lba: UInt64($0), blocks: 1, prp1: host.iova(Self.data + 4096 * $0)), queue: 1) }
        s.entry(s.shadow, 2).pointee = 4
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        try host.write32(1, ControllerRegister.submissionTailDoorbell(queue: 1))
        for id in ids { #expect(try s.nextCompletion().commandID == id) }
    }

    /// QEMU posts MMIO writes: a doorbell register write can arrive after the controller
    /// has read a newer value from the shadow. Its older value must not move the tail
    /// back (the controller would run the stale entries between: found in a guest at
    /// QD32 as completions of long-finished commands).
    @Test func aLateRegisterWriteDoesNotMoveTheTailBack() throws {
        let s = try ShadowHost(queueEntries: 16, completionEntries: 16)
        let host = s.host
        let ids = try s.submit((0..<3).map { ioCommand(.read, lba: UInt64($0), blocks: 1, prp1: host.iova(Self.data + 4096 * $0)) })
        for id in ids { #expect(try s.nextCompletion().commandID == id) }
        _ = try host.vectors[1].consume()  // signals of the completions read already
        try host.write32(1, ControllerRegister.submissionTailDoorbell(queue: 1))  // the late write of tail 1
        #expect(try waitSignalled(host.vectors[1], milliseconds: 200) == nil)
        let next = try s.submit([ioCommand(.read, lba: 9, blocks: 1, prp1: host.iova(Self.data))])
        let c = try s.nextCompletion()
        #expect(c.commandID == next[0] && c.submissionQueueHead == 4)
    }

    /// A completion queue smaller than the work: the controller waits for room, asks for
    /// the head doorbell through the EventIdx, and goes on when the host frees entries.
    @Test func fullCompletionQueueWithShadowHeads() throws {
        let s = try ShadowHost(queueEntries: 16, completionEntries: 4)
        let host = s.host
        let ids = try s.submit((0..<12).map { ioCommand(.read, lba: UInt64($0), blocks: 1, prp1: host.iova(Self.data + 4096 * $0)) })
        for id in ids {
            let c = try s.nextCompletion()
            #expect(c.commandID == id && c.status == .success)
        }
    }

    /// The SQ tail doorbells as ioeventfds (VFIO_USER_DEVICE_GET_REGION_IO_FDS): commands
    /// submitted by storing the shadow tail and signalling the eventfd, no register write.
    @Test func ioeventfdDoorbellsWithTheShadowBuffer() throws {
        let s = try ShadowHost(queueEntries: 16, completionEntries: 16)
        let host = s.host
        let events = try host.client.regionIOEventFDs(PCIRegionIndex.bar0.rawValue)
        #expect(events.map(\.offset) == (1...16).map { ControllerRegister.submissionTailDoorbell(queue: UInt16($0)) })
        #expect(events.allSatisfy { $0.width == 4 && $0.dataMatch == nil })
        var expected: [UInt8] = []
        for round in 0..<5 {
            let ids = (0..<6).map { k -> UInt16 in
                let block = round * 6 + k
                let bytes = pattern(512, seed: UInt64(100 + block))
                expected += bytes
                host.store(bytes, at: Self.data + 512 * block)
                return host.place(ioCommand(.write, lba: UInt64(block), blocks: 1, prp1: host.iova(Self.data + 512 * block)), queue: 1)
            }
            s.entry(s.shadow, 2).pointee = host.queues[1]!.tail
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            try events[0].event.signal()
            for id in ids {
                let c = try s.nextCompletion()
                #expect(c.commandID == id && c.status == .success)
            }
        }
        let readBack = host.place(ioCommand(.read, lba: 0, blocks: 8, prp1: host.iova(Self.data + (1 << 20))), queue: 1)
        s.entry(s.shadow, 2).pointee = host.queues[1]!.tail
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        try events[0].event.signal()
        #expect(try s.nextCompletion().commandID == readBack)
        #expect(host.bytes(Self.data + (1 << 20), 8 * 512) == Array(expected[0..<(8 * 512)]))
        #expect(try !host.status.fatal)
    }

    /// A shadow tail the queue cannot take is ignored and raises Invalid Doorbell Write
    /// Value, as a register write of it does; the queue goes on with a good one.
    @Test func aShadowTailPastTheQueueIsAnInvalidDoorbellWriteValue() throws {
        let s = try ShadowHost(queueEntries: 16, completionEntries: 16)
        let host = s.host
        let request = host.place(SubmissionQueueEntry(opcode: AdminOpcode.asynchronousEventRequest.rawValue, commandID: 0), queue: 0)
        try host.ring(0)
        #expect(try host.identify(cns: .controller).0 == .success)  // the request is outstanding
        s.entry(s.shadow, 2).pointee = 16
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        try host.write32(16, ControllerRegister.submissionTailDoorbell(queue: 1))
        let event = try host.nextCompletion(0)
        #expect(event.commandID == request && event.status == .success)
        #expect(event.dword0 == AsynchronousEvent(type: .errorStatus, information: ErrorStatusEventInformation.invalidDoorbellWriteValue.rawValue,
                                                  logPage: LogPageID.errorInformation.rawValue).dword0)
        let ids = try s.submit([ioCommand(.read, lba: 0, blocks: 1, prp1: host.iova(Self.data))])
        #expect(try s.nextCompletion().commandID == ids[0])
    }

    @Test func badBuffersAreRefused() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable()
        for (prp1, prp2) in [(UInt64(0), host.iova(0x1000)), (host.iova(0x100), host.iova(0x2000)), (host.iova(0x1000), host.iova(0x1000))] {
            #expect(try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.doorbellBufferConfig.rawValue, commandID: 0, prp1: prp1, prp2: prp2)).status == .invalidField)
        }
    }
}
