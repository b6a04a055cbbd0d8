import Glibc
import VFIO
import VFIOSystem
import VFIOUserClient
import VFIOUserServer
import VFIOUserWire

/// The bench device's DMA engine (region 1, see `BenchDevice`), driven from the client.
struct BenchDMAEngine {
    let client: VFIOUserClient

    func setRegister(_ offset: UInt64, _ value: UInt64, _ width: Int) throws {
        var v = value.littleEndian
        try withUnsafeBytes(of: &v) { try client.write(region: 1, offset: offset, from: UnsafeRawBufferPointer(rebasing: $0[0..<width])) }
    }

    func getRegister(_ offset: UInt64, _ width: Int) throws -> UInt64 {
        var v: UInt64 = 0
        try withUnsafeMutableBytes(of: &v) { try client.read(region: 1, offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<width])) }
        return UInt64(littleEndian: v)
    }

    /// Runs `times` transfers of `length` bytes at `iova` in the server (`toRAM`: the
    /// device writes RAM); returns the seconds they took by the server's clock.
    func run(iova: UInt64, length: Int, times: Int, toRAM: Bool) throws -> Double {
        try setRegister(0x08, iova, 8)
        try setRegister(0x10, UInt64(length), 4)
        try setRegister(0x14, UInt64(times), 4)
        let before = try getRegister(0x28, 4)
        try setRegister(0x18, toRAM ? 2 : 1, 4)
        while try getRegister(0x28, 4) == before { usleep(500) }
        let code = try getRegister(0x2C, 4)
        precondition(code == 0, "device DMA failed: errno \(code)")
        return Double(try getRegister(0x20, 8)) / 1e9
    }
}

/// (g) The server's DMA map table when a client maps memory one 4 KiB page at a time, as
/// QEMU behind a vIOMMU does, up to QEMU's (and the server's) max_dma_maps of 65535: pages
/// of one memfd, mapped highest IOVA first (as Linux's IOVA allocator hands them out).
/// Each round empties the table and fills it again, measuring on the way: the DMA_MAP rate
/// over the last 1000 maps against the rate over the first 1000, and the server's time
/// for a 4 KiB DMA read from the highest page with 60,000 maps in the table against the
/// same with that page alone.
struct DMAMapBenchmark {
    let client: VFIOUserClient
    let rounds: Int
    static let maps = 65535
    static let crowded = 60000
    static let timedMaps = 1000
    static let dmaTimes = 2000
    static let base: UInt64 = 0x1_0000_0000

    func run() throws -> [Row] {
        let page = 4096
        let memory = try DMABuffer(size: Self.maps * page)
        let engine = BenchDMAEngine(client: client)
        func map(_ index: Int) throws {
            try client.mapDMA(memory, offset: index * page, size: page, iova: Self.base + UInt64(index * page), access: [.read, .write])
        }
        let top = Self.maps - 1
        var fewRates: [Double] = [], fullRates: [Double] = [], alone: [Double] = [], crowded: [Double] = []
        for round in 0...rounds {   // round 0 warms up
            try map(top)
            let aloneTime = try engine.run(iova: Self.base + UInt64(top * page), length: page, times: Self.dmaTimes, toRAM: false)
            var next = top - 1
            var t = now()
            for _ in 0..<Self.timedMaps { try map(next); next -= 1 }
            let fewRate = Double(Self.timedMaps) / (Double(now() - t) / 1e9)
            while Self.maps - next <= Self.crowded { try map(next); next -= 1 }
            let crowdedTime = try engine.run(iova: Self.base + UInt64(top * page), length: page, times: Self.dmaTimes, toRAM: false)
            while next >= Self.timedMaps { try map(next); next -= 1 }
            t = now()
            while next >= 0 { try map(next); next -= 1 }
            let fullRate = Double(Self.timedMaps) / (Double(now() - t) / 1e9)
            try client.unmapAllDMA()
            guard round > 0 else { continue }
            fewRates.append(fewRate); fullRates.append(fullRate)
            alone.append(aloneTime / Double(Self.dmaTimes)); crowded.append(crowdedTime / Double(Self.dmaTimes))
        }
        return [
            Row(group: "g", name: "DMA_MAP 4 KiB, maps 64536-65535", unit: "k maps/s", subject: median(fullRates) / 1000,
                floorName: "DMA_MAP 4 KiB, maps 2-1001", floor: median(fewRates) / 1000, lowerIsBetter: false, target: ">= 0.5x"),
            Row(group: "g", name: "DMA read 4 KiB, highest of 60000 maps", unit: "us", subject: median(crowded) * 1e6,
                floorName: "same, the only map", floor: median(alone) * 1e6, lowerIsBetter: true, target: "<= 2x"),
        ]
    }
}
