import Testing
@testable import VFIO
import TestSupport

/// `vfio_combine_iova_ranges()` (drivers/vfio/vfio_main.c) transcribed over an array
/// standing for the interval tree (iterated in address order).
private func kernelCombine(_ tree: [(start: UInt64, last: UInt64)], curNodes: UInt32, reqNodes: UInt32) -> [(start: UInt64, last: UInt64)] {
    var nodes = tree.sorted { $0.start < $1.start }
    let ULONG_MAX = UInt64.max
    // if (req_nodes == 1) { ... }
    if reqNodes == 1 {
        // comb_start = interval_tree_iter_first(root, 0, ULONG_MAX); if (WARN_ON_ONCE(!comb_start)) return;
        guard !nodes.isEmpty else { return nodes }
        var last: UInt64 = 0
        var curr: Int? = 0
        var kept: [(start: UInt64, last: UInt64)] = []
        while let c = curr {
            last = nodes[c].last
            let prev = c
            curr = c + 1 < nodes.count ? c + 1 : nil
            if prev == 0 { kept.append(nodes[prev]) } // others: interval_tree_remove(prev, root)
        }
        kept[0].last = last
        return kept
    }
    var cur = curNodes
    // while (cur_nodes > req_nodes)
    while cur > reqNodes {
        var prev: Int? = nil
        var minGap = ULONG_MAX
        var combStart = -1, combEnd = -1
        var curr: Int? = nodes.isEmpty ? nil : 0
        while let c = curr {
            if let p = prev {
                let currGap = nodes[c].start &- nodes[p].last
                if currGap < minGap {
                    minGap = currGap
                    combStart = p
                    combEnd = c
                }
            }
            prev = c
            curr = c + 1 < nodes.count ? c + 1 : nil
        }
        // if (WARN_ON_ONCE(min_gap == ULONG_MAX)) break;
        if minGap == ULONG_MAX { break }
        nodes[combStart].last = nodes[combEnd].last
        nodes.remove(at: combEnd)
        cur -= 1
    }
    return nodes
}

private func r(_ start: UInt64, _ last: UInt64) -> IOVARange { try! IOVARange(start: start, last: last) }

/// The text of the `invalidArgument` error `body` throws, or nil when it does not throw.
func helperInvalidArgument(_ body: () throws -> Void) -> String? {
    do { try body(); return nil } catch let error as VFIOError {
        if case .invalidArgument(let why) = error.reason { return why }
        return "wrong reason \(error)"
    } catch {
        return "not a VFIOError: \(error)"
    }
}

@Suite struct HelperIOVARangeSetTests {
    @Test func rangeConstruction() throws {
        let range = try IOVARange(iova: 0x1000, length: 0x2000)
        #expect(range.start == 0x1000 && range.last == 0x2fff && range.length == 0x2000)
        #expect(try IOVARange(start: 0, last: .max).length == nil)
    }

    @Test func rangeRejections() {
        #expect(helperInvalidArgument { _ = try IOVARange(start: 5, last: 4) }?.contains("below start") == true)
        #expect(helperInvalidArgument { _ = try IOVARange(iova: 0x1000, length: 0) }?.contains("length 0 (empty)") == true)
        #expect(helperInvalidArgument { _ = try IOVARange(iova: .max, length: 1) }?.contains("wraps") == true)
        #expect(helperInvalidArgument { _ = try IOVARange(iova: .max - 1, length: 1) } == nil)
    }

    @Test func initKeepsRangesAsGivenSortedAndRefusesOverlap() throws {
        let set = try IOVARangeSet(ranges: [r(0x2000, 0x2fff), r(0x1000, 0x1fff), r(0x8000, 0x8fff)])
        // Touching ranges stay separate nodes, as in the kernel's interval tree.
        #expect(set.ranges == [r(0x1000, 0x1fff), r(0x2000, 0x2fff), r(0x8000, 0x8fff)])
        let why = helperInvalidArgument { _ = try IOVARangeSet(ranges: [r(0x1000, 0x1fff), r(0x1fff, 0x2fff)]) }
        #expect(why == "range [0x1fff, 0x2fff] overlaps range [0x1000, 0x1fff]")
    }

    @Test func dmaLoggingRangesAreCheckedLikeTheKernel() throws {
        let ok = try IOVARangeSet(dmaLoggingRanges: [(0x10000, 0x1000), (0x0, 0x1000), (0x1000, 0x1000)], pageSize: 0x1000)
        #expect(ok.ranges == [r(0, 0xfff), r(0x1000, 0x1fff), r(0x10000, 0x10fff)])
        let page: UInt64 = 0x1000
        let cases: [([(iova: UInt64, length: UInt64)], Int, String)] = [
            ([], 256, "no ranges given"),
            (Array(repeating: (0, 0x1000), count: 257), 256, "257 ranges exceed the limit of 256"),
            ([(0x800, 0x1000)], 256, "range 0 (iova 0x800, length 0x1000) is not aligned to page size 0x1000"),
            ([(0, 0x1000), (0x2000, 0x1800)], 256, "range 1 (iova 0x2000, length 0x1800) is not aligned"),
            ([(0xffff_ffff_ffff_f000, 0x1000)], 256, "range 0 (iova 0xfffffffffffff000, length 0x1000) wraps"),
            ([(0x3000, 0)], 256, "range 0 at iova 0x3000 has length 0 (empty)"),
            ([(0, 0x3000), (0x5000, 0x1000), (0x2000, 0x1000)], 256, "range 2 [0x2000, 0x2fff] overlaps the earlier range [0x0, 0x2fff]"),
            // Alignment is checked before overflow, as in the kernel's loop.
            ([(0xffff_ffff_ffff_f800, 0x1000)], 256, "not aligned"),
        ]
        for (ranges, limit, phrase) in cases {
            let why = helperInvalidArgument { _ = try IOVARangeSet(dmaLoggingRanges: ranges, pageSize: page, maximumRanges: limit) }
            #expect(why?.contains(phrase) == true, "\(String(describing: why)) lacks \(phrase)")
        }
    }

