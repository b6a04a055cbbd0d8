import Glibc
import NVMe
import NVMeController
import Testing
import TestSupport
import VFIO

/// One `NVMeDevice` on a listening server, clients one after another: a client that
/// leaves takes its memory with it, the next finds the controller in reset and brings it
/// up on the same namespace.
@Suite struct ControllerSessionTests {
    static let data = NVMeTestHost.dataOffset

    @Test func aSecondClientBringsTheControllerUpAgainAndReadsTheFirstOnesData() throws {
        let model = try NVMeDevice(ramBytes: 1 << 20)
        let fixture = try UserServerFixture(model: model)
        let written = pattern(16 * 512, seed: 13)
        do {
            let first = try NVMeTestHost(model: model, client: try fixture.connect())
            try first.enable()
            try first.createIOQueuePair(1, entries: 16)
            first.store(written, at: Self.data)
            let c = try first.submit(ioCommand(.write, lba: 0, blocks: 16, prp1: first.iova(Self.data), prp2: first.iova(Self.data + 4096)), queue: 1)
            #expect(c.status == .success)
            // More work rung and not waited for: the client leaves with commands queued.
            for k in 0..<8 { first.place(ioCommand(.write, lba: 64 + UInt64(k), blocks: 1, prp1: first.iova(Self.data)), queue: 1) }
            try first.ring(1)
            first.client.close()
        }
        let second = try NVMeTestHost(model: model, client: try fixture.connect())
        // The controller was reset (RDY clears once a command in flight has finished);
        // what the first client's work met after its memory went is no fatal error.
        #expect(try second.waitStatus { !$0.ready })
        #expect(try !second.status.fatal)
        #expect(try second.read32(ControllerRegister.configuration) == 0)
        try second.enable()
        try second.createIOQueuePair(1, entries: 16)
        memset(second.memory.baseAddress + Self.data, 0, written.count)
        let c = try second.submit(ioCommand(.read, lba: 0, blocks: 16, prp1: second.iova(Self.data), prp2: second.iova(Self.data + 4096)), queue: 1)
        #expect(c.status == .success)
        #expect(second.bytes(Self.data, written.count) == written)
    }
}
