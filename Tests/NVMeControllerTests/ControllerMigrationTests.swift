import Glibc
import NVMe
import NVMeController
import Testing
import TestSupport
import VFIO
import VFIODeviceKit
import VFIOMigration

/// Live migration between two controllers served in this process, sharing the host's
/// memory as a VM's RAM is shared between the two sides.
@Suite struct ControllerMigrationTests {
    static let data = NVMeTestHost.dataOffset

    @Test func queuesDataAndFeaturesMoveToTheDestination() throws {
        let source = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try source.enable()
        try source.createIOQueuePair(1, entries: 8)
        #expect(try source.admin(SubmissionQueueEntry(opcode: AdminOpcode.setFeatures.rawValue, commandID: 0, cdw10: 0x08, cdw11: 0x0A04)).status == .success)
        // Written on the source: blocks 0..<6, and the completion queue wraps once.
        for k in 0..<6 {
            host(source, store: pattern(512, seed: UInt64(k)), at: Self.data + 512 * k)
            #expect(try source.submit(ioCommand(.write, lba: UInt64(k), blocks: 1, prp1: source.iova(Self.data + 512 * k)), queue: 1).status == .success)
        }
        // An Asynchronous Event Request outstanding, and two commands queued but not rung.
        let eventID = source.place(SubmissionQueueEntry(opcode: AdminOpcode.asynchronousEventRequest.rawValue, commandID: 0), queue: 0)
        try source.ring(0)
        let readID = source.place(ioCommand(.read, lba: 0, blocks: 6, prp1: source.iova(Self.data + (1 << 20))), queue: 1)
        let writeID = source.place(ioCommand(.writeZeroes, lba: 1, blocks: 1, prp1: 0), queue: 1)

        let destination = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20), memory: source.memory)
        let report = try LiveMigration.migrate(from: source.client, to: destination.client)
        #expect(report.totalBytes > 1 << 20)  // the RAM namespace travels
        #expect(try source.client.migrationState() == .stop)
        // The destination runs with the source's registers and queues.
        #expect(try destination.status.ready)
        #expect(try destination.read32(ControllerRegister.configuration) == ControllerConfiguration(enable: true).rawValue)
        destination.queues = source.queues
        try destination.ring(1)
        let read = try destination.nextCompletion(1)
        #expect(read.commandID == readID && read.status == .success)
        let zero = try destination.nextCompletion(1)
        #expect(zero.commandID == writeID && zero.status == .success)
        #expect(destination.bytes(Self.data + (1 << 20), 6 * 512) == (0..<6).flatMap { pattern(512, seed: UInt64($0)) })
        // Features came along; the event request is still outstanding (Abort finds it).
        let coalescing = try destination.admin(SubmissionQueueEntry(opcode: AdminOpcode.getFeatures.rawValue, commandID: 0, cdw10: 0x08))
        #expect(coalescing.dword0 == 0x0A04)
        let abortID = destination.place(SubmissionQueueEntry(opcode: AdminOpcode.abort.rawValue, commandID: 0, cdw10: UInt32(eventID) << 16), queue: 0)
        try destination.ring(0)
        let aborted = try destination.nextCompletion(0)
        #expect(aborted.commandID == eventID && aborted.status == .abortRequested)
        let abort = try destination.nextCompletion(0)
        #expect(abort.commandID == abortID && abort.dword0 & 1 == 0)
    }

    /// A destination with another namespace refuses the state, and the source runs on.
    @Test func differentNamespacesAreRefused() throws {
        let source = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try source.enable()
        let destination = try NVMeTestHost(model: try NVMeDevice(ramBytes: 2 << 20), memory: source.memory)
        do {
            _ = try LiveMigration.migrate(from: source.client, to: destination.client)
            Issue.record("a 2 MiB namespace loaded a 1 MiB one's state")
        } catch {
            #expect("\(error)".contains("RESUMING -> STOP"), "\(error)")
            #expect(destination.model.lastLoadError?.contains("namespace 1 has 2048 blocks of 512 bytes there, 4096 of 512 here") == true)
        }
        #expect(try source.client.migrationState() == .running)
        #expect(try source.identify(cns: .controller).0 == .success)
    }

    /// Stopped, the controller fetches nothing; running again, it completes what was rung.
    @Test func stoppedControllerHoldsItsWork() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable()
        try host.createIOQueuePair(1, entries: 8)
        try host.model.setMigrationRunState(.quiescent)
        let id = host.place(ioCommand(.read, lba: 0, blocks: 1, prp1: host.iova(Self.data)), queue: 1)
        try host.ring(1)  // quiescent: the tail is taken, no command starts
        #expect(try waitSignalled(host.vectors[1], milliseconds: 100) == nil)
        let saved = try host.model.saveState()
        try host.model.setMigrationRunState(.running)
        let c = try host.nextCompletion(1)
        #expect(c.commandID == id && c.status == .success)
        // A state cut short is refused without changing the controller.
        #expect(throws: VFIOError.self) { try host.model.loadState(Array(saved.prefix(100)), version: 1) }
        #expect(throws: VFIOError.self) { try host.model.loadState(saved, version: 2) }
        #expect(try host.status.ready)
    }

    private func host(_ h: NVMeTestHost, store bytes: [UInt8], at offset: Int) { h.store(bytes, at: offset) }
}
