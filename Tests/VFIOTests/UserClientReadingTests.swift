import Glibc
import Synchronization
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUser

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
@Suite(.serialized) struct UserClientReadingTests {
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
