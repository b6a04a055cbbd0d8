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

/// A model whose register reads can do DMA synchronously (offset 4: a forbidden DMA from
/// inside the request) and whose own thread can do DMA while requests flow.
final class DMAProbeModel: DeviceModel {
    let deviceFlags: DeviceInfoFlags = [.pci]
    let regions = [RegionDescriptor(index: 0, size: 4096, flags: [.read, .write])]
    let irqs: [IRQDescriptor] = []
    let contextBox = Mutex<(any DeviceContext)?>(nil)
    let reads = Mutex(0)
    static let probeIOVA: UInt64 = 0x300000

    var context: (any DeviceContext)? { contextBox.withLock { $0 } }
    func attach(_ context: any DeviceContext) { contextBox.withLock { $0 = context } }

    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        reads.withLock { $0 += 1 }
        if offset == 4 {
            var scratch = [UInt8](repeating: 0, count: 8)
            try scratch.withMutableBytes { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in
                try context!.dmaRead(iova: Self.probeIOVA, into: raw)
            }
        }
        for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: offset) &+ UInt8(i) }
    }

    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {}
    func reset() throws(VFIOError) {}
}

@Suite struct UserDMATests {
    @Test func dmaMessageFromInsideARequestIsRefusedWithEDEADLK() throws {
        let model = DMAProbeModel()
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        let memory = try DMABuffer(size: 4096, backing: .anonymous)
        try client.mapDMA(memory, offset: 0, size: 4096, iova: DMAProbeModel.probeIOVA, access: .readWrite)
        expectErrno(EDEADLK) { _ = try client.read(UInt32.self, region: 0, offset: 4) }
        #expect(try client.read(UInt32.self, region: 0, offset: 8) == 0x0b0a_0908)
        // Mapped through a memfd, the same access is a plain copy and succeeds.
        let shared = try DMABuffer(size: 4096)
        try client.unmapDMA(iova: DMAProbeModel.probeIOVA, size: 4096)
        try client.mapDMA(shared, offset: 0, size: 4096, iova: DMAProbeModel.probeIOVA, access: .readWrite)
        #expect(try client.read(UInt32.self, region: 0, offset: 4) == 0x0706_0504)
    }

    /// DMA messages from a thread of the model interleave with the client's requests:
    /// nothing deadlocks and every transfer sees the right bytes.
    @Test func dmaMessagesFromAModelThreadInterleaveWithRequests() throws {
        let model = DMAProbeModel()
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        let memory = try DMABuffer(size: 8192, backing: .anonymous)
        for i in 0..<8192 { memory.bytes[i] = UInt8(truncatingIfNeeded: i &* 13) }
        try client.mapDMA(memory, offset: 0, size: 8192, iova: DMAProbeModel.probeIOVA, access: .readWrite)
        let context = try #require(model.context)
        let failures = Mutex<[String]>([])
        let worker = WorkerThread(name: "model-dma") {
            for round in 0..<100 {
                var bytes = [UInt8](repeating: 0, count: 6000)
                do throws(VFIOError) {
                    try bytes.withMutableBytes { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in
                        try context.dmaRead(iova: DMAProbeModel.probeIOVA + 1000, into: raw)
                    }
                    if bytes != (1000..<7000).map({ UInt8(truncatingIfNeeded: $0 &* 13) }) {
                        failures.withLock { $0.append("round \(round): wrong bytes") }
                    }
                    let value = [UInt8(truncatingIfNeeded: round)]
                    try value.withBytes { (raw: UnsafeRawBufferPointer) throws(VFIOError) in
                        try context.dmaWrite(iova: DMAProbeModel.probeIOVA + 8000, from: raw)
                    }
                } catch {
                    failures.withLock { $0.append("round \(round): \(error)") }
                }
            }
        }
        for i in 0..<300 { _ = try client.read(UInt32.self, region: 0, offset: UInt64(i % 64) * 8) }
        worker.join()
        #expect(failures.withLock { $0 } == [])
        #expect(memory.bytes[8000] == 99)
        #expect(client.servedDMAMessages == 200)
        // Unmapped: EFAULT, nothing sent.
        try client.unmapDMA(iova: DMAProbeModel.probeIOVA, size: 8192)
        var scratch = [UInt8](repeating: 0, count: 4)
        #expect(throws: VFIOError.self) {
            try scratch.withMutableBytes { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in
                try context.dmaRead(iova: DMAProbeModel.probeIOVA, into: raw)
            }
        }
    }

    @Test func readOnlyMappingsRefuseDeviceWrites() throws {
        let model = DMAProbeModel()
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        let memory = try DMABuffer(size: 4096)
        try client.mapDMA(memory, offset: 0, size: 4096, iova: DMAProbeModel.probeIOVA, access: .read)
        let context = try #require(model.context)
        expectErrno(EFAULT) {
            try [UInt8(1)].withBytes { (raw: UnsafeRawBufferPointer) throws(VFIOError) in
                try context.dmaWrite(iova: DMAProbeModel.probeIOVA, from: raw)
            }
        }
        try client.unmapAllDMA()
        expectErrno(ENOENT) { try client.unmapDMA(iova: DMAProbeModel.probeIOVA, size: 4096) }
    }
}

