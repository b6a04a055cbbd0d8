import Testing
import VFIO
import CVFIO
import TestSupport

/// Decodes `bytes` as `T` and checks the failure is a `.malformed` error naming `cause`.
fileprivate func expectRejected<T: KernelStruct>(_ type: T.Type, _ bytes: [UInt8], _ cause: String,
                                                sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let value = try T(decoding: bytes)
        Issue.record("\(T.cName) accepted bad input as \(value)", sourceLocation: sourceLocation)
    } catch {
        guard case .malformed(let why) = error.reason else {
            Issue.record("\(T.cName): expected .malformed, got \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.operation == T.cName, sourceLocation: sourceLocation)
        #expect(why.contains(cause), "\"\(why)\" does not mention \"\(cause)\"", sourceLocation: sourceLocation)
    }
}

fileprivate func le64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
    UInt64(le32(bytes, offset)) | UInt64(le32(bytes, offset + 4)) << 32
}

fileprivate let sampleMigration = Type1MigrationCapability(flags: 0, pageSizeBitmap: 0x0000_0000_4020_1000, maxDirtyBitmapSize: 0x1000_0000)
fileprivate let sampleRanges = [
    Type1IOVARange(start: 0, end: 0xfedf_ffff),
    Type1IOVARange(start: 0xfef0_0000, end: 0x000f_ffff_ffff_ffff),
]
fileprivate let sampleUnknown = InfoCapability(id: 0x7f, version: 3, body: Array(1...16))

fileprivate let fullInfo = Type1Info(
    flags: [.pageSizes, .caps],
    iovaPageSizes: 0x0000_0040_4020_1000,
    capabilities: [.iovaRanges(sampleRanges), .migration(sampleMigration), .dmaAvailable(65_531), .unknown(sampleUnknown)])

@Suite struct Type1InfoTests {
    @Test func roundTripsWithAllCapabilitiesAndAnUnknownOne() throws {
        try expectRoundTrip(fullInfo)
        let bytes = fullInfo.encoded()
        #expect(le32(bytes, 0) == UInt32(bytes.count))
        #expect(le32(bytes, 4) == 0b11)
        #expect(le64(bytes, 8) == 0x0000_0040_4020_1000)
        #expect(le32(bytes, 16) == 24, "the chain starts right after the 24-byte struct, as the kernel places it")
        // iova range cap: 8 header + 8 + 2*16 = 48 bytes, so migration starts at 72.
        #expect(le32(bytes, 24) == 1 | 1 << 16)
        #expect(le32(bytes, 28) == 72)
        #expect(le32(bytes, 32) == 2)
        #expect(le32(bytes, 72) == 2 | 1 << 16)
        #expect(le32(bytes, 76) == 104)
        // dma_avail: 12 bytes padded to 16.
        #expect(le32(bytes, 104) == 3 | 1 << 16)
        #expect(le32(bytes, 108) == 120)
        #expect(le32(bytes, 112) == 65_531)
        #expect(le32(bytes, 120) == 0x7f | 3 << 16)
        #expect(le32(bytes, 124) == 0)
        #expect(bytes.count == 144)
    }

    @Test func withoutCapabilitiesTheChainIsAbsent() throws {
        let info = Type1Info(flags: [.pageSizes], iovaPageSizes: 0x1000)
        try expectRoundTrip(info)
        let bytes = info.encoded()
        #expect(bytes.count == 24 && le32(bytes, 16) == 0 && le32(bytes, 4) == 1)
    }

    @Test func encodeSetsCapsWhenCapabilitiesArePresent() throws {
        let info = Type1Info(flags: [.pageSizes], iovaPageSizes: 0x1000, capabilities: [.dmaAvailable(7)])
        let decoded = try Type1Info(decoding: info.encoded())
        #expect(decoded.flags == [.pageSizes, .caps])
        #expect(decoded.capabilities == [.dmaAvailable(7)])
        #expect(!decoded.needsLargerBuffer)
    }

