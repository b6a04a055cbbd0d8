import Glibc
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

/// Checks written against `VFIODevice` only, for an `edu` device whatever carries it (the
/// Swift model over vfio-user here; QEMU's edu through the kernel elsewhere).
enum UserEduChecks {
    static let bar: UInt32 = 0
    static let cfg = PCIRegionIndex.config.rawValue

    static func register(_ device: any VFIODevice, _ offset: UInt64) throws -> UInt32 {
        try device.read(UInt32.self, region: bar, offset: offset)
    }

    static func setRegister(_ device: any VFIODevice, _ offset: UInt64, _ value: UInt32) throws {
        try device.write(value, region: bar, offset: offset)
    }

    /// Identity, registers, factorial, info and IRQ info.
    static func registersAndInfo(_ device: any VFIODevice) throws {
        #expect(try device.readConfig(UInt16.self, offset: 0) == 0x1234)
        #expect(try device.readConfig(UInt16.self, offset: 2) == 0x11e8)
        #expect(try device.readConfig(UInt8.self, offset: 8) == 0x10)
        let info = try device.deviceInfo()
        #expect(info.flags.contains(.pci))
        #expect(info.numRegions >= 9 && info.numIRQs >= 2)
        let region = try device.regionInfo(bar)
        #expect(region.size == 1 << 20)
        #expect(region.flags.contains([.read, .write]))
        #expect(try device.regionInfo(cfg).size >= 256)
        #expect(try device.irqInfo(PCIIRQIndex.msi.rawValue).count == 1)
        #expect(try device.irqInfo(PCIIRQIndex.intx.rawValue).count == 1)
        #expect(try register(device, 0x00) == 0x0100_00ed)
        for value: UInt32 in [0x1234_5678, 0, 0xffff_ffff, 0xa5a5_0f0f] {
            try setRegister(device, 0x04, value)
            #expect(try register(device, 0x04) == ~value)
        }
        try setRegister(device, 0x08, 12)
        // Status bit 0: computing (QEMU's edu computes on a thread of its own).
        #expect(try poll(for: .seconds(10)) { try register(device, 0x20) & 1 == 0 }, "the factorial was not done within 10 s")
        #expect(try register(device, 0x08) == 479_001_600)
    }

    /// MSI: raise → eventfd; acknowledge clears the status.
    static func msi(_ device: any VFIODevice) throws {
        let command = try device.readConfig(UInt16.self, offset: 4)
        try device.writeConfig(command | 0x6, offset: 4)
        let event = try EventFD()
        try device.setIRQs(.enableEventfds(index: PCIIRQIndex.msi.rawValue, [event.fd]))
        defer { try? device.setIRQs(.disable(index: PCIIRQIndex.msi.rawValue)) }
        try setRegister(device, 0x60, 0x40)
        #expect(try waitSignalled(event) != nil)
        #expect(try register(device, 0x24) & 0x40 != 0)
        try setRegister(device, 0x64, 0x40)
        #expect(try register(device, 0x24) & 0x40 == 0)
    }

    /// DMA into memory mapped with `mapDMA`, both directions, and refusal after unmap.
    static func dma(_ device: any VFIODevice, backing: DMABuffer.Backing) throws {
        let command = try device.readConfig(UInt16.self, offset: 4)
        try device.writeConfig(command | 0x6, offset: 4)
        let memory = try DMABuffer(size: 8192, backing: backing)
        let iova: UInt64 = 0x0800_0000
        try device.mapDMA(memory, offset: 0, size: 8192, iova: iova, access: .readWrite)
        for i in 0..<4000 { memory.bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 5) }
        func run(_ source: UInt64, _ destination: UInt64, _ count: UInt32, toRAM: Bool) throws {
            try device.write(source, region: bar, offset: 0x80)
            try device.write(destination, region: bar, offset: 0x88)
            try setRegister(device, 0x90, count)
            try setRegister(device, 0x98, toRAM ? 0x3 : 0x1)
            #expect(try poll(for: .seconds(10)) { try register(device, 0x98) & 1 == 0 }, "the DMA was not done within 10 s")
        }
        try run(iova, 0x40000, 4000, toRAM: false)
        try run(0x40000, iova + 4096, 4000, toRAM: true)
        #expect(Array(memory.bytes[4096..<8096]) == Array(memory.bytes[0..<4000]))
        try device.unmapDMA(iova: iova, size: 8192)
    }

    static func reset(_ device: any VFIODevice) throws {
        try device.writeConfig(UInt16(0x6), offset: 4)
        try device.reset()
        #expect(try device.readConfig(UInt16.self, offset: 4) & 0x6 == 0)
    }
}

@Suite struct UserConformanceTests {
    @Test func eduOverARealUNIXSocket() throws {
        let fixture = try UserServerFixture()
        let device: any VFIODevice = try fixture.connect()
        try UserEduChecks.registersAndInfo(device)
        try UserEduChecks.msi(device)
        try UserEduChecks.dma(device, backing: .sharedMemory)
        try UserEduChecks.dma(device, backing: .anonymous)
        try UserEduChecks.reset(device)
    }

