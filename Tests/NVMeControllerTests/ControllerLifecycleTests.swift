import Glibc
import NVMe
import NVMeController
import Testing
import TestSupport
import VFIO
import VFIOSystem

/// Shutdown, reset, interrupts without MSI-X, file-backed namespaces.
@Suite struct ControllerLifecycleTests {
    static let data = NVMeTestHost.dataOffset

    @Test func shutdownThenDisableThenEnableAgain() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable()
        try host.createIOQueuePair(1, entries: 8)
        host.store(pattern(512, seed: 1), at: Self.data)
        #expect(try host.submit(ioCommand(.write, lba: 3, blocks: 1, prp1: host.iova(Self.data)), queue: 1).status == .success)
        // Normal shutdown: SHST goes to complete; the controller stays enabled.
        try host.write32(ControllerConfiguration(enable: true, shutdown: .normal).rawValue, ControllerRegister.configuration)
        #expect(try host.waitStatus { $0.shutdown == .complete })
        #expect(try host.status.ready)
        // Disable: RDY clears, the queues are gone.
        try host.write32(0, ControllerRegister.configuration)
        #expect(try host.waitStatus { !$0.ready })
        #expect(try host.status.shutdown == .normal)
        try host.write32(1, ControllerRegister.submissionTailDoorbell(queue: 1))  // ignored: no controller
        // Enable again: the data is still there (RAM namespace), queue 1 must be created anew.
        host.queues = [:]
        try host.enable()
        try host.createIOQueuePair(1, entries: 8)
        #expect(try host.submit(ioCommand(.read, lba: 3, blocks: 1, prp1: host.iova(Self.data + 4096)), queue: 1).status == .success)
        #expect(host.bytes(Self.data + 4096, 512) == pattern(512, seed: 1))
    }

    /// A function level reset (VFIO_DEVICE_RESET) resets the controller and config space.
    @Test func functionLevelReset() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable()
        try host.createIOQueuePair(1, entries: 8)
        try host.client.reset()
        #expect(try host.status.rawValue == 0)
        #expect(try host.read32(ControllerRegister.configuration) == 0)
        #expect(try host.client.readConfig(UInt16.self, offset: 4) & 0x6 == 0)  // command register back to 0
        try host.client.writeConfig(UInt16(0x6), offset: 4)
        host.queues = [:]
        try host.enable()
        #expect(try host.identify(cns: .controller).0 == .success)
    }

    /// A doorbell value outside its queue and a doorbell of a queue that does not exist
    /// change nothing; the controller goes on.
    @Test func hostileDoorbellsAreIgnored() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable(adminEntries: 4)
        try host.write32(4, ControllerRegister.submissionTailDoorbell(queue: 0))  // == size: invalid
        try host.write32(0xFFFF_FFFF, ControllerRegister.completionHeadDoorbell(queue: 0))
        try host.write32(1, ControllerRegister.submissionTailDoorbell(queue: 9))
        try host.write32(1, ControllerRegister.submissionTailDoorbell(queue: 1000))
        expectErrno(EINVAL) { try host.client.write(UInt16(1), region: 0, offset: ControllerRegister.submissionTailDoorbell(queue: 0)) }
        #expect(try host.identify(cns: .controller).0 == .success)
        #expect(try !host.status.fatal)
    }

    /// Without MSI-X the completion raises INTx; the CQ head doorbell lowers it.
    @Test func pinInterruptFallback() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20), msixVectors: 0, useINTx: true)
        try host.enable()
        #expect(try host.identify(cns: .controller).0 == .success)
        #expect(try host.client.readConfig(UInt16.self, offset: 6) & 0x8 == 0)  // deasserted after the head doorbell
        try host.createIOQueuePair(1, entries: 4, vector: 0)
        host.store(pattern(512, seed: 3), at: Self.data)
        #expect(try host.submit(ioCommand(.write, lba: 0, blocks: 1, prp1: host.iova(Self.data)), queue: 1).status == .success)
    }

    @Test func fileBackingWritesReachTheFile() throws {
        let directory = try makeTemporaryDirectory("/tmp/nvme-file.XXXXXX")
        defer { _ = rmdir(directory) }
        let path = directory + "/namespace.img"
        defer { unlink(path) }
        #expect(writeFile(path, [UInt8](repeating: 0xAB, count: 1 << 20)))
        let storage = try FileNamespaceStorage(path: path, blockSize: 4096)
        #expect(storage.blockCount == 256)
        let host = try NVMeTestHost(model: NVMeDevice(namespaces: [storage]))
        try host.enable()
        try host.createIOQueuePair(1, entries: 8)
        // The file's contents are the namespace's.
        #expect(try host.submit(ioCommand(.read, lba: 1, blocks: 1, prp1: host.iova(Self.data)), queue: 1).status == .success)
        #expect(host.bytes(Self.data, 4096) == [UInt8](repeating: 0xAB, count: 4096))
        // Write cache off: the write is in the file when it completes.
        let off = try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.setFeatures.rawValue, commandID: 0, cdw10: 0x06, cdw11: 0))
        #expect(off.status == .success)
        let bytes = pattern(8192, seed: 11)
        host.store(bytes, at: Self.data)
        #expect(try host.submit(ioCommand(.write, lba: 5, blocks: 2, prp1: host.iova(Self.data), prp2: host.iova(Self.data + 4096)), queue: 1).status == .success)
        #expect(Array(try #require(readFile(path))[(5 * 4096)..<(7 * 4096)]) == bytes)
        // Write Zeroes and a broadcast Flush.
        #expect(try host.submit(ioCommand(.writeZeroes, lba: 6, blocks: 1, prp1: 0), queue: 1).status == .success)
        #expect(try host.submit(SubmissionQueueEntry(opcode: NVMOpcode.flush.rawValue, commandID: 0, namespaceID: 0xFFFF_FFFF), queue: 1).status == .success)
        let file = try #require(readFile(path))
        #expect(Array(file[(6 * 4096)..<(7 * 4096)]) == [UInt8](repeating: 0, count: 4096))
        #expect(file.count == 1 << 20)
        #expect(try host.submit(ioCommand(.read, lba: 255, blocks: 2, prp1: host.iova(Self.data)), queue: 1).status == .lbaOutOfRange)
        // Deallocation is a hint on a file: accepted, the data stays, DLFEAT reports nothing.
        host.store(DatasetRange(blockCount: 1, startingLBA: 5).encoded, at: Self.data + 0x10000)
        let dsm = SubmissionQueueEntry(opcode: NVMOpcode.datasetManagement.rawValue, commandID: 0, namespaceID: 1,
                                       prp1: host.iova(Self.data + 0x10000), cdw11: 1 << 2)
        #expect(try host.submit(dsm, queue: 1).status == .success)
        #expect(Array(try #require(readFile(path))[(5 * 4096)..<(6 * 4096)]) == Array(bytes[0..<4096]))
        #expect(try host.identify(cns: .namespace, namespace: 1).1[33] == 0x08)
    }

    @Test func fileBackingRefusesWhatItCannotServe() throws {
        #expect(throws: VFIOError.self) { try FileNamespaceStorage(path: "/nonexistent/nvme.img", blockSize: 512) }
        #expect(throws: VFIOError.self) { try FileNamespaceStorage(path: "/dev/null", blockSize: 512) }
        let directory = try makeTemporaryDirectory("/tmp/nvme-file.XXXXXX")
        defer { _ = rmdir(directory) }
        let path = directory + "/small.img"
        defer { unlink(path) }
        #expect(writeFile(path, [UInt8](repeating: 0, count: 100)))
        #expect(throws: VFIOError.self) { try FileNamespaceStorage(path: path, blockSize: 512) }
        #expect(throws: VFIOError.self) { try FileNamespaceStorage(path: path, blockSize: 1024) }
    }
}
