import Testing
import VFIO
import VFIODeviceKit

private let reg = EduDevice.Register.self
private let ramSize: UInt64 = 0x40_0000  // 4 MiB of RAM at IOVA 0

/// An edu attached through the kit, with 4 MiB of RAM at IOVA 0 and bus mastering on.
/// (A 28-bit DMA mask covers it.)
private func setup() throws -> (EduDevice, AttachedDevice, InMemoryDeviceContext) {
    let context = InMemoryDeviceContext()
    try context.map(iova: 0, size: Int(ramSize))
    let edu = EduDevice()
    let device = try AttachedDevice(model: edu, context: context)
    try edu.access(context, write: configIndex, offset: 4, width: 2, value: 0x6)
    return (edu, device, context)
}

/// edu copies `count` bytes of its buffer to RAM at `iova` (one DMA, run after the reply).
private func dmaToRAM(_ edu: EduDevice, _ context: InMemoryDeviceContext, iova: UInt64, count: UInt64) throws {
    try edu.access(context, write: bar0Index, offset: reg.dmaSource, width: 8, value: EduDevice.dmaBufferAddress)
    try edu.access(context, write: bar0Index, offset: reg.dmaDestination, width: 8, value: iova)
    try edu.access(context, write: bar0Index, offset: reg.dmaCount, width: 8, value: count)
    try edu.access(context, write: bar0Index, offset: reg.dmaCommand, width: 8, value: EduDevice.dmaStart | EduDevice.dmaToRAM)
    #expect(edu.lastDMAError == nil)
}

/// edu reads `count` bytes of RAM at `iova` into its buffer.
private func dmaFromRAM(_ edu: EduDevice, _ context: InMemoryDeviceContext, iova: UInt64, count: UInt64) throws {
    try edu.access(context, write: bar0Index, offset: reg.dmaSource, width: 8, value: iova)
    try edu.access(context, write: bar0Index, offset: reg.dmaDestination, width: 8, value: EduDevice.dmaBufferAddress)
    try edu.access(context, write: bar0Index, offset: reg.dmaCount, width: 8, value: count)
    try edu.access(context, write: bar0Index, offset: reg.dmaCommand, width: 8, value: EduDevice.dmaStart)
    #expect(edu.lastDMAError == nil)
}

/// The expected bitmap over `[base, base + length)` at `pageSize` for the written ranges.
private func expected(_ writes: [(UInt64, UInt64)], base: UInt64, length: UInt64, pageSize: UInt64) -> [UInt64] {
    var words = [UInt64](repeating: 0, count: Int((length / pageSize + 63) / 64))
    for (iova, count) in writes {
        let first = max(iova, base), last = min(iova + count - 1, base + length - 1)
        guard first <= last else { continue }
        for page in ((first - base) / pageSize)...((last - base) / pageSize) {
            words[Int(page / 64)] |= 1 << (page % 64)
        }
    }
    return words
}

private func ranges(_ pairs: [(UInt64, UInt64)]) -> [DMALoggingRange] {
    pairs.map { DMALoggingRange(iova: $0.0, length: $0.1) }
}

@Suite struct KitMigrationDirtyTests {
    /// The writes edu makes: across a 4 KiB boundary, one byte at a 2 MiB boundary, a
    /// whole page, a page straddling 64 KiB.
    static let writes: [(UInt64, UInt64)] = [(0x1F80, 0x100), (0x20_0000, 1), (0x35_0000, 0x1000), (0x2_F800, 0x1000)]

    @Test(arguments: [UInt64(0x1000), 0x2000, 0x1_0000, 0x20_0000, 0x40_0000])
    func reportAtPageSize(pageSize: UInt64) throws {
        let (edu, device, context) = try setup()
        #expect(try device.tracker.startDMALogging(ranges: ranges([(0, ramSize)]), pageSize: 0x1000) == 0x1000)
        try dmaFromRAM(edu, context, iova: 0x10_0000, count: 0x1000)  // reads mark nothing
        for (iova, count) in Self.writes { try dmaToRAM(edu, context, iova: iova, count: count) }
        let bitmap = try device.tracker.reportDirtyPages(iova: 0, length: ramSize, pageSize: pageSize)
        #expect(bitmap == expected(Self.writes, base: 0, length: ramSize, pageSize: pageSize))
        #expect(bitmap.count == Int((ramSize / pageSize + 63) / 64))
        // Read-and-clear: nothing is left.
        let again = try device.tracker.reportDirtyPages(iova: 0, length: ramSize, pageSize: pageSize)
        #expect(again.allSatisfy { $0 == 0 })
    }