    @Test func replyThatNeedsMoreRoomDecodesWithoutCapabilities() throws {
        var writer = ByteWriter()
        writer.u32(144) // argsz the kernel needs
        writer.u32(Type1InfoFlags([.pageSizes, .caps]).rawValue)
        writer.u64(0x1000)
        writer.u32(0) // cap_offset 0: did not fit
        writer.u32(0)
        let info = try Type1Info(decoding: writer.bytes)
        #expect(info.capabilities.isEmpty)
        #expect(info.needsLargerBuffer)
        #expect(try Type1Info.requiredSize(inReply: writer.bytes) == 144)
        #expect(try Type1Info.requiredSize(inReply: fullInfo.encoded()) == nil)
    }

    @Test func argszRetryFetchesTheChain() throws {
        let full = fullInfo.encoded()
        var calls = 0
        let reply = try ArgszRetry.run("VFIO_IOMMU_GET_INFO", request: Type1Info.request(capacity: 24)) { (buffer: inout [UInt8]) throws(VFIOError) in
            calls += 1
            let argsz = Int(le32(buffer, 0))
            if argsz < full.count {
                // What vfio_iommu_type1_get_info() does: flags and size, no chain.
                for i in 0..<24 { buffer[i] = full[i] }
                buffer.replaceSubrange(16..<20, with: [0, 0, 0, 0])
            } else {
                buffer.replaceSubrange(0..<full.count, with: full)
            }
        }
        #expect(calls == 2)
        #expect(reply.count == full.count)
        #expect(try Type1Info(decoding: reply) == fullInfo)
    }

    @Test func requestStatesItsCapacity() {
        let request = Type1Info.request(capacity: 256)
        #expect(request.count == 256 && le32(request, 0) == 256)
        #expect(request[4...].allSatisfy { $0 == 0 })
        #expect(Type1Info.request(capacity: 3).count == 24)
    }

    @Test func rejectsArgszBelowTheStruct() {
        var bytes = fullInfo.encoded()
        bytes.replaceSubrange(0..<4, with: [20, 0, 0, 0])
        expectRejected(Type1Info.self, bytes, "argsz 20")
    }

    @Test func rejectsCapOffsetWithoutCapsFlag() {
        var bytes = fullInfo.encoded()
        bytes[4] = 1 // PGSIZES only
        expectRejected(Type1Info.self, bytes, "VFIO_IOMMU_INFO_CAPS")
    }

    @Test func rejectsIOVACountExceedingTheCapabilityBody() {
        var body = ByteWriter()
        body.u32(5) // nr_iovas
        body.u32(0)
        Type1IOVARange(start: 0, end: 0xffff).encode(into: &body)
        let info = Type1Info(flags: [.pageSizes, .caps], iovaPageSizes: 0x1000,
                             capabilities: [.unknown(InfoCapability(id: 1, version: 1, body: body.bytes))])
        do {
            _ = try Type1Info(decoding: info.encoded())
            Issue.record("nr_iovas 5 with one range was accepted")
        } catch {
            #expect(error.operation == "vfio_iommu_type1_info_cap_iova_range")
            #expect(error.description.contains("nr_iovas 5"))
        }
    }

    @Test func rejectsShortKnownCapabilityBodies() {
        #expect(throws: VFIOError.self) { _ = try Type1InfoCapability(InfoCapability(id: 2, version: 1, body: Array(repeating: 0, count: 16))) }
        #expect(throws: VFIOError.self) { _ = try Type1InfoCapability(InfoCapability(id: 3, version: 1, body: [1, 2])) }
        #expect(throws: VFIOError.self) { _ = try Type1InfoCapability(InfoCapability(id: 1, version: 1, body: [1, 0, 0, 0])) }
    }

    @Test func otherVersionsOfKnownCapabilitiesStayUnknown() throws {
        let odd = InfoCapability(id: 2, version: 2, body: Array(repeating: 9, count: 8))
        #expect(try Type1InfoCapability(odd) == .unknown(odd))
    }

