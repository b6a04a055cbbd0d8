import Glibc
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

/// A client fills the server's whole DMA map table page by page, as QEMU behind a vIOMMU
/// does, from one memfd (the page's file offset following its IOVA). The table holds
/// 16384 maps here (a quarter of QEMU's max_dma_maps, so that the debug build takes a
/// second or two; a table that scanned its maps took minutes).
@Suite struct UserDMAManyMapsTests {
    static let page = 4096
    static let base: UInt64 = 0x1_0000_0000

    @Test func aFullTableOfPageMapsServesDMAAndUnmaps() throws {
        let model = DMAProbeModel()
        var configuration = VFIOUserServer.Configuration()
        configuration.capabilities.maxDMAMaps = 16384
        let fixture = try UserServerFixture(model: model, configuration: configuration)
        let client = try fixture.connect()
        defer { client.close() }
        let count = Int(configuration.capabilities.maxDMAMaps)
        let page = Self.page
        let memory = try DMABuffer(size: count * page)
        func iova(_ index: Int) -> UInt64 { Self.base + UInt64(index * page) }
        // Highest IOVA first, as Linux's IOVA allocator hands them out.
        for index in (0..<count).reversed() {
            try client.mapDMA(memory, offset: index * page, size: page, iova: iova(index), access: .readWrite)
        }
        expectErrno(ENOSPC) { try client.mapDMA(memory, offset: 0, size: page, iova: iova(count), access: .readWrite) }
        let context = try #require(model.context)
        func read(_ address: UInt64, _ length: Int) throws(VFIOError) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: length)
            try bytes.withMutableBytes { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in try context.dmaRead(iova: address, into: raw) }
            return bytes
        }
        func write(_ address: UInt64, _ bytes: [UInt8]) throws(VFIOError) {
            try bytes.withBytes { (raw: UnsafeRawBufferPointer) throws(VFIOError) in try context.dmaWrite(iova: address, from: raw) }
        }
        // The highest mapping, then 64 KiB across 17 adjacent maps in both directions.
        let top = (count - 1) * page
        for i in 0..<page { memory.bytes[top + i] = UInt8(truncatingIfNeeded: i &* 7 &+ 1) }
        #expect(try read(iova(count - 1), page) == Array(memory.bytes[top..<top + page]))
        let spanStart = 100 * page + 123
        for i in 0..<(64 << 10) { memory.bytes[spanStart + i] = UInt8(truncatingIfNeeded: i &* 13) }
        #expect(try read(Self.base + UInt64(spanStart), 64 << 10) == Array(memory.bytes[spanStart..<spanStart + (64 << 10)]))
        let pattern = (0..<(64 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 5 &+ 3) }
        try write(Self.base + UInt64(spanStart) + 4096, pattern)
        #expect(Array(memory.bytes[spanStart + 4096..<spanStart + 4096 + (64 << 10)]) == pattern)
        // Past the last mapping, nothing is copied.
        expectErrno(EFAULT) { _ = try read(iova(count) - 16, 32) }
        // Unmapping 16 maps in the middle: DMA across the hole fails, the rest works.
        try client.unmapDMA(iova: iova(1000), size: UInt64(16 * page))
        expectErrno(EFAULT) { _ = try read(iova(999), 2 * page) }
        expectErrno(EFAULT) { try write(iova(1015), [1]) }
        #expect(try read(iova(1016), 8) == Array(memory.bytes[1016 * page..<1016 * page + 8]))
        expectErrno(ENOENT) { try client.unmapDMA(iova: iova(1000), size: UInt64(16 * page)) }
        expectErrno(EINVAL) { try client.unmapDMA(iova: iova(2000), size: UInt64(page / 2)) }
        // Room again: a map in the hole is accepted; one over a neighbour is not.
        try client.mapDMA(memory, offset: 1000 * page, size: 2 * page, iova: iova(1000), access: .readWrite)
        expectErrno(EEXIST) { try client.mapDMA(memory, offset: 0, size: 2 * page, iova: iova(1015), access: .readWrite) }
        #expect(try read(iova(1000), 8) == Array(memory.bytes[1000 * page..<1000 * page + 8]))
        try client.unmapAllDMA()
        expectErrno(EFAULT) { _ = try read(iova(count - 1), 8) }
        expectErrno(ENOENT) { try client.unmapDMA(iova: iova(0), size: UInt64(count * page)) }
        #expect(client.servedDMAMessages == 0)
    }
}