    @Test func subRangeReportsAndClearsOnlyThatPart() throws {
        let (edu, device, context) = try setup()
        try device.tracker.startDMALogging(ranges: ranges([(0, ramSize)]), pageSize: 0x1000)
        for (iova, count) in Self.writes { try dmaToRAM(edu, context, iova: iova, count: count) }
        let low = try device.tracker.reportDirtyPages(iova: 0, length: 0x10_0000, pageSize: 0x1000)
        #expect(low == expected(Self.writes, base: 0, length: 0x10_0000, pageSize: 0x1000))
        let high = try device.tracker.reportDirtyPages(iova: 0x20_0000, length: 0x20_0000, pageSize: 0x1000)
        #expect(high == expected(Self.writes, base: 0x20_0000, length: 0x20_0000, pageSize: 0x1000))
        let all = try device.tracker.reportDirtyPages(iova: 0, length: ramSize, pageSize: 0x1000)
        #expect(all.allSatisfy { $0 == 0 })
    }

    /// Report pages smaller than the tracking page: every report page inside a written
    /// tracked page is dirty; a tracked page only partly reported stays dirty.
    @Test func reportPagesSmallerThanTracking() throws {
        let (edu, device, context) = try setup()
        #expect(try device.tracker.startDMALogging(ranges: ranges([(0, ramSize)]), pageSize: 0x1_0000) == 0x1_0000)
        try dmaToRAM(edu, context, iova: 0x1_0010, count: 1)
        let bitmap = try device.tracker.reportDirtyPages(iova: 0, length: 0x4_0000, pageSize: 0x1000)
        #expect(bitmap == [0xFFFF << 16])  // 4 KiB pages 16...31 = the 64 KiB page at 0x10000
        // Half of the tracked page: reported, not cleared.
        try dmaToRAM(edu, context, iova: 0x2_0000, count: 1)
        let half = try device.tracker.reportDirtyPages(iova: 0x2_0000, length: 0x8000, pageSize: 0x1000)
        #expect(half == [0xFF])
        let whole = try device.tracker.reportDirtyPages(iova: 0x2_0000, length: 0x1_0000, pageSize: 0x1000)
        #expect(whole == [0xFFFF])
        #expect(try device.tracker.reportDirtyPages(iova: 0x2_0000, length: 0x1_0000, pageSize: 0x1000) == [0])
    }