    @Test func eduServedInProcessOnASocketPair() throws {
        let device: any VFIODevice = try VFIOUserClient.serving(EduDevice(), name: "model:edu")
        try UserEduChecks.registersAndInfo(device)
        try UserEduChecks.msi(device)
        try UserEduChecks.dma(device, backing: .sharedMemory)
        try UserEduChecks.reset(device)
    }

    /// Several threads share one client: requests pipeline and every reply finds its caller.
    @Test func oneClientManyThreads() throws {
        let fixture = try UserServerFixture(model: BulkMemoryModel())
        let client = try fixture.connect()
        let failures = Monitor(0)
        var workers: [WorkerThread] = []
        for t in 0..<4 {
            workers.append(WorkerThread(name: "client-\(t)") {
                for i in 0..<200 {
                    let offset = UInt64(t * 65536 + (i % 64) * 8)
                    let value = UInt64(t) << 32 | UInt64(i)
                    do {
                        try client.write(value, region: 0, offset: offset)
                        if try client.read(UInt64.self, region: 0, offset: offset) != value { failures.update { $0 += 1 } }
                    } catch {
                        failures.update { $0 += 1 }
                    }
                }
            })
        }
        for worker in workers { worker.join() }
        #expect(failures.withLock { $0 } == 0)
    }

    /// The kit's memory-backed device: an mmap-able BAR area shared through the region's
    /// memfd, and MSI-X vectors raised by a doorbell.
    @Test func memoryBackedDeviceMmapAndMSIX() throws {
        let fixture = try UserServerFixture(model: MemoryBackedDevice())
        let client = try fixture.connect()
        let info = try client.regionInfo(0)
        #expect(info.flags.contains(.mmap))
        let area = try #require(info.sparseMmapAreas?.first)
        let mapping = try client.mapRegion(0, offset: area.offset, size: Int(area.size))
        let bytes = UnsafeMutableRawBufferPointer(start: mapping.baseAddress, count: mapping.size)
        for i in 0..<bytes.count { bytes[i] = UInt8(truncatingIfNeeded: i) }
        let sum = (0..<bytes.count).reduce(UInt32(0)) { $0 &+ UInt32(UInt8(truncatingIfNeeded: $1)) }
        #expect(try client.read(UInt32.self, region: 0, offset: MemoryBackedDevice.Register.checksum) == sum)
        try client.write(UInt32(0x5A), region: 0, offset: MemoryBackedDevice.Register.fill)
        #expect(bytes[0] == 0x5A && bytes[bytes.count - 1] == 0x5A)
        // Region reads inside the area come from the same memory.
        #expect(try client.readBytes(region: 0, offset: area.offset + 10, count: 4) == [0x5A, 0x5A, 0x5A, 0x5A])
        // QEMU's sequence: argsz 32 first (the chain does not fit: argsz needed, CAPS, no
        // descriptor), then the size asked for (chain and the region's memfd).
        let small = try #require(try client.rawRequest(command: VFIOUserCommand.deviceGetRegionInfo.rawValue,
                                                       payload: Array(RegionInfo.query(index: 0, capacity: 32))))
        #expect(!small.header.isError && small.payload.count == 32 && small.fds.isEmpty)
        let needed = le32(small.payload, 0)
        #expect(needed > 32 && RegionInfoFlags(rawValue: le32(small.payload, 4)).contains([.caps, .mmap]))
        #expect(try RegionInfo(decoding: small.payload).capabilitiesOmitted)
        let full = try #require(try client.rawRequest(command: VFIOUserCommand.deviceGetRegionInfo.rawValue,
                                                      payload: Array(RegionInfo.query(index: 0, capacity: Int(needed)).prefix(32))))
        #expect(full.payload.count == Int(needed) && full.fds.count == 1)
        #expect(try RegionInfo(decoding: full.payload).sparseMmapAreas == [area])
        // The register page cannot be mapped.
        #expect(throws: VFIOError.self) { _ = try client.mapRegion(0, offset: 0, size: 4096) }
        // MSI-X: unmask vector 2, enable eventfds, ring.
        let command = try client.readConfig(UInt16.self, offset: 4)
        try client.writeConfig(command | 0x6, offset: 4)
        let count = Int(try client.irqInfo(PCIIRQIndex.msix.rawValue).count)
        let events = try (0..<count).map { _ in try EventFD() }
        try client.setIRQs(.enableMSIX(events.map(\.fd)))
        try client.write(UInt32(0), region: 0, offset: 0x800 + 2 * 16 + 12)
        try client.write(UInt32(2), region: 0, offset: MemoryBackedDevice.Register.doorbell)
        #expect(try waitSignalled(events[2]) == 1)
        try client.write(UInt32(1), region: 0, offset: 0x800 + 3 * 16 + 12)   // mask vector 3
        try client.write(UInt32(3), region: 0, offset: MemoryBackedDevice.Register.doorbell)
        #expect(try waitSignalled(events[3], milliseconds: 50) == nil)   // masked: pends
        try client.write(UInt32(0), region: 0, offset: 0x800 + 3 * 16 + 12)   // unmask: delivered
        #expect(try waitSignalled(events[3]) == 1)
        try client.setIRQs(.disable(index: PCIIRQIndex.msix.rawValue))
    }
}