    @Test func rejectsBrokenChains() {
        var bytes = fullInfo.encoded()
        bytes.replaceSubrange(28..<32, with: [24, 0, 0, 0]) // first cap links to itself
        expectRejected(Type1Info.self, bytes, "loop")
        var short = fullInfo.encoded()
        short.replaceSubrange(16..<20, with: [8, 0, 0, 0]) // into the fixed part
        expectRejected(Type1Info.self, short, "fixed part")
    }

    @Test func layoutMatchesTheSystemHeader() throws {
        #expect(MemoryLayout<vfio_iommu_type1_info>.size == Type1Info.fixedSize)
        let info = Type1Info(flags: [.pageSizes], iovaPageSizes: 0x0000_0040_4020_1000, capabilities: [.dmaAvailable(5)])
        let c = asCStruct(vfio_iommu_type1_info.self, info.encoded())
        #expect(c.argsz == 40)
        #expect(c.flags == UInt32(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS))
        #expect(c.iova_pgsizes == 0x0000_0040_4020_1000)
        #expect(c.cap_offset == 24)
    }

    @Test func capabilityLayoutsMatchTheSystemHeader() throws {
        #expect(MemoryLayout<vfio_iommu_type1_info_cap_iova_range>.size == 16)
        #expect(MemoryLayout<vfio_iova_range>.size == Type1IOVARange.fixedSize)
        #expect(MemoryLayout<vfio_iommu_type1_info_cap_migration>.size == 8 + Type1MigrationCapability.bodySize)
        #expect(MemoryLayout<vfio_iommu_type1_info_dma_avail>.size == 12)

        let ranges = CapabilityChain.build([Type1InfoCapability.iovaRanges(sampleRanges).infoCapability], baseOffset: 0)
        let rangeCap = asCStruct(vfio_iommu_type1_info_cap_iova_range.self, ranges)
        #expect(rangeCap.header.id == UInt16(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) && rangeCap.header.version == 1)
        #expect(rangeCap.nr_iovas == 2 && rangeCap.reserved == 0)
        let second = asCStruct(vfio_iova_range.self, Array(ranges[32..<48]))
        #expect(second.start == sampleRanges[1].start && second.end == sampleRanges[1].end)

        let migration = CapabilityChain.build([Type1InfoCapability.migration(sampleMigration).infoCapability], baseOffset: 0)
        let m = asCStruct(vfio_iommu_type1_info_cap_migration.self, migration)
        #expect(m.header.id == UInt16(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) && m.header.version == 1)
        #expect(m.flags == 0 && m.pgsize_bitmap == sampleMigration.pageSizeBitmap && m.max_dirty_bitmap_size == sampleMigration.maxDirtyBitmapSize)

        let avail = asCStruct(vfio_iommu_type1_info_dma_avail.self,
                              CapabilityChain.build([Type1InfoCapability.dmaAvailable(0xabcd).infoCapability], baseOffset: 0))
        #expect(avail.header.id == UInt16(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) && avail.avail == 0xabcd)
    }
}

@Suite struct Type1IOVARangeTests {
    @Test func roundTrips() throws {
        try expectRoundTrip(Type1IOVARange(start: 0x1000, end: 0xffff_ffff_ffff_ffff))
        let c = asCStruct(vfio_iova_range.self, Type1IOVARange(start: 0x1000, end: 0x2fff).encoded())
        #expect(c.start == 0x1000 && c.end == 0x2fff)
    }

    @Test func rejectsEndBelowStart() {
        var writer = ByteWriter()
        writer.u64(0x2000)
        writer.u64(0x1000)
        expectRejected(Type1IOVARange.self, writer.bytes, "below its start")
    }
}

@Suite struct Type1DMAMapTests {
    let map = Type1DMAMap(flags: [.read, .write], vaddr: 0x7f12_3456_7000, iova: 0x1_0000_0000, size: 0x20_0000)

