import Testing
@testable import VFIO
import TestSupport

/// Reads the report's little-endian 64-bit words back into bits.
private func reportBits(_ bytes: [UInt8], count: Int) -> [Bool] {
    (0..<count).map { i in
        let word = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[(i / 64) * 8 + $1]) << (8 * UInt64($1)) }
        return word & (1 << UInt64(i % 64)) != 0
    }
}

@Suite struct HelperDirtyPageBitmapTests {
    @Test func smallerReportPagesReplicateTheTrackedBit() throws {
        // Four 64 KiB tracked pages; page 1 is dirtied by a one-byte write.
        var log = try DirtyPageBitmap(iova: 0x10_0000, length: 0x4_0000, pageSize: 0x1_0000)
        try log.mark(iova: 0x11_0005, length: 1)
        let bytes = try log.report(iova: 0x10_0000, length: 0x4_0000, pageSize: 0x1000, clear: false)
        #expect(bytes.count == 8) // 64 report pages: one word
        #expect(bytes == [0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00]) // bits 16...31
    }

    @Test func largerReportPagesMergeTrackedPages() throws {
        var log = try DirtyPageBitmap(iova: 0, length: 0x10_0000, pageSize: 0x1000)
        try log.mark(iova: 0x3000, length: 1)
        try log.mark(iova: 0x4_1ff0, length: 0x10)
        let bytes = try log.report(iova: 0, length: 0x10_0000, pageSize: 0x1_0000, clear: false)
        #expect(bytes == [0x11, 0, 0, 0, 0, 0, 0, 0]) // 64 KiB pages 0 and 4
    }

    @Test func bitSixtyFourIsTheFirstBitOfTheSecondWord() throws {
        var log = try DirtyPageBitmap(iova: 0x4000_0000, length: 0x41000, pageSize: 0x1000) // 65 pages
        try log.mark(iova: 0x4000_0000 + 64 * 0x1000, length: 0x1000)
        let bytes = try log.report(iova: 0x4000_0000, length: 0x41000, pageSize: 0x1000, clear: false)
        #expect(bytes.count == 16)
        #expect(bytes[8] == 1 && bytes.enumerated().allSatisfy { $0.offset == 8 || $0.element == 0 })
    }

    @Test func aWriteAcrossAPageBoundaryDirtiesBoth() throws {
        var log = try DirtyPageBitmap(iova: 0, length: 0x4000, pageSize: 0x1000)
        try log.mark(iova: 0xfff, length: 2)
        #expect(try log.isDirty(0) && log.isDirty(0x1000) && !log.isDirty(0x2000))
        #expect(log.dirtyPageCount == 2)
        try log.mark(iova: 0x3fff, length: 0)
        #expect(log.dirtyPageCount == 2)
    }

    @Test func reportIsReadAndClearWhenAsked() throws {
        var log = try DirtyPageBitmap(iova: 0, length: 0x8000, pageSize: 0x1000)
        try log.mark(iova: 0x2000, length: 0x3000)
        #expect(try log.report(iova: 0, length: 0x8000, pageSize: 0x1000, clear: false) == [0x1c, 0, 0, 0, 0, 0, 0, 0])
        #expect(try log.report(iova: 0, length: 0x4000, pageSize: 0x1000, clear: true) == [0x0c, 0, 0, 0, 0, 0, 0, 0])
        // Only the reported range was cleared.
        #expect(try log.report(iova: 0, length: 0x8000, pageSize: 0x1000, clear: true) == [0x10, 0, 0, 0, 0, 0, 0, 0])
        #expect(try log.report(iova: 0, length: 0x8000, pageSize: 0x1000, clear: false) == [0, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func aPartlyReportedTrackedPageStaysDirty() throws {
        var log = try DirtyPageBitmap(iova: 0, length: 0x2_0000, pageSize: 0x1_0000)
        try log.mark(iova: 0xc000, length: 4)
        // Report only the first half of tracked page 0: its bits are set, but the page
        // keeps its dirty bit for the half not yet reported.
        let first = try log.report(iova: 0, length: 0x8000, pageSize: 0x1000, clear: true)
        #expect(first == [0xff, 0, 0, 0, 0, 0, 0, 0])
        #expect(try log.isDirty(0xc000))
        _ = try log.report(iova: 0, length: 0x1_0000, pageSize: 0x1000, clear: true)
        #expect(try !log.isDirty(0xc000))
    }

    @Test func constructionRejections() {
        let cases: [(UInt64, UInt64, UInt64, String)] = [
            (0, 0x1000, 3000, "tracking page size 3000 is not a power of two"),
            (0, 0x1000, 0, "tracking page size 0 is not a power of two"),
            (0x800, 0x1000, 0x1000, "not aligned to the tracking page size"),
            (0, 0x1800, 0x1000, "not aligned to the tracking page size"),
            (0, 0, 0x1000, "length 0 (empty)"),
            (0xffff_ffff_ffff_f000, 0x1000, 0x1000, "wraps"),
            (0, 1 << 45, 0x1000, "pages exceed the limit"),
        ]
        for (iova, length, page, phrase) in cases {
            let why = helperInvalidArgument { _ = try DirtyPageBitmap(iova: iova, length: length, pageSize: page) }
            #expect(why?.contains(phrase) == true, "\(String(describing: why)) lacks \(phrase)")
        }
    }

