import Glibc
import Synchronization
import Testing
import TestSupport
import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire

/// A model that tries DMA synchronously from inside its handlers (a register write, a
/// reset, the DMA_MAP notice) and records the errno each attempt got (0: it worked).
final class SynchronousDMAModel: DeviceModel, @unchecked Sendable {
    static let iova: UInt64 = 0x1000
    let deviceFlags: DeviceInfoFlags = [.pci, .reset]
    let regions = [RegionDescriptor(index: 0, size: 4096, flags: [.read, .write])]
    let irqs: [IRQDescriptor] = []
    private let state = Mutex((context: (any DeviceContext)?.none, results: [String: Int32]()))

    var results: [String: Int32] { state.withLock { $0.results } }
    var context: (any DeviceContext)? { state.withLock { $0.context } }

    func attach(_ context: any DeviceContext) { state.withLock { $0.context = context } }

    /// A DMA read of 8 bytes at `iova` from wherever it is called; its errno goes to
    /// `results[caller]`.
    func attemptDMA(_ caller: String) {
        guard let context else { return }
        var bytes = [UInt8](repeating: 0, count: 8)
        let code: Int32
        do throws(VFIOError) {
            try bytes.withMutableBytes { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in
                try context.dmaRead(iova: Self.iova, into: raw)
            }
            code = 0
        } catch {
            code = error.errnoValue ?? -1
        }
        state.withLock { $0.results[caller] = code }
    }

    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        for i in 0..<buffer.count { buffer[i] = 0 }
    }

    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) { attemptDMA("write") }
    func reset() throws(VFIOError) { attemptDMA("reset") }
    func dmaMapped(_ range: IOVARange) { attemptDMA("dmaMapped") }
}

/// The next client of `fixture` (whose model has one region) is served.
private func expectServed(_ fixture: UserServerFixture, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let client = try fixture.connect()
    defer { client.close() }
    #expect(try client.deviceInfo().numRegions == 1, sourceLocation: sourceLocation)
}

/// The work thread and DMA through DMA_READ / DMA_WRITE messages: the device lock is let
/// go while a message waits for its reply, so the client's commands are answered
/// meanwhile; a handler's own message DMA is refused; a client that leaves ends the wait.
@Suite struct UserServerWorkThreadTests {
    /// edu DMA from memory mapped without a descriptor: the work thread sends DMA_READ and
    /// waits. The client does not answer yet and keeps reading registers: every read is
    /// answered. Once it answers, the transfer ends before the server handles the next
    /// command, with the client's bytes.
    @Test func regionReadsAreAnsweredWhileDeferredWorkWaitsForADMAReply() throws {
        let edu = EduDevice()
        let fixture = try UserServerFixture(model: edu)
        let peer = try RawPeer(path: fixture.path)
        let device = RawEdu(peer: peer)
        try device.enableBusMaster()
        let map = try peer.request(VFIOUserCommand.dmaMap.rawValue,
                                   VFIOUserDMAMap(flags: [.read, .write], offset: 0, address: RawEdu.iova, size: 8192).encoded)
        try #require(!map.header.isError)
        try device.start(toRAM: false)
        let request = try device.nextServerMessage()
        try #require(request.header.command == VFIOUserCommand.dmaRead.rawValue && request.header.isCommand, "\(request.header)")
        for _ in 0..<50 {
            #expect(try device.read(0x00) == 0x0100_00ed)
        }
        #expect(try device.read(0x98) & 1 == 1, "the transfer ended without its data")
        let data = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 3 &+ 1) }
        try peer.socket.send(id: request.header.messageID, command: request.header.command, flags: .reply,
                             payload: VFIOUserDMAAccess(address: RawEdu.iova, count: 64, data: data).encoded)
        #expect(try device.read(0x98) & 1 == 0, "the transfer did not end before the next command")
        #expect(edu.lastDMAError == nil)
        #expect(Array(edu.deviceBuffer[0..<64]) == data)
        try expectNextClientServed(fixture, leaving: peer)
    }

    /// Message DMA from inside a handler (a register write, DEVICE_RESET, the DMA_MAP
    /// notice: all on the serving thread, which alone reads replies) fails at once with
    /// EDEADLK: no DMA_READ goes out (`RawPeer.request` takes the next message as the
    /// reply) and the command is answered. The same mapping serves a model thread.
    @Test func messageDMAFromInsideAHandlerIsRefusedWithEDEADLK() throws {
        let model = SynchronousDMAModel()
        let fixture = try UserServerFixture(model: model)
        let peer = try RawPeer(path: fixture.path)
        let map = try peer.request(VFIOUserCommand.dmaMap.rawValue,
                                   VFIOUserDMAMap(flags: [.read, .write], offset: 0, address: SynchronousDMAModel.iova, size: 4096).encoded)
        #expect(!map.header.isError)
        let write = try peer.request(VFIOUserCommand.regionWrite.rawValue,
                                     VFIOUserRegionAccess(offset: 0, region: 0, count: 4, data: [1, 2, 3, 4]).encoded)
        #expect(!write.header.isError)
        #expect(!(try peer.request(VFIOUserCommand.deviceReset.rawValue, [])).header.isError)
        #expect(model.results == ["dmaMapped": EDEADLK, "write": EDEADLK, "reset": EDEADLK])
        // From a thread of the model, the DMA_READ goes out and its reply completes it.
        let worker = WorkerThread(name: "model") { model.attemptDMA("model thread") }
        guard case .message(let request) = try peer.socket.receive(maxPayload: 1 << 16, maxFDs: 4) else {
            Issue.record("no DMA_READ")
            return
        }
        #expect(request.header.command == VFIOUserCommand.dmaRead.rawValue)
        try peer.socket.send(id: request.header.messageID, command: request.header.command, flags: .reply,
                             payload: VFIOUserDMAAccess(address: SynchronousDMAModel.iova, count: 8, data: [UInt8](repeating: 7, count: 8)).encoded)
        worker.join()
        #expect(model.results["model thread"] == 0)
        peer.socket.close()
        try expectServed(fixture)
    }

    /// A message DMA waiting for its reply when the client disconnects fails with
    /// ECONNRESET (it does not wait on), and the next client is served.
    @Test func aDMAMessageWaitingWhenTheClientLeavesFailsWithECONNRESET() throws {
        let model = SynchronousDMAModel()
        let fixture = try UserServerFixture(model: model)
        let peer = try RawPeer(path: fixture.path)
        let map = try peer.request(VFIOUserCommand.dmaMap.rawValue,
                                   VFIOUserDMAMap(flags: [.read, .write], offset: 0, address: SynchronousDMAModel.iova, size: 4096).encoded)
        #expect(!map.header.isError)
        let worker = WorkerThread(name: "model") { model.attemptDMA("model thread") }
        guard case .message(let request) = try peer.socket.receive(maxPayload: 1 << 16, maxFDs: 4) else {
            Issue.record("no DMA_READ")
            return
        }
        #expect(request.header.command == VFIOUserCommand.dmaRead.rawValue)
        peer.socket.close()
        worker.join()
        #expect(model.results["model thread"] == ECONNRESET)
        try expectServed(fixture)
    }
}