    @Test func roundTripsAndMatchesTheSystemHeader() throws {
        try expectRoundTrip(map)
        try expectRoundTrip(Type1DMAMap(flags: [.vaddr], vaddr: 0x7f00_0000_0000, iova: 0x4000, size: 0x1000))
        #expect(MemoryLayout<vfio_iommu_type1_dma_map>.size == Type1DMAMap.fixedSize)
        let c = asCStruct(vfio_iommu_type1_dma_map.self, map.encoded())
        #expect(c.argsz == 32)
        #expect(c.flags == UInt32(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE))
        #expect(c.vaddr == map.vaddr && c.iova == map.iova && c.size == map.size)
        #expect(UInt32(VFIO_DMA_MAP_FLAG_VADDR) == Type1DMAMapFlags.vaddr.rawValue)
    }

    @Test func rejectsWhatTheKernelRefuses() {
        let cases: [(Type1DMAMap, String)] = [
            (Type1DMAMap(flags: [.vaddr, .read], vaddr: 0x1000, iova: 0x1000, size: 0x1000), "cannot be combined"),
            (Type1DMAMap(flags: [], vaddr: 0x1000, iova: 0x1000, size: 0x1000), "READ and/or WRITE"),
            (Type1DMAMap(flags: Type1DMAMapFlags(rawValue: 0x11), vaddr: 0x1000, iova: 0x1000, size: 0x1000), "unknown flag bits 0x10"),
            (Type1DMAMap(vaddr: 0x1000, iova: 0x1000, size: 0), "size is 0"),
            (Type1DMAMap(vaddr: 0x1000, iova: UInt64.max - 0xfff, size: 0x2000), "iova"),
            (Type1DMAMap(vaddr: UInt64.max - 0xfff, iova: 0, size: 0x2000), "vaddr"),
        ]
        for (bad, cause) in cases {
            expectRejected(Type1DMAMap.self, bad.encoded(), cause)
            #expect(throws: VFIOError.invalidArgument(Type1DMAMap.cName, bad.encodedProblem)) { try bad.validate() }
        }
        #expect(throws: Never.self) { try map.validate() }
        var small = map.encoded()
        small[0] = 24
        expectRejected(Type1DMAMap.self, small, "argsz 24")
    }
}

extension Type1DMAMap {
    /// The reason `validate()` gives, read back from the decoder's error.
    fileprivate var encodedProblem: String {
        do { _ = try Type1DMAMap(decoding: encoded()); return "" } catch {
            if case .malformed(let why) = error.reason { return why }
            return ""
        }
    }
}

@Suite struct Type1BitmapTests {
    let bitmap = Type1Bitmap(pageSize: 0x1000, size: 0x200, data: 0x7fff_aaaa_0000)

    @Test func roundTripsAndMatchesTheSystemHeader() throws {
        try expectRoundTrip(bitmap)
        #expect(MemoryLayout<vfio_bitmap>.size == Type1Bitmap.fixedSize)
        let c = asCStruct(vfio_bitmap.self, bitmap.encoded())
        #expect(c.pgsize == 0x1000 && c.size == 0x200)
        #expect(UInt64(UInt(bitPattern: c.data)) == 0x7fff_aaaa_0000)
    }

    @Test func requiredSizeRoundsUpToWholeWords() {
        #expect(Type1Bitmap.requiredSize(forLength: 0x1000, pageSize: 0x1000) == 8)
        #expect(Type1Bitmap.requiredSize(forLength: 64 * 0x1000, pageSize: 0x1000) == 8)
        #expect(Type1Bitmap.requiredSize(forLength: 65 * 0x1000, pageSize: 0x1000) == 16)
        #expect(Type1Bitmap.requiredSize(forLength: 0x1001, pageSize: 0x1000) == 8)
    }
}

@Suite struct Type1DMAUnmapTests {
    let bitmap = Type1Bitmap(pageSize: 0x1000, size: 64, data: 0x7fff_0000_1000)