    @Test func insertMergesOverlapAndAdjacency() {
        var set = IOVARangeSet()
        set.insert(r(10, 19))
        set.insert(r(30, 39))
        #expect(set.ranges == [r(10, 19), r(30, 39)])
        set.insert(r(20, 29)) // touches both
        #expect(set.ranges == [r(10, 39)])
        set.insert(r(50, 60))
        set.insert(r(0, 5))
        set.insert(r(35, 52)) // overlaps two
        #expect(set.ranges == [r(0, 5), r(10, 60)])
        set.insert(r(.max - 3, .max))
        set.insert(r(.max - 10, .max - 4))
        #expect(set.ranges.last == r(.max - 10, .max))
    }

    @Test func removeTrimsAndSplits() {
        var set = IOVARangeSet()
        set.insert(r(0, 99))
        set.remove(r(40, 59))
        #expect(set.ranges == [r(0, 39), r(60, 99)])
        set.remove(r(30, 65))
        #expect(set.ranges == [r(0, 29), r(66, 99)])
        set.remove(r(200, 300))
        #expect(set.ranges == [r(0, 29), r(66, 99)])
        set.remove(r(0, .max))
        #expect(set.isEmpty)
    }

    @Test func containsAddressesAndRanges() throws {
        let set = try IOVARangeSet(ranges: [r(0x1000, 0x1fff), r(0x4000, 0x4fff)])
        #expect(set.contains(0x1000) && set.contains(0x1fff) && set.contains(0x4800))
        #expect(!set.contains(0xfff) && !set.contains(0x2000) && !set.contains(0x5000) && !set.contains(.max))
        #expect(set.contains(r(0x4100, 0x4200)) && !set.contains(r(0x1f00, 0x2100)))
        #expect(Array(set) == set.ranges)
    }

    @Test func randomInsertRemoveMatchesABruteForceSet() {
        var rng = SplitMix64(seed: 77)
        for _ in 0..<2000 {
            var set = IOVARangeSet()
            var model = [Bool](repeating: false, count: 128)
            for _ in 0..<12 {
                let a = UInt64(rng.next() % 128), b = UInt64(rng.next() % 128)
                let range = r(Swift.min(a, b), Swift.max(a, b))
                let adding = rng.next() % 3 != 0
                if adding { set.insert(range) } else { set.remove(range) }
                for x in range.start...range.last { model[Int(x)] = adding }
            }
            for x in 0..<128 where set.contains(UInt64(x)) != model[x] {
                Issue.record("address \(x): set \(set) disagrees with the model")
                break
            }
            for k in set.ranges.indices.dropFirst() where set.ranges[k].start <= set.ranges[k - 1].last + 1 {
                Issue.record("ranges overlap or touch: \(set)")
            }
        }
    }

    @Test func combineMergesTheSmallestGapFirst() throws {
        let set = try IOVARangeSet(ranges: [r(0, 0xfff), r(0x2000, 0x2fff), r(0x3000, 0x3fff), r(0x10000, 0x10fff)])
        // Gaps (next.start - previous.last): 0x1001, 0x1, 0xc001.
        #expect(set.combined(to: 3).ranges == [r(0, 0xfff), r(0x2000, 0x3fff), r(0x10000, 0x10fff)])
        #expect(set.combined(to: 2).ranges == [r(0, 0x3fff), r(0x10000, 0x10fff)])
        #expect(set.combined(to: 1).ranges == [r(0, 0x10fff)])
        #expect(set.combined(to: 0).ranges == [r(0, 0x10fff)])
        #expect(set.combined(to: 4) == set)
        #expect(set.combined(to: 99) == set)
        #expect(IOVARangeSet().combined(to: 1).isEmpty)
    }

    @Test func combineTiesTakeTheFirstPair() throws {
        let set = try IOVARangeSet(ranges: [r(0, 9), r(20, 29), r(40, 49), r(60, 69)])
        #expect(set.combined(to: 3).ranges == [r(0, 29), r(40, 49), r(60, 69)])
        #expect(set.combined(to: 2).ranges == [r(0, 49), r(60, 69)])
    }

    @Test func combineMatchesTheKernelOnRandomSets() throws {
        var rng = SplitMix64(seed: 0xC0B1)
        let gaps: [UInt64] = [1, 2, 3, 0x1000, 0x1001]
        for _ in 0..<5000 {
            var ranges: [IOVARange] = []
            var at = UInt64(rng.next() % 4)
            for _ in 0..<Int(1 + rng.next() % 16) {
                let length = 1 + rng.next() % 8
                ranges.append(r(at, at + length - 1))
                at += length + gaps[Int(rng.next() % UInt64(gaps.count))] - 1
            }
            let set = try IOVARangeSet(ranges: ranges.shuffled(using: &rng))
            let requested = Int(rng.next() % 18)
            let ours = set.combined(to: requested).ranges.map { (start: $0.start, last: $0.last) }
            let kernel = kernelCombine(ranges.map { (start: $0.start, last: $0.last) }, curNodes: UInt32(ranges.count), reqNodes: UInt32(requested))
            #expect(ours.map(\.start) == kernel.map(\.start) && ours.map(\.last) == kernel.map(\.last), "\(set) to \(requested)")
        }
    }
}
