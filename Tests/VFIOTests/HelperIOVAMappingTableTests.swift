import Testing
@testable import VFIO
import TestSupport

private func range(_ start: UInt64, _ length: UInt64) -> IOVARange { try! IOVARange(iova: start, length: length) }

/// The pieces `forEachPiece` hands out, as (value, address, length, offset) tuples; nil
/// when it refused the request.
private func pieces(_ table: IOVAMappingTable<Int>, _ address: UInt64, _ length: UInt64) -> [[UInt64]]? {
    var found: [[UInt64]] = []
    let covered = table.forEachPiece(of: address, length: length) { entry, at, count, offset in
        found.append([UInt64(entry.value), at, count, offset])
    }
    if !covered { #expect(found.isEmpty, "pieces handed out for a request that is not covered") }
    return covered ? found : nil
}

@Suite struct HelperIOVAMappingTableTests {
    @Test func insertLookupAndRemove() throws {
        var table = IOVAMappingTable<Int>()
        #expect(table.isEmpty && table.entry(containing: 0) == nil && table.remove(startingAt: 0) == nil)
        #expect(table.insert(range(0x2000, 0x1000), 2) == nil)
        #expect(table.insert(range(0x1000, 0x1000), 1) == nil)
        #expect(table.insert(range(0x8000, 0x4000), 8) == nil)
        #expect(table.count == 3)
        #expect(table.entry(containing: 0x1000)?.value == 1)
        #expect(table.entry(containing: 0x2FFF)?.value == 2)
        #expect(table.entry(containing: 0xBFFF)?.range == range(0x8000, 0x4000))
        for outside: UInt64 in [0, 0xFFF, 0x3000, 0x7FFF, 0xC000, .max] { #expect(table.entry(containing: outside) == nil) }
        #expect(table.map(\.value) == [1, 2, 8])
        // Only a range's first address removes it.
        #expect(table.remove(startingAt: 0x2001) == nil)
        #expect(table.remove(startingAt: 0x2000)?.value == 2)
        #expect(table.entry(containing: 0x2000) == nil && table.count == 2)
        #expect(table.invariantViolation() == nil)
        // A freed slot is used again.
        #expect(table.insert(range(0x3000, 0x1000), 3) == nil)
        #expect(table.map(\.value) == [1, 3, 8])
        #expect(table.removeAll().map(\.value) == [1, 3, 8])
        #expect(table.isEmpty && table.entry(containing: 0x1000) == nil)
    }

    @Test func overlapsAreRefusedAndAdjacentRangesAccepted() throws {
        var table = IOVAMappingTable<Int>()
        table.insert(range(0x10000, 0x2000), 1)
        for (start, length) in [(0x10000, 0x2000), (0x11000, 0x1000), (0xF000, 0x2000), (0x11FFF, 1), (0x8000, 0x20000), (0x10FFF, 2)] as [(UInt64, UInt64)] {
            #expect(table.insert(range(start, length), 9)?.value == 1, "0x\(String(start, radix: 16))+0x\(String(length, radix: 16))")
            #expect(table.firstOverlap(with: range(start, length))?.range == range(0x10000, 0x2000))
        }
        #expect(table.count == 1)
        #expect(table.insert(range(0xF000, 0x1000), 0) == nil)
        #expect(table.insert(range(0x12000, 0x1000), 2) == nil)
        #expect(table.firstOverlap(with: range(0x13000, 0x1000)) == nil)
        #expect(table.entries(overlapping: range(0xFFFF, 0x2002)).map(\.value) == [0, 1, 2])
        #expect(table.entries(overlapping: range(0, 0xF000)).isEmpty)
        // The whole 64-bit space as one range, and its last byte.
        var whole = IOVAMappingTable<Int>()
        #expect(whole.insert(try IOVARange(start: 0, last: .max), 7) == nil)
        #expect(whole.entry(containing: .max)?.value == 7)
        #expect(whole.insert(try IOVARange(start: .max, last: .max), 8)?.value == 7)
        #expect(pieces(whole, 0, .max) == [[7, 0, .max, 0]])
    }

    @Test func piecesSpanAdjacentRangesAndStopAtGaps() {
        var table = IOVAMappingTable<Int>()
        // Pages 1...4 and 6, as a vIOMMU maps them one by one.
        for page in [4, 2, 6, 1, 3] as [UInt64] { table.insert(range(page << 12, 0x1000), Int(page)) }
        #expect(pieces(table, 0x1800, 0x2000) == [[1, 0x1800, 0x800, 0], [2, 0x2000, 0x1000, 0x800], [3, 0x3000, 0x800, 0x1800]])
        #expect(pieces(table, 0x1000, 0x4000)?.map { $0[0] } == [1, 2, 3, 4])
        #expect(pieces(table, 0x4FFF, 1) == [[4, 0x4FFF, 1, 0]])
        #expect(pieces(table, 0x4FFF, 2) == nil)          // page 5 is a hole
        #expect(pieces(table, 0x800, 0x1000) == nil)      // page 0 is not mapped
        #expect(pieces(table, 0x6000, 0x1001) == nil)     // past the last range
        #expect(pieces(table, 0x6000, 0) == [])
        #expect(pieces(table, .max, 2) == nil)            // wraps
        var top = IOVAMappingTable<Int>()
        top.insert(try! IOVARange(start: .max - 0xFFF, last: .max), 1)
        #expect(pieces(top, UInt64.max - 1, 2) == [[1, UInt64.max - 1, 2, 0]])
    }

    /// Random inserts and removals against a plain array, checking the tree's balance
    /// and every lookup after each change.
    @Test func randomChangesMatchASortedArray() {
        var generator = SplitMix64(seed: 0x10AA_11)
        var table = IOVAMappingTable<Int>()
        var model: [(start: UInt64, last: UInt64, value: Int)] = []
        for step in 0..<4000 {
            let start = UInt64.random(in: 0..<512, using: &generator) << 12
            let length = UInt64.random(in: 1...4, using: &generator) << 12
            if Bool.random(using: &generator) || model.isEmpty {
                let new = range(start, length)
                let overlapping = model.first { $0.start <= new.last && new.start <= $0.last }
                let refused = table.insert(new, step)
                #expect((refused == nil) == (overlapping == nil), "step \(step)")
                if overlapping == nil { model.append((new.start, new.last, step)); model.sort { $0.start < $1.start } }
            } else {
                let victim = model.remove(at: Int.random(in: 0..<model.count, using: &generator))
                #expect(table.remove(startingAt: victim.start)?.value == victim.value)
            }
            if let problem = table.invariantViolation() { Issue.record("step \(step): \(problem)"); return }
            #expect(table.map { [$0.range.start, $0.range.last, UInt64($0.value)] } == model.map { [$0.start, $0.last, UInt64($0.value)] })
            let probe = UInt64.random(in: 0..<(520 << 12), using: &generator)
            #expect(table.entry(containing: probe)?.value == model.first { $0.start <= probe && probe <= $0.last }?.value)
        }
    }

    /// 65535 one-page ranges (QEMU's max_dma_maps), inserted highest first: the tree stays
    /// logarithmic, and emptied in another order it stays valid.
    @Test func aFullTableStaysShallow() {
        var table = IOVAMappingTable<Int>()
        let count = 65535
        for page in (0..<count).reversed() { table.insert(range(UInt64(page) << 12, 0x1000), page) }
        #expect(table.count == count && table.invariantViolation() == nil)
        #expect(table.treeHeight <= 23)   // an AVL tree of 65535 nodes: at most 1.44 log2(n + 2)
        #expect(table.entry(containing: UInt64(count - 1) << 12 | 0xFFF)?.value == count - 1)
        #expect(pieces(table, 0, UInt64(count) << 12)?.count == count)
        for page in stride(from: 0, to: count, by: 2) { #expect(table.remove(startingAt: UInt64(page) << 12)?.value == page) }
        #expect(table.count == count / 2 && table.invariantViolation() == nil)
        #expect(pieces(table, 0x1000, 0x2000) == nil)
        #expect(table.removeAll().count == count / 2)
    }
}
