import Glibc
import Synchronization
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

/// Region 0: 4 MiB of server memory (one mmap area: accesses are copies to and from the
/// socket); region 1: 1 MiB served by callbacks from the model's own bytes.
final class TwoRegionModel: DeviceModel, @unchecked Sendable {
    let deviceFlags: DeviceInfoFlags = [.pci]
    let regions: [RegionDescriptor] = [
        RegionDescriptor(index: 0, size: 4 << 20, flags: [.read, .write, .mmap],
                         backing: .memory(mmapAreas: [SparseMmapArea(offset: 0, size: 4 << 20)])),
        RegionDescriptor(index: 1, size: 1 << 20, flags: [.read, .write]),
    ]
    let irqs: [IRQDescriptor] = []
    private let bytes = Mutex([UInt8](repeating: 0, count: 1 << 20))

    func attach(_ context: any DeviceContext) {}
    func reset() throws(VFIOError) {}

    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        bytes.withLock { b in b.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset) + buffer.count])) } }
    }

    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        bytes.withLock { b in b.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[Int(offset)..<Int(offset) + buffer.count]).copyMemory(from: buffer) } }
    }
}

/// How `VFIOUserClient` reads its socket: callers read their own replies (and each
/// other's), the receive thread reads once the connection is quiet, replies land in the
/// caller's buffer.
@Suite struct UserClientReadingTests {
    /// Sixteen threads with requests in flight at once on one connection: every caller
    /// gets its own reply (the reader hands the others theirs), reads and writes of all
    /// sizes, through region memory and through model callbacks.
    @Test func sixteenCallersAtOnceEachGetTheirOwnReplies() throws {
        let fixture = try UserServerFixture(model: TwoRegionModel())
        let client = try fixture.connect()
        let failures = Mutex([String]())
        let threads = (0..<16).map { t in
            WorkerThread(name: "caller \(t)") {
                let size = [4, 8, 100, 4096, 60_000][t % 5]
                let region = UInt32(t % 2)
                let offset = UInt64(t) * 0x10000
                var pattern = [UInt8](repeating: 0, count: size)
                for round in 0..<40 {
                    for i in 0..<size { pattern[i] = UInt8(truncatingIfNeeded: t &* 31 &+ round &+ i) }
                    do {
                        try client.writeBytes(pattern, region: region, offset: offset)
                        let back = try client.readBytes(region: region, offset: offset, count: size)
                        if back != pattern { failures.withLock { $0.append("caller \(t) round \(round): other bytes came back") } }
                    } catch {
                        failures.withLock { $0.append("caller \(t): \(error)") }
                        return
                    }
                }
            }
        }
        for thread in threads { thread.join() }
        #expect(failures.withLock { $0 } == [])
        #expect(client.isConnected)
    }

    /// A reply whose size is not the one the caller expects (an error reply, or a short
    /// read) still arrives whole and is reported, and the stream stays in step.
    @Test func repliesOfAnotherSizeAreStillRead() throws {
        let fixture = try UserServerFixture(model: TwoRegionModel())
        let client = try fixture.connect()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 8)
        defer { buffer.deallocate() }
        for region: UInt32 in [0, 1] {
            // Past the end of the region: an error reply (16 bytes) instead of 16 + 8192.
            let size = try client.regionInfo(region).size
            expectErrno(EINVAL) { try client.read(region: region, offset: size - 4096, into: buffer) }
            expectErrno(EINVAL) { try client.write(region: region, offset: size - 4096, from: UnsafeRawBufferPointer(buffer)) }
            try client.writeBytes([1, 2, 3, 4], region: region, offset: size - 4)
            #expect(try client.readBytes(region: region, offset: size - 4, count: 4) == [1, 2, 3, 4])
        }
        // No such region.
        expectErrno(EINVAL) { try client.read(region: 7, offset: 0, into: buffer) }
        #expect(client.isConnected)
    }

    /// With any `idleReadDelay`, DMA messages the server sends while no request is in
    /// flight are read (by the receive thread) and the device's interrupt arrives; with
    /// zero the receive thread reads all the time and callers still get their replies.
    @Test(arguments: [Duration.zero, .microseconds(200), .milliseconds(20)])
    func serverMessagesBetweenRequestsAreReadWhateverTheDelay(_ delay: Duration) throws {
        let fixture = try UserServerFixture()
        var configuration = VFIOUserClient.Configuration()
        configuration.idleReadDelay = delay
        let client = try fixture.connect(configuration)
        let command = try client.readConfig(UInt16.self, offset: 4)
        try client.writeConfig(command | 0x6, offset: 4)
        let msi = try EventFD()
        try client.setIRQs(.enableEventfds(index: PCIIRQIndex.msi.rawValue, [msi.fd]))
        let ram = try DMABuffer(size: 4096, backing: .anonymous)   // no descriptor: DMA messages
        try client.mapDMA(ram, offset: 0, size: 4096, iova: 0x100000, access: .readWrite)
        for i in 0..<4096 { ram.bytes[i] = UInt8(truncatingIfNeeded: i &* 5) }
        for round in 0..<5 {
            // RAM -> device buffer, then device buffer -> RAM at another offset.
            for (source, destination, toRAM) in [(UInt64(0x100000), UInt64(0x40000), false), (0x40000, 0x100800, true)] {
                try client.write(source, region: 0, offset: 0x80)
                try client.write(destination, region: 0, offset: 0x88)
                try client.write(UInt64(2048), region: 0, offset: 0x90)
                try client.write(UInt64(toRAM ? 0x7 : 0x5), region: 0, offset: 0x98)
                #expect(try waitSignalled(msi, milliseconds: 5000) != nil, "round \(round): no DMA-done interrupt")
                try client.write(UInt32(0x100), region: 0, offset: 0x64)
            }
            #expect(Array(ram.bytes[2048..<4096]) == (0..<2048).map { UInt8(truncatingIfNeeded: $0 &* 5) })
            ram.bytes.baseAddress!.advanced(by: 2048).initializeMemory(as: UInt8.self, repeating: 0, count: 2048)
        }
        #expect(client.servedDMAMessages >= 10)
        withExtendedLifetime(fixture) {}
    }
}