/// A 4 MiB memory-backed region plus the context, for traffic in both directions at once.
final class BulkDMAModel: DeviceModel {
    let deviceFlags: DeviceInfoFlags = [.pci]
    let regions = [RegionDescriptor(index: 0, size: 4 << 20, flags: [.read, .write],
                                    backing: .memory(mmapAreas: [SparseMmapArea(offset: 0, size: 4 << 20)]))]
    let irqs: [IRQDescriptor] = []
    let contextBox = Mutex<(any DeviceContext)?>(nil)
    var context: (any DeviceContext)? { contextBox.withLock { $0 } }
    func attach(_ context: any DeviceContext) { contextBox.withLock { $0 = context } }
    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) { throw .errno("read", EINVAL) }
    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) { throw .errno("write", EINVAL) }
    func reset() throws(VFIOError) {}
}

extension UserDMATests {
    /// 1 MiB region writes, 1 MiB region reads and 1 MiB DMA messages from a model thread,
    /// all at once on one connection: every socket buffer fills, nothing deadlocks.
    @Test func largeTrafficInBothDirectionsAtOnce() throws {
        let model = BulkDMAModel()
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        let memory = try DMABuffer(size: 1 << 20, backing: .anonymous)
        for i in stride(from: 0, to: 1 << 20, by: 4096) { memory.bytes[i] = UInt8(truncatingIfNeeded: i >> 12) }
        try client.mapDMA(memory, offset: 0, size: 1 << 20, iova: 0x1000_0000, access: .readWrite)
        let context = try #require(model.context)
        let failures = Monitor([String]())
        let payload = [UInt8](repeating: 0x3C, count: 1 << 20)
        let threads = [
            WorkerThread(name: "writer") {
                for _ in 0..<15 {
                    do { try client.writeBytes(payload, region: 0, offset: 0) } catch { failures.update { $0.append("write: \(error)") } }
                }
            },
            WorkerThread(name: "reader") {
                for _ in 0..<15 {
                    do { _ = try client.readBytes(region: 0, offset: 1 << 20, count: 1 << 20) } catch { failures.update { $0.append("read: \(error)") } }
                }
            },
            WorkerThread(name: "device") {
                var bytes = [UInt8](repeating: 0, count: 1 << 20)
                for _ in 0..<15 {
                    do throws(VFIOError) {
                        try bytes.withMutableBytes { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in
                            try context.dmaRead(iova: 0x1000_0000, into: raw)
                        }
                        if bytes[4096 * 7] != 7 { failures.update { $0.append("dma: wrong bytes") } }
                    } catch {
                        failures.update { $0.append("dma: \(error)") }
                    }
                }
            },
        ]
        for thread in threads { thread.join() }
        #expect(failures.withLock { $0 } == [])
        #expect(client.servedDMAMessages == 15)
    }
}
