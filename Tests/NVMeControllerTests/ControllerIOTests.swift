import Glibc
import NVMe
import NVMeController
import Testing
import TestSupport
import VFIO

/// Reads and writes through I/O queues: PRP shapes, queue wrap and phase, statuses.
@Suite struct ControllerIOTests {
    static let data = NVMeTestHost.dataOffset

    private func readyHost(blockSize: Int = 512, entries: UInt32 = 64, ramBytes: Int = 4 << 20) throws -> NVMeTestHost {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: ramBytes, blockSize: blockSize))
        try host.enable()
        try host.createIOQueuePair(1, entries: entries)
        return host
    }

    /// The PRP fields for a buffer at data offset `offset` of `length` bytes that the host
    /// lays out as a driver would: PRP1 the first byte, PRP2 the second page or a list.
    private func prps(_ host: NVMeTestHost, offset: Int, length: Int, listAt: Int) -> (UInt64, UInt64) {
        let first = host.iova(offset)
        let firstChunk = 4096 - offset % 4096
        if length <= firstChunk { return (first, 0) }
        let pageStart = (offset + firstChunk)
        let rest = length - firstChunk
        let pages = (rest + 4095) / 4096
        if pages == 1 { return (first, host.iova(pageStart)) }
        host.storeList((0..<pages).map { host.iova(pageStart + 4096 * $0) }, at: listAt)
        return (first, host.iova(listAt))
    }

    @Test(arguments: [
        (0, 512), (0, 4096), (0x200, 4096), (0, 8192), (0x600, 8192), (0, 128 << 10), (0x800, 128 << 10 - 4096), (0xA00, 20480),
    ])
    func writeThenReadBack(offset: Int, length: Int) throws {
        let host = try readyHost()
        let bytes = pattern(length, seed: UInt64(offset * 31 + length))
        let source = Self.data + offset
        host.store(bytes, at: source)
        let (w1, w2) = prps(host, offset: source, length: length, listAt: Self.data - 0x10000)
        let write = try host.submit(ioCommand(.write, lba: 40, blocks: length / 512, prp1: w1, prp2: w2), queue: 1)
        #expect(write.status == .success)
        #expect(write.submissionQueueID == 1)
        // Read back to another place with another page offset.
        let target = Self.data + (4 << 20) + (offset + 0x400) % 4096
        let (r1, r2) = prps(host, offset: target, length: length, listAt: Self.data - 0x8000)
        let read = try host.submit(ioCommand(.read, lba: 40, blocks: length / 512, prp1: r1, prp2: r2), queue: 1)
        #expect(read.status == .success)
        #expect(host.bytes(target, length) == bytes)
    }

    /// A PRP list that does not fit the rest of its page continues at the page's last entry.
    @Test func chainedPRPList() throws {
        let host = try readyHost()
        let length = 128 << 10
        let bytes = pattern(length, seed: 99)
        host.store(bytes, at: Self.data)
        // PRP1 = page 0; the list starts 3 entries before the end of its page: two data
        // entries, then a pointer to the rest of the list on another page.
        let pages = (1..<32).map { host.iova(Self.data + 4096 * $0) }
        let listPage = Self.data - 0x20000
        let listStart = listPage + 4096 - 24
        host.storeList([pages[0], pages[1], host.iova(listPage + 8192)], at: listStart)
        host.storeList(Array(pages[2...]), at: listPage + 8192)
        let write = try host.submit(ioCommand(.write, lba: 0, blocks: length / 512, prp1: host.iova(Self.data), prp2: host.iova(listStart)), queue: 1)
        #expect(write.status == .success)
        let target = Self.data + (4 << 20)
        host.storeList((1..<32).map { host.iova(target + 4096 * $0) }, at: listPage + 0x4000)
        let read = try host.submit(ioCommand(.read, lba: 0, blocks: length / 512, prp1: host.iova(target), prp2: host.iova(listPage + 0x4000)), queue: 1)
        #expect(read.status == .success)
        #expect(host.bytes(target, length) == bytes)
    }

    /// Many commands through a 4-entry queue: the queue wraps, the phase tag flips, every
    /// completion carries its command's identifier and the new SQ head.
    @Test func queueWrapsAndPhaseFlips() throws {
        let host = try readyHost(entries: 4)
        for k in 0..<11 {
            let bytes = pattern(512, seed: UInt64(k))
            host.store(bytes, at: Self.data)
            let write = try host.submit(ioCommand(.write, lba: UInt64(k), blocks: 1, prp1: host.iova(Self.data)), queue: 1)
            #expect(write.status == .success)
            #expect(write.submissionQueueHead == UInt16((2 * k + 1) % 4))
            let read = try host.submit(ioCommand(.read, lba: UInt64(k), blocks: 1, prp1: host.iova(Self.data + 4096)), queue: 1)
            #expect(read.status == .success)
            #expect(host.bytes(Self.data + 4096, 512) == bytes)
        }
        #expect(host.queues[1]!.phase == false)  // 22 completions in a 4-entry queue: 5 wraps
    }

    /// Several commands rung with one doorbell write all complete, in order.
    @Test func batchOfCommandsOneDoorbell() throws {
        let host = try readyHost(entries: 16)
        var ids: [UInt16] = []
        for k in 0..<12 {
            host.store(pattern(4096, seed: UInt64(100 + k)), at: Self.data + 4096 * k)
            ids.append(host.place(ioCommand(.write, lba: UInt64(8 * k), blocks: 8, prp1: host.iova(Self.data + 4096 * k)), queue: 1))
        }
        try host.ring(1)
        for id in ids {
            let c = try host.nextCompletion(1)
            #expect(c.commandID == id && c.status == .success)
        }
        let read = try host.submit(ioCommand(.read, lba: 0, blocks: 96, prp1: host.iova(Self.data + (4 << 20)),
                                             prp2: { host.storeList((1..<12).map { host.iova(Self.data + (4 << 20) + 4096 * $0) }, at: Self.data - 0x1000); return host.iova(Self.data - 0x1000) }()),
                                   queue: 1)
        #expect(read.status == .success)
        #expect(host.bytes(Self.data + (4 << 20), 12 * 4096) == (0..<12).flatMap { pattern(4096, seed: UInt64(100 + $0)) })
    }

    /// More commands than the completion queue holds: the controller waits for the host
    /// to free entries (head doorbell) and loses none.
    @Test func completionQueueSmallerThanTheWork() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable()
        try host.createIOQueuePair(1, entries: 32, completionEntries: 2)
        let ids = (0..<20).map { host.place(ioCommand(.read, lba: UInt64($0), blocks: 1, prp1: host.iova(Self.data + 4096 * $0)), queue: 1) }
        try host.ring(1)
        for id in ids {
            let c = try host.nextCompletion(1)
            #expect(c.commandID == id && c.status == .success)
        }
    }

    @Test func writeZeroesDeallocateAndFlush() throws {
        let host = try readyHost(blockSize: 4096)
        host.store(pattern(4 * 4096, seed: 5), at: Self.data)
        host.storeList([host.iova(Self.data + 4096), host.iova(Self.data + 8192), host.iova(Self.data + 12288)], at: Self.data - 0x1000)
        #expect(try host.submit(ioCommand(.write, lba: 10, blocks: 4, prp1: host.iova(Self.data), prp2: host.iova(Self.data - 0x1000)), queue: 1).status == .success)
        // Write Zeroes on block 11, deallocate block 12 with Dataset Management.
        #expect(try host.submit(ioCommand(.writeZeroes, lba: 11, blocks: 1, prp1: 0), queue: 1).status == .success)
        host.store(DatasetRange(blockCount: 1, startingLBA: 12).encoded, at: Self.data + (2 << 20))
        let dsm = SubmissionQueueEntry(opcode: NVMOpcode.datasetManagement.rawValue, commandID: 0, namespaceID: 1,
                                       prp1: host.iova(Self.data + (2 << 20)), cdw10: 0, cdw11: 1 << 2)
        #expect(try host.submit(dsm, queue: 1).status == .success)
        #expect(try host.submit(SubmissionQueueEntry(opcode: NVMOpcode.flush.rawValue, commandID: 0, namespaceID: 1), queue: 1).status == .success)
        #expect(try host.submit(SubmissionQueueEntry(opcode: NVMOpcode.flush.rawValue, commandID: 0, namespaceID: 0xFFFF_FFFF), queue: 1).status == .success)
        let target = Self.data + (4 << 20)
        host.storeList([host.iova(target + 4096), host.iova(target + 8192), host.iova(target + 12288)], at: Self.data - 0x2000)
        #expect(try host.submit(ioCommand(.read, lba: 10, blocks: 4, prp1: host.iova(target), prp2: host.iova(Self.data - 0x2000)), queue: 1).status == .success)
        let original = pattern(4 * 4096, seed: 5)
        #expect(host.bytes(target, 4096) == Array(original[0..<4096]))
        #expect(host.bytes(target + 4096, 8192) == [UInt8](repeating: 0, count: 8192))
        #expect(host.bytes(target + 12288, 4096) == Array(original[12288..<16384]))
    }

    @Test func errorStatuses() throws {
        let host = try readyHost(ramBytes: 1 << 20)  // 2048 blocks
        let buffer = host.iova(Self.data)
        // LBA range past the end, and one whose end wraps 64 bits.
        #expect(try host.submit(ioCommand(.read, lba: 2047, blocks: 2, prp1: buffer), queue: 1).status == .lbaOutOfRange)
        #expect(try host.submit(ioCommand(.write, lba: UInt64.max, blocks: 2, prp1: buffer), queue: 1).status == .lbaOutOfRange)
        #expect(try host.submit(ioCommand(.writeZeroes, lba: 2040, blocks: 9, prp1: 0), queue: 1).status == .lbaOutOfRange)
        // A namespace that does not exist; an opcode the controller does not have.
        #expect(try host.submit(ioCommand(.read, lba: 0, blocks: 1, prp1: buffer, namespace: 2), queue: 1).status == .invalidNamespaceOrFormat)
        #expect(try host.submit(ioCommand(.read, lba: 0, blocks: 1, prp1: buffer, namespace: 0), queue: 1).status == .invalidNamespaceOrFormat)
        #expect(try host.submit(SubmissionQueueEntry(opcode: 0x7F, commandID: 0, namespaceID: 1), queue: 1).status == .invalidOpcode)
        #expect(try host.submit(SubmissionQueueEntry(opcode: 0xC5, commandID: 0), queue: 0).status == .invalidOpcode)
        // More than MDTS (128 KiB).
        #expect(try host.submit(ioCommand(.read, lba: 0, blocks: 257, prp1: buffer, prp2: buffer), queue: 1).status == .invalidField)
        // PRP1 not dword aligned; PRP2 with an offset where a page address belongs; a list entry with an offset.
        #expect(try host.submit(ioCommand(.read, lba: 0, blocks: 1, prp1: buffer + 2), queue: 1).status == .invalidPRPOffset)
        #expect(try host.submit(ioCommand(.read, lba: 0, blocks: 16, prp1: buffer, prp2: buffer + 0x1200), queue: 1).status == .invalidPRPOffset)
        host.storeList([host.iova(Self.data + 4096), host.iova(Self.data + 8192 + 8)], at: Self.data - 0x1000)
        #expect(try host.submit(ioCommand(.read, lba: 0, blocks: 24, prp1: buffer, prp2: host.iova(Self.data - 0x1000)), queue: 1).status == .invalidPRPOffset)
        // Data in memory the host never mapped; a PRP list there.
        #expect(try host.submit(ioCommand(.read, lba: 0, blocks: 1, prp1: 0x9000_0000), queue: 1).status == .dataTransferError)
        #expect(try host.submit(ioCommand(.write, lba: 0, blocks: 24, prp1: buffer, prp2: 0x9000_0000), queue: 1).status == .dataTransferError)
        // SGL data pointers are not supported.
        var sgl = ioCommand(.read, lba: 0, blocks: 1, prp1: buffer)
        sgl.dataTransfer = 1
        #expect(try host.submit(sgl, queue: 1).status == .invalidField)
        // The queue still works.
        #expect(try host.submit(ioCommand(.read, lba: 0, blocks: 1, prp1: buffer), queue: 1).status == .success)
        // Failures went to the error log (newest first).
        let log = try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.getLogPage.rawValue, commandID: 0,
                                                      prp1: host.iova(Self.data + 0x10000), cdw10: (64 / 4 - 1) << 16 | 0x01))
        #expect(log.status == .success)
        let newest = host.bytes(Self.data + 0x10000, 64)
        #expect(newest.le(0, 8) >= 14)  // error count
        #expect(newest.le(8, 2) == 1)  // SQ 1
        #expect(NVMeStatus(completionHalfword: UInt16(newest.le(12, 2))) == .invalidField)
    }

    @Test func queueManagementStatuses() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20, ioQueues: 2), msixVectors: 3)
        try host.enable()
        let cq = host.iova(host.allocateQueueMemory(4096))
        func createCQ(_ id: UInt32, size: UInt32 = 16, flags: UInt32 = 0x3, vector: UInt32 = 1, base: UInt64? = nil) throws -> NVMeStatus {
            try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.createIOCompletionQueue.rawValue, commandID: 0, prp1: base ?? cq,
                                                cdw10: (size - 1) << 16 | id, cdw11: vector << 16 | flags)).status
        }
        func createSQ(_ id: UInt32, cq: UInt32, size: UInt32 = 16, flags: UInt32 = 0x1) throws -> NVMeStatus {
            try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.createIOSubmissionQueue.rawValue, commandID: 0, prp1: host.iova(host.allocateQueueMemory(4096)),
                                                cdw10: (size - 1) << 16 | id, cdw11: cq << 16 | flags)).status
        }
        #expect(try createCQ(0) == .invalidQueueIdentifier)
        #expect(try createCQ(3) == .invalidQueueIdentifier)  // only 2 I/O queues
        #expect(try createCQ(0xFFFF) == .invalidQueueIdentifier)
        #expect(try createCQ(1, size: 1) == .invalidQueueSize)
        #expect(try createCQ(1, size: 1025) == .invalidQueueSize)
        #expect(try createCQ(1, flags: 0x2) == .invalidField)  // not physically contiguous
        #expect(try createCQ(1, base: cq + 8) == .invalidField)
        #expect(try createCQ(1, vector: 3) == .invalidInterruptVector)
        #expect(try createCQ(1) == .success)
        #expect(try createCQ(1) == .invalidQueueIdentifier)  // exists
        #expect(try createSQ(1, cq: 2) == .completionQueueInvalid)
        #expect(try createSQ(1, cq: 0) == .completionQueueInvalid)
        #expect(try createSQ(3, cq: 1) == .invalidQueueIdentifier)
        #expect(try createSQ(1, cq: 1, size: 2048) == .invalidQueueSize)
        #expect(try createSQ(1, cq: 1) == .success)
        func delete(_ opcode: AdminOpcode, _ id: UInt32) throws -> NVMeStatus {
            try host.admin(SubmissionQueueEntry(opcode: opcode.rawValue, commandID: 0, cdw10: id)).status
        }
        #expect(try delete(.deleteIOCompletionQueue, 1) == .invalidQueueDeletion)
        #expect(try delete(.deleteIOSubmissionQueue, 2) == .invalidQueueIdentifier)
        #expect(try delete(.deleteIOSubmissionQueue, 0) == .invalidQueueIdentifier)
        #expect(try delete(.deleteIOSubmissionQueue, 1) == .success)
        #expect(try delete(.deleteIOCompletionQueue, 1) == .success)
        #expect(try delete(.deleteIOCompletionQueue, 1) == .invalidQueueIdentifier)
    }
}