/// A model whose own thread (started by a register write) queues `afterReply` work that
/// DMA-writes a pattern and raises IRQ 0; callbacks note when they run, so the test can
/// see whether queued work ever overlapped one.
final class OffThreadWorkModel: DeviceModel, @unchecked Sendable {
    let deviceFlags: DeviceInfoFlags = [.pci]
    let regions = [RegionDescriptor(index: 0, size: 4096, flags: [.read, .write])]
    let irqs = [IRQDescriptor(index: 0, count: 1, flags: [.eventfd])]
    private let state = Mutex((context: (any DeviceContext)?.none, inCallback: false, overlaps: 0, ran: 0))

    var overlaps: Int { state.withLock { $0.overlaps } }
    var ran: Int { state.withLock { $0.ran } }

    func attach(_ context: any DeviceContext) { state.withLock { $0.context = context } }
    func reset() throws(VFIOError) {}

    private func callback(_ body: () -> Void) {
        state.withLock { $0.inCallback = true }
        body()
        sched_yield()   // widen the window: a work item run concurrently would run now
        state.withLock { $0.inCallback = false }
    }

    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        callback { for i in 0..<buffer.count { buffer[i] = 0 } }
    }

    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        let seed = buffer[0]
        callback {}
        guard let context = state.withLock({ $0.context }) else { return }
        // The model's own thread queues the work, as a backend thread would.
        let thread = WorkerThread(name: "model") { [self] in
            context.afterReply { [self] in
                let overlapped = state.withLock { s -> Bool in
                    s.ran += 1
                    return s.inCallback
                }
                if overlapped { state.withLock { $0.overlaps += 1 } }
                let bytes = (0..<256).map { UInt8(truncatingIfNeeded: Int(seed) &+ $0) }
                bytes.withUnsafeBytes { try? context.dmaWrite(iova: 0x2000, from: $0) }
                context.triggerIRQ(index: 0, vector: 0)
            }
        }
        thread.join()
    }
}

extension UserClientReadingTests {
    /// Work a model's own thread queues with `afterReply` runs although the client sends
    /// nothing more (the serving thread sits in recvmsg), never while a callback runs, and
    /// its DMA messages are answered.
    @Test func workQueuedFromAModelThreadRunsWhileTheClientIsIdle() throws {
        let model = OffThreadWorkModel()
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        let irq = try EventFD()
        try client.setIRQs(.enableEventfds(index: 0, [irq.fd]))
        let ram = try DMABuffer(size: 4096, backing: .anonymous)
        try client.mapDMA(ram, offset: 0, size: 4096, iova: 0x2000, access: .readWrite)
        for seed: UInt8 in [1, 2, 3] {
            try client.writeBytes([seed, 0, 0, 0], region: 0, offset: 0)
            #expect(try waitSignalled(irq, milliseconds: 5000) != nil, "seed \(seed): the queued work did not run")
            #expect(Array(ram.bytes[0..<256]) == (0..<256).map { UInt8(truncatingIfNeeded: Int(seed) &+ $0) })
        }
        // Callbacks and queued work together: reads keep coming while work runs.
        for seed: UInt8 in 10..<20 {
            try client.writeBytes([seed, 0, 0, 0], region: 0, offset: 0)
            for _ in 0..<5 { _ = try client.readBytes(region: 0, offset: 0, count: 4) }
            #expect(try waitSignalled(irq, milliseconds: 5000) != nil)
        }
        #expect(model.ran == 13)
        #expect(model.overlaps == 0)
        withExtendedLifetime(fixture) {}
    }
}