    @Test func markAndQueryRejections() throws {
        var log = try DirtyPageBitmap(iova: 0x1_0000, length: 0x1_0000, pageSize: 0x1000)
        for (iova, length, phrase) in [
            (UInt64(0xffff), UInt64(1), "outside the tracked range"),
            (0x1_ffff, 2, "outside the tracked range"),
            (0x2_0000, 0, "outside the tracked range"),
            (0x3_0000, 0, "outside the tracked range"),
            (UInt64.max, 2, "wraps"),
        ] {
            let why = helperInvalidArgument { try log.mark(iova: iova, length: length) }
            #expect(why?.contains(phrase) == true, "\(String(describing: why)) lacks \(phrase)")
        }
        #expect(helperInvalidArgument { try log.mark(iova: 0x1_ffff, length: 1) } == nil)
        #expect(helperInvalidArgument { try log.mark(iova: 0x1_0000, length: 0x1_0000) } == nil)
        #expect(helperInvalidArgument { _ = try log.isDirty(0x2_0000) }?.contains("outside the tracked range") == true)
    }

    @Test func reportRejections() throws {
        var log = try DirtyPageBitmap(iova: 0x10_0000, length: 0x10_0000, pageSize: 0x1000)
        let cases: [(UInt64, UInt64, UInt64, String)] = [
            (0x10_0000, 0x1000, 0x3000, "report page size 12288 is not a power of two"),
            (0x10_0000, 0x1000, 0, "not a power of two"),
            (0x10_0000, 0x1000, 0x800, "below the 4096-byte minimum"),
            (0xffff_ffff_ffff_f000, 0x2000, 0x1000, "wraps"),
            (0x10_0000, 0, 0x1000, "has length 0"),
            (0x10_1000, 0x2000, 0x2000, "not aligned to the report page size"),
            (0x10_0000, 0x3000, 0x2000, "not aligned to the report page size"),
            (0x0f_f000, 0x2000, 0x1000, "outside the tracked range"),
            (0x1f_f000, 0x2000, 0x1000, "outside the tracked range"),
            (0, 0x40_0000, 0x40_0000, "outside the tracked range"),
        ]
        for (iova, length, page, phrase) in cases {
            let why = helperInvalidArgument { _ = try log.report(iova: iova, length: length, pageSize: page, clear: true) }
            #expect(why?.contains(phrase) == true, "\(String(describing: why)) lacks \(phrase)")
        }
    }

    /// Random marks and reports against a one-bit-per-tracked-page model.
    @Test func randomReportsMatchAModel() throws {
        var rng = SplitMix64(seed: 0xD127)
        let trackSizes: [UInt64] = [0x400, 0x1000, 0x4000, 0x1_0000]
        let reportSizes: [UInt64] = [0x1000, 0x2000, 0x4000, 0x1_0000, 0x4_0000]
        for _ in 0..<1500 {
            let t = trackSizes[Int(rng.next() % 4)]
            let start = (rng.next() % 64) * 0x4_0000
            let pages = Int(0x4_0000 / t) * Int(1 + rng.next() % 4)
            let length = UInt64(pages) * t
            var log = try DirtyPageBitmap(iova: start, length: length, pageSize: t)
            var model = [Bool](repeating: false, count: pages)
            for _ in 0..<Int(rng.next() % 12) {
                let at = start + rng.next() % length
                let size = Swift.min(1 + rng.next() % (3 * t), start + length - at)
                try log.mark(iova: at, length: size)
                for p in Int((at - start) / t)...Int((at + size - 1 - start) / t) { model[p] = true }
            }
            for _ in 0..<3 {
                let rsize = reportSizes[Int(rng.next() % 5)]
                let slots = length / rsize
                guard slots > 0 else { continue }
                let first = rng.next() % slots
                let count = 1 + rng.next() % (slots - first)
                let iova = start + first * rsize, rlen = count * rsize
                let clear = rng.next() % 2 == 0
                let bytes = try log.report(iova: iova, length: rlen, pageSize: rsize, clear: clear)
                #expect(bytes.count == (Int(count) + 63) / 64 * 8)
                let bits = reportBits(bytes, count: Int(count))
                for i in 0..<Int(count) {
                    let lo = iova + UInt64(i) * rsize - start, hi = lo + rsize
                    let want = (Int(lo / t)...Int((hi - 1) / t)).contains { model[$0] }
                    if bits[i] != want {
                        Issue.record("track \(t) report \(rsize) bit \(i): \(bits[i]) != \(want)")
                        return
                    }
                }
                // Unused bits of the last word stay clear.
                let tail = reportBits(bytes, count: bytes.count * 8).dropFirst(Int(count))
                #expect(!tail.contains(true))
                if clear {
                    for p in 0..<pages {
                        let ps = UInt64(p) * t + start
                        if ps >= iova && ps + t <= iova + rlen { model[p] = false }
                    }
                }
                for p in 0..<pages where try log.isDirty(start + UInt64(p) * t) != model[p] {
                    Issue.record("page \(p) after report: \(!model[p]) != \(model[p])")
                    return
                }
            }
        }
    }
}
