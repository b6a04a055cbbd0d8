import NVMe
import Testing

/// The PRP rules of NVMe 1.4 section 4.3, against a host memory of list pages.
@Suite struct PRPTests {
    /// List pages by address; reads count the entries asked for.
    final class Lists {
        var pages: [UInt64: [UInt64]] = [:]
        var entriesRead = 0
        func read(_ address: UInt64, _ count: Int) -> [UInt64]? {
            let page = address & ~0xFFF
            guard let entries = pages[page] else { return nil }
            let first = Int(address & 0xFFF) / 8
            guard first + count <= entries.count else { return nil }
            entriesRead += count
            return Array(entries[first..<(first + count)])
        }
    }

    private func segments(_ prp1: UInt64, _ prp2: UInt64, _ length: Int, _ lists: Lists = Lists()) -> Result<[DataSegment], PRP.Failure> {
        PRP.segments(prp1: prp1, prp2: prp2, length: length, pageSize: 4096, readList: lists.read)
    }

    @Test func singlePageAndTwoPages() throws {
        #expect(try segments(0x10000, 0, 4096).get() == [DataSegment(address: 0x10000, length: 4096)])
        #expect(try segments(0x10200, 0xDEAD_0000, 512).get() == [DataSegment(address: 0x10200, length: 512)])  // PRP2 unused
        #expect(try segments(0x10E00, 0x20000, 1024).get() == [DataSegment(address: 0x10E00, length: 512), DataSegment(address: 0x20000, length: 512)])
        // Adjacent pages merge into one segment.
        #expect(try segments(0x10800, 0x11000, 4096).get() == [DataSegment(address: 0x10800, length: 4096)])
        #expect(segments(0x10002, 0, 512) == .failure(.invalidOffset))
        #expect(segments(0x10800, 0x20100, 4096) == .failure(.invalidOffset))
    }

    @Test func listWithOffsetFirstPage() throws {
        let lists = Lists()
        lists.pages[0x5000] = (0..<512).map { 0x100000 + UInt64($0) * 0x2000 }  // not adjacent
        let result = try segments(0x30100, 0x5000, 3 * 4096, lists).get()
        #expect(result == [DataSegment(address: 0x30100, length: 0xF00), DataSegment(address: 0x100000, length: 4096),
                           DataSegment(address: 0x102000, length: 4096), DataSegment(address: 0x104000, length: 0x100)])
        #expect(lists.entriesRead == 3)
    }

    @Test func chainedList() throws {
        let lists = Lists()
        // Three entries left in the first list page: two data pages, then the next list.
        var first = [UInt64](repeating: 0, count: 512)
        first[509] = 0xA000
        first[510] = 0xB000
        first[511] = 0x9000
        lists.pages[0x8000] = first
        lists.pages[0x9000] = [0xE000, 0xF000] + [UInt64](repeating: 0, count: 510)
        let result = try segments(0x7000, 0x8000 + 509 * 8, 5 * 4096, lists).get()
        #expect(result.map(\.address) == [0x7000, 0xA000, 0xE000])
        #expect(result.map(\.length) == [4096, 8192, 8192])
        // A chained pointer with an offset is refused.
        first[511] = 0x9008
        lists.pages[0x8000] = first
        #expect(segments(0x7000, 0x8000 + 509 * 8, 5 * 4096, lists) == .failure(.invalidOffset))
    }

    @Test func refusedLists() {
        let lists = Lists()
        lists.pages[0x5000] = [0x6000, 0x7010] + [UInt64](repeating: 0, count: 510)
        #expect(segments(0x1000, 0x5000, 3 * 4096, lists) == .failure(.invalidOffset))  // entry with an offset
        #expect(segments(0x1000, 0x5004, 3 * 4096, lists) == .failure(.invalidOffset))  // list pointer not qword aligned
        #expect(segments(0x1000, 0x6000, 3 * 4096, lists) == .failure(.listUnreadable))  // no such memory
        #expect(PRP.Failure.invalidOffset.status == .invalidPRPOffset)
        #expect(PRP.Failure.listUnreadable.status == .dataTransferError)
    }

    /// A list reads no more entries than the transfer has pages, whatever the host wrote.
    @Test func listReadsAreBoundedByTheTransfer() {
        let lists = Lists()
        lists.pages[0x5000] = (0..<512).map { 0x100000 + UInt64($0) * 0x1000 }
        _ = segments(0x1000, 0x5000, 32 * 4096, lists)
        #expect(lists.entriesRead == 31)
    }
}
