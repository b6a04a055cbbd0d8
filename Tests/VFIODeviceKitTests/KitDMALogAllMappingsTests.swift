import Testing
import VFIO
import VFIODeviceKit

/// `TrackingContext.startDMALoggingOfAllMappings` (vfio-user's DMA_LOGGING_START with
/// `num_ranges` 0) and `dmaMapped`: the log follows the mappings.
@Suite struct KitDMALogAllMappingsTests {
    /// A tracker over 8 MiB of in-memory DMA space at IOVA 0.
    private func tracker(maximumTrackedPages: UInt64 = 1 << 30) throws -> TrackingContext {
        let context = InMemoryDeviceContext()
        try context.map(iova: 0, size: 8 << 20)
        return TrackingContext(wrapping: context, maximumTrackedPages: maximumTrackedPages)
    }

    private func write(_ tracker: TrackingContext, _ iova: UInt64, count: Int = 1) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xAB)
        try tracker.dmaWrite(iova: iova, from: UnsafeRawBufferPointer(buffer))
    }

    private func range(_ start: UInt64, _ length: UInt64) throws -> IOVARange { try IOVARange(iova: start, length: length) }

    @Test func mappingsAreLoggedRoundedOutToTheTrackingPage() throws {
        let t = try tracker()
        // Page size 512 is raised to 4096; a mapping of 0x800 bytes at 0x3400 is logged as
        // its whole page; touching mappings become one range.
        let chosen = try t.startDMALoggingOfAllMappings([try range(0x1000, 0x1000), try range(0x2000, 0x1000), try range(0x3400, 0x800)],
                                                         pageSize: 512)
        #expect(chosen == 4096)
        #expect(t.dmaLoggingRanges?.ranges == [try range(0x1000, 0x3000)])
        try write(t, 0x1FFF, count: 2)   // pages 0x1000 and 0x2000
        try write(t, 0x3900)
        #expect(try t.reportDirtyPages(iova: 0x1000, length: 0x3000, pageSize: 4096) == [0b111])
        #expect(throws: VFIOError.self) { _ = try t.reportDirtyPages(iova: 0x4000, length: 0x1000, pageSize: 4096) }
        // A 2 MiB page: both rounded to [0, 2 MiB).
        let big = try tracker()
        #expect(try big.startDMALoggingOfAllMappings([try range(0x1000, 0x1000), try range(0x10_0000, 0x1000)], pageSize: 0x20_0000) == 0x20_0000)
        #expect(big.dmaLoggingRanges?.ranges == [try range(0, 0x20_0000)])
        try write(big, 0x10_0000)
        #expect(try big.reportDirtyPages(iova: 0, length: 0x20_0000, pageSize: 0x20_0000) == [1])
    }

    @Test func mappingsMadeWhileLoggingJoinTheLog() throws {
        let t = try tracker()
        try t.startDMALoggingOfAllMappings([], pageSize: 4096)
        #expect(t.dmaLoggingRanges?.ranges == [])
        try t.dmaMapped(try range(0x5000, 0x1000))
        try write(t, 0x5010)
        // A mapping over logged pages adds only the pages not logged: the dirty bit stays.
        try t.dmaMapped(try range(0x4000, 0x3000))
        #expect(t.dmaLoggingRanges?.ranges == [try range(0x4000, 0x1000), try range(0x5000, 0x1000), try range(0x6000, 0x1000)])
        try write(t, 0x6000)
        #expect(try t.reportDirtyPages(iova: 0x4000, length: 0x3000, pageSize: 4096) == [0b110])
        // After STOP, and while logging given ranges, mappings do not join.
        t.stopDMALogging()
        try t.dmaMapped(try range(0x8000, 0x1000))
        #expect(t.dmaLoggingRanges == nil)
        try t.startDMALogging(ranges: [DMALoggingRange(iova: 0x4000, length: 0x1000)], pageSize: 4096)
        try t.dmaMapped(try range(0x8000, 0x1000))
        #expect(t.dmaLoggingRanges?.ranges == [try range(0x4000, 0x1000)])
    }

    @Test func theLogIsBounded() throws {
        let t = try tracker(maximumTrackedPages: 4)
        #expect(throws: VFIOError.self) { try t.startDMALoggingOfAllMappings([try range(0, 0x5000)], pageSize: 4096) }
        #expect(!t.isDMALogging)
        try t.startDMALoggingOfAllMappings([try range(0, 0x3000)], pageSize: 4096)
        do {
            try t.dmaMapped(try range(0x10000, 0x2000))
            Issue.record("a mapping past the log's bound was taken")
        } catch {
            #expect((error as? VFIOError)?.errnoValue == DeviceErrno.ENOMEM, "\(error)")
        }
        #expect(t.dmaLoggingRanges?.ranges == [try range(0, 0x3000)], "nothing of the refused mapping was added")
        try t.dmaMapped(try range(0x10000, 0x1000))   // the fourth page fits
        #expect(t.dmaLoggingRanges?.ranges.count == 2)
        // The whole 64-bit space at 4 KiB is over any bound.
        let huge = try tracker()
        #expect(throws: VFIOError.self) { try huge.startDMALoggingOfAllMappings([try IOVARange(start: 0, last: .max)], pageSize: 4096) }
        #expect(throws: VFIOError.self) { try huge.startDMALoggingOfAllMappings([], pageSize: 3000) }
    }
}