    @Test func roundTripsPlainAllVaddrAndDirtyBitmap() throws {
        try expectRoundTrip(Type1DMAUnmap(iova: 0x1_0000_0000, size: 0x20_0000))
        try expectRoundTrip(Type1DMAUnmap(flags: [.all], iova: 0, size: 0))
        try expectRoundTrip(Type1DMAUnmap(flags: [.vaddr], iova: 0x4000, size: 0x1000))
        let dirty = Type1DMAUnmap(iova: 0x10_0000, size: 0x20_0000, dirtyBitmap: bitmap)
        try expectRoundTrip(dirty)
        let bytes = dirty.encoded()
        #expect(bytes.count == 48 && le32(bytes, 0) == 48 && le32(bytes, 4) == 1)
        #expect(dirty.wireFlags == [.getDirtyBitmap])
        #expect(dirty.flags.isEmpty)
    }

    @Test func getDirtyBitmapInFlagsIsDerivedFromTheBitmap() throws {
        var unmap = Type1DMAUnmap(flags: [.getDirtyBitmap], iova: 0x1000, size: 0x1000)
        #expect(unmap.wireFlags.isEmpty)
        unmap.flags = [.getDirtyBitmap, .vaddr]
        #expect(unmap.flags == [.vaddr])
    }

    @Test func layoutMatchesTheSystemHeader() throws {
        #expect(MemoryLayout<vfio_iommu_type1_dma_unmap>.size == Type1DMAUnmap.fixedSize)
        let dirty = Type1DMAUnmap(iova: 0x10_0000, size: 0x20_0000, dirtyBitmap: bitmap).encoded()
        let c = asCStruct(vfio_iommu_type1_dma_unmap.self, dirty)
        #expect(c.argsz == 48 && c.flags == UInt32(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP))
        #expect(c.iova == 0x10_0000 && c.size == 0x20_0000)
        let b = asCStruct(vfio_bitmap.self, Array(dirty[MemoryLayout<vfio_iommu_type1_dma_unmap>.size...]))
        #expect(b.pgsize == 0x1000 && b.size == 64 && UInt64(UInt(bitPattern: b.data)) == 0x7fff_0000_1000)
        #expect(UInt32(VFIO_DMA_UNMAP_FLAG_ALL) == Type1DMAUnmapFlags.all.rawValue)
        #expect(UInt32(VFIO_DMA_UNMAP_FLAG_VADDR) == Type1DMAUnmapFlags.vaddr.rawValue)
    }

    fileprivate func raw(argsz: UInt32, flags: UInt32, iova: UInt64, size: UInt64, bitmap: Bool = false) -> [UInt8] {
        var writer = ByteWriter()
        writer.u32(argsz)
        writer.u32(flags)
        writer.u64(iova)
        writer.u64(size)
        if bitmap { self.bitmap.encode(into: &writer) }
        return writer.bytes
    }

    @Test func rejectsFlagCombinationsTheKernelRefuses() {
        expectRejected(Type1DMAUnmap.self, raw(argsz: 48, flags: 0b011, iova: 0, size: 0, bitmap: true), "VFIO_DMA_UNMAP_FLAG_ALL")
        expectRejected(Type1DMAUnmap.self, raw(argsz: 48, flags: 0b101, iova: 0x1000, size: 0x1000, bitmap: true), "VFIO_DMA_UNMAP_FLAG_VADDR")
        expectRejected(Type1DMAUnmap.self, raw(argsz: 24, flags: 0b010, iova: 0x1000, size: 0), "needs iova and size 0")
        expectRejected(Type1DMAUnmap.self, raw(argsz: 24, flags: 0b010, iova: 0, size: 0x1000), "needs iova and size 0")
        expectRejected(Type1DMAUnmap.self, raw(argsz: 24, flags: 0, iova: 0x1000, size: 0), "size is 0")
        expectRejected(Type1DMAUnmap.self, raw(argsz: 24, flags: 0, iova: UInt64.max, size: 0x1000), "wraps")
        expectRejected(Type1DMAUnmap.self, raw(argsz: 24, flags: 0x8, iova: 0x1000, size: 0x1000), "unknown flag bits 0x8")
        expectRejected(Type1DMAUnmap.self, raw(argsz: 16, flags: 0, iova: 0x1000, size: 0x1000), "argsz 16")
    }