    /// Several ranges: writes outside them are not recorded; a report spanning adjacent
    /// ranges works; one reaching outside is refused and clears nothing.
    @Test func severalRanges() throws {
        let (edu, device, context) = try setup()
        try device.tracker.startDMALogging(ranges: ranges([(0x20_0000, 0x10_0000), (0, 0x10_0000), (0x10_0000, 0x8000)]), pageSize: 0x2000)
        #expect(device.tracker.dmaLoggingRanges?.ranges.count == 3)
        #expect(device.tracker.dmaLoggingRanges?.pageSize == 0x2000)
        try dmaToRAM(edu, context, iova: 0xF_F800, count: 0x1000)  // crosses from range 0 into range 1
        try dmaToRAM(edu, context, iova: 0x18_0000, count: 0x100)  // not logged
        try dmaToRAM(edu, context, iova: 0x20_1000, count: 0x10)
        let outside = #expect(throws: VFIOError.self) {
            try device.tracker.reportDirtyPages(iova: 0, length: 0x20_0000, pageSize: 0x1000)
        }
        #expect(text(outside).contains("0x108000 lies outside the logged ranges"), "\(text(outside))")
        let spanning = try device.tracker.reportDirtyPages(iova: 0xF_0000, length: 0x1_8000, pageSize: 0x1000)
        // 8 KiB tracking: 0xFE000-0xFFFFF and 0x100000-0x101FFF -> 4 KiB pages 14...17.
        #expect(spanning == [0b1111 << 14])
        let third = try device.tracker.reportDirtyPages(iova: 0x20_0000, length: 0x10_0000, pageSize: 0x10_0000)
        #expect(third == [1])
    }

    @Test func startStopAndRequestChecks() throws {
        let (edu, device, context) = try setup()
        let tracker = device.tracker
        #expect(throws: VFIOError.self) { try tracker.reportDirtyPages(iova: 0, length: 0x1000, pageSize: 0x1000) }
        #expect(throws: VFIOError.self) { try tracker.startDMALogging(ranges: [], pageSize: 0x1000) }
        let tooMany = (0..<257).map { DMALoggingRange(iova: UInt64($0) * 0x1000, length: 0x1000) }
        let e2big = #expect(throws: VFIOError.self) { try tracker.startDMALogging(ranges: tooMany, pageSize: 0x1000) }
        #expect(text(e2big).contains("exceed the limit of 256"))
        let overlap = #expect(throws: VFIOError.self) {
            try tracker.startDMALogging(ranges: ranges([(0, 0x2000), (0x1000, 0x1000)]), pageSize: 0x1000)
        }
        #expect(text(overlap).contains("overlaps"))
        #expect(throws: VFIOError.self) { try tracker.startDMALogging(ranges: ranges([(0x800, 0x1000)]), pageSize: 0x1000) }
        #expect(throws: VFIOError.self) { try tracker.startDMALogging(ranges: ranges([(0, 0x3000)]), pageSize: 0x3000) }
        #expect(throws: VFIOError.self) { try tracker.startDMALogging(ranges: ranges([(UInt64.max - 0xFFF, 0x2000)]), pageSize: 0x1000) }
        // Below 4 KiB is raised to 4 KiB; the ranges must fit it.
        #expect(throws: VFIOError.self) { try tracker.startDMALogging(ranges: ranges([(0x800, 0x800)]), pageSize: 0x800) }
        #expect(!tracker.isDMALogging)
        #expect(try tracker.startDMALogging(ranges: ranges([(0, 0x10000)]), pageSize: 0x200) == 0x1000)
        let busy = #expect(throws: VFIOError.self) { try tracker.startDMALogging(ranges: ranges([(0, 0x1000)]), pageSize: 0x1000) }
        #expect(busy?.errnoValue == DeviceErrno.EBUSY)
        // Report checks.
        #expect(throws: VFIOError.self) { try tracker.reportDirtyPages(iova: 0, length: 0x1000, pageSize: 0x800) }
        #expect(throws: VFIOError.self) { try tracker.reportDirtyPages(iova: 0, length: 0x1000, pageSize: 0x1800) }
        #expect(throws: VFIOError.self) { try tracker.reportDirtyPages(iova: 0, length: 0, pageSize: 0x1000) }
        #expect(throws: VFIOError.self) { try tracker.reportDirtyPages(iova: 0x800, length: 0x1000, pageSize: 0x1000) }
        let overflow = #expect(throws: VFIOError.self) { try tracker.reportDirtyPages(iova: UInt64.max - 0xFFF, length: 0x2000, pageSize: 0x1000) }
        #expect(overflow?.errnoValue == DeviceErrno.EOVERFLOW)
        // Stop forgets; writes after it are not recorded.
        try dmaToRAM(edu, context, iova: 0, count: 1)
        tracker.stopDMALogging()
        #expect(!tracker.isDMALogging)
        tracker.stopDMALogging()
        try dmaToRAM(edu, context, iova: 0x1000, count: 1)
        try tracker.startDMALogging(ranges: ranges([(0, 0x10000)]), pageSize: 0x1000)
        #expect(try tracker.reportDirtyPages(iova: 0, length: 0x10000, pageSize: 0x1000) == [0])
    }

    /// Logging across a migration: the pages a carried DMA writes after resume are the
    /// destination's to report; pages written before the stop are the source's.
    @Test func loggingDuringMigration() throws {
        let (edu, device, context) = try setup()
        try device.tracker.startDMALogging(ranges: ranges([(0, ramSize)]), pageSize: 0x1000)
        let driver = try #require(device.migration)
        try driver.setState(.preCopy)
        _ = try drain(driver)
        try dmaToRAM(edu, context, iova: 0x5000, count: 0x10)
        try driver.setState(.stopCopy)
        _ = try drain(driver)
        let bitmap = try device.tracker.reportDirtyPages(iova: 0, length: 0x10_0000, pageSize: 0x1000)
        #expect(bitmap == expected([(0x5000, 0x10)], base: 0, length: 0x10_0000, pageSize: 0x1000))
        try driver.setState(.stop)
        device.tracker.stopDMALogging()
    }
}