    @Test func rejectsDirtyBitmapWithoutRoomForIt() {
        expectRejected(Type1DMAUnmap.self, raw(argsz: 24, flags: 1, iova: 0x1000, size: 0x1000), "no room for the vfio_bitmap")
        expectRejected(Type1DMAUnmap.self, raw(argsz: 48, flags: 1, iova: 0x1000, size: 0x1000), "needs 8 byte(s)")
    }

    @Test func validateNamesTheCause() {
        let bad = Type1DMAUnmap(flags: [.all], iova: 0, size: 0, dirtyBitmap: bitmap)
        do {
            try bad.validate()
            Issue.record("ALL with a dirty bitmap passed validate()")
        } catch {
            #expect(error.operation == Type1DMAUnmap.cName)
            guard case .invalidArgument(let why) = error.reason else { Issue.record("\(error)"); return }
            #expect(why.contains("VFIO_DMA_UNMAP_FLAG_ALL"))
        }
        #expect(throws: Never.self) { try Type1DMAUnmap(flags: [.all], iova: 0, size: 0).validate() }
    }
}

@Suite struct Type1DirtyPagesTests {
    let range = Type1DirtyBitmapRange(iova: 0x10_0000, size: 0x40_0000,
                                      bitmap: Type1Bitmap(pageSize: 0x1000, size: 128, data: 0x7ffe_1234_0000))

    @Test func roundTripsEveryOperation() throws {
        try expectRoundTrip(Type1DirtyPages(.start))
        try expectRoundTrip(Type1DirtyPages(.stop))
        try expectRoundTrip(Type1DirtyPages(.getBitmap(range)))
        try expectRoundTrip(range)
        #expect(Type1DirtyPages(.start).encoded() == [8, 0, 0, 0, 1, 0, 0, 0])
        #expect(Type1DirtyPages(.stop).encoded() == [8, 0, 0, 0, 2, 0, 0, 0])
    }

    @Test func layoutMatchesTheSystemHeader() {
        #expect(MemoryLayout<vfio_iommu_type1_dirty_bitmap>.size == Type1DirtyPages.fixedSize)
        #expect(MemoryLayout<vfio_iommu_type1_dirty_bitmap_get>.size == Type1DirtyBitmapRange.fixedSize)
        let bytes = Type1DirtyPages(.getBitmap(range)).encoded()
        let c = asCStruct(vfio_iommu_type1_dirty_bitmap.self, bytes)
        #expect(c.argsz == 48 && c.flags == UInt32(VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP))
        let g = asCStruct(vfio_iommu_type1_dirty_bitmap_get.self, Array(bytes[8...]))
        #expect(g.iova == range.iova && g.size == range.size)
        #expect(g.bitmap.pgsize == 0x1000 && g.bitmap.size == 128 && UInt64(UInt(bitPattern: g.bitmap.data)) == 0x7ffe_1234_0000)
        #expect(UInt32(VFIO_IOMMU_DIRTY_PAGES_FLAG_START) == Type1DirtyPagesFlags.start.rawValue)
        #expect(UInt32(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) == Type1DirtyPagesFlags.stop.rawValue)
    }

    @Test func rejectsAnythingButExactlyOneFlag() {
        for flags: UInt32 in [0, 0b011, 0b101, 0b110, 0b111, 0b1000] {
            expectRejected(Type1DirtyPages.self, [8, 0, 0, 0] + withUnsafeBytes(of: flags.littleEndian, Array.init), "exactly one")
        }
        expectRejected(Type1DirtyPages.self, [4, 0, 0, 0, 1, 0, 0, 0], "argsz 4")
    }

    @Test func rejectsGetBitmapWithoutTheRange() {
        expectRejected(Type1DirtyPages.self, [8, 0, 0, 0, 4, 0, 0, 0], "no room")
        expectRejected(Type1DirtyPages.self, [48, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3], "needs 8 byte(s)")
    }
}
