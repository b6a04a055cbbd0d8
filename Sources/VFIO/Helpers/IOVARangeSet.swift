/// A sorted set of non-overlapping IOVA ranges: the ranges a DMA-logging (dirty
/// tracking) session covers, and the kernel's `vfio_combine_iova_ranges()` for fitting
/// them into a tracker that can hold fewer.
///
/// The kernel keeps these ranges in an interval tree whose nodes are exactly the ranges
/// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` was given: overlaps are refused, while ranges
/// that merely touch (`[0x0, 0xfff]` and `[0x1000, 0x1fff]`) stay separate nodes. The
/// initialisers model that: they keep the ranges as given, sorted by address.
///
/// `insert(_:)` and `remove(_:)` are set operations on top of that, for callers building a
/// set of addresses: `insert` unions, merging the new range with every range it overlaps
/// *or touches*, so after an insert no two ranges in the affected area are adjacent;
/// `remove` subtracts, splitting a range when a hole is cut out of its middle.
public struct IOVARangeSet: Sendable, Hashable, Sequence, CustomStringConvertible {
    /// The ranges, sorted by `start`; no two share an address.
    public private(set) var ranges: [IOVARange]

    /// An empty set.
    public init() { ranges = [] }

    /// The ranges as given (sorted by address, adjacent ones kept apart), refusing any two
    /// that overlap, as `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` does.
    /// - Throws: `VFIOError.invalidArgument("IOVARangeSet", …)` naming two overlapping ranges.
    public init(ranges: [IOVARange]) throws(VFIOError) {
        let sorted = ranges.sorted { $0.start < $1.start }
        for k in sorted.indices.dropFirst() where sorted[k].start <= sorted[k - 1].last {
            throw .invalidArgument("IOVARangeSet", "range \(sorted[k]) overlaps range \(sorted[k - 1])")
        }
        self.ranges = sorted
    }

    /// The ranges of a `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` request, checked the way
    /// the kernel checks them (`vfio_ioctl_device_feature_logging_start()`), range by range
    /// in the order given.
    ///
    /// - Parameters:
    ///   - dmaLoggingRanges: the request's `(iova, length)` pairs.
    ///   - pageSize: the request's `page_size`; each `iova` and `length` must be a multiple.
    ///   - maximumRanges: the kernel's limit, `PAGE_SIZE / 16` (256 with 4 KiB pages).
    /// - Throws: `VFIOError.invalidArgument("IOVARangeSet", …)` for: no ranges (`EINVAL`);
    ///   more than `maximumRanges` (`E2BIG`); then, for the first bad range, an `iova` or
    ///   `length` not aligned to `pageSize` (`EINVAL`), `iova + length` past 64 bits
    ///   (`EOVERFLOW`), a zero length, an overlap with an earlier range (`EINVAL`). The
    ///   kernel does not check for a zero length (it would build an inverted node); it is
    ///   refused here.
    public init(dmaLoggingRanges: [(iova: UInt64, length: UInt64)], pageSize: UInt64, maximumRanges: Int = 256) throws(VFIOError) {
        let operation = "IOVARangeSet"
        if dmaLoggingRanges.isEmpty {
            throw .invalidArgument(operation, "no ranges given (num_ranges is 0)")
        }
        if dmaLoggingRanges.count > maximumRanges {
            throw .invalidArgument(operation, "\(dmaLoggingRanges.count) ranges exceed the limit of \(maximumRanges)")
        }
        let mask = pageSize &- 1
        var accepted: [IOVARange] = []
        accepted.reserveCapacity(dmaLoggingRanges.count)
        for (i, entry) in dmaLoggingRanges.enumerated() {
            if entry.iova & mask != 0 || entry.length & mask != 0 {
                throw .invalidArgument(operation, "range \(i) (iova 0x\(String(entry.iova, radix: 16)), length 0x\(String(entry.length, radix: 16))) is not aligned to page size 0x\(String(pageSize, radix: 16))")
            }
            if entry.iova.addingReportingOverflow(entry.length).overflow {
                throw .invalidArgument(operation, "range \(i) (iova 0x\(String(entry.iova, radix: 16)), length 0x\(String(entry.length, radix: 16))) wraps past the end of the 64-bit address space")
            }
            if entry.length == 0 {
                throw .invalidArgument(operation, "range \(i) at iova 0x\(String(entry.iova, radix: 16)) has length 0 (empty)")
            }
            let range = IOVARange(uncheckedStart: entry.iova, last: entry.iova + entry.length - 1)
            if let earlier = accepted.first(where: { $0.overlaps(range) }) {
                throw .invalidArgument(operation, "range \(i) \(range) overlaps the earlier range \(earlier)")
            }
            accepted.append(range)
        }
        ranges = accepted.sorted { $0.start < $1.start }
    }

    public var count: Int { ranges.count }
    public var isEmpty: Bool { ranges.isEmpty }
    public func makeIterator() -> IndexingIterator<[IOVARange]> { ranges.makeIterator() }

    /// The index of the first range whose `last` is at or above `address`.
    private func firstIndex(lastAtLeast address: UInt64) -> Int {
        var low = 0, high = ranges.count
        while low < high {
            let mid = (low + high) / 2
            if ranges[mid].last < address { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// True when some range holds `iova`.
    public func contains(_ iova: UInt64) -> Bool {
        let i = firstIndex(lastAtLeast: iova)
        return i < ranges.count && ranges[i].start <= iova
    }

    /// True when every address of `range` is in the set (within one range).
    public func contains(_ range: IOVARange) -> Bool {
        let i = firstIndex(lastAtLeast: range.start)
        return i < ranges.count && ranges[i].start <= range.start && ranges[i].last >= range.last
    }

    /// Adds every address of `range`, merging it with each range it overlaps or touches.
    public mutating func insert(_ range: IOVARange) {
        // Ranges ending at or after start - 1 may touch; those starting at or before last + 1 do.
        let i = range.start == 0 ? 0 : firstIndex(lastAtLeast: range.start - 1)
        var j = i
        var merged = range
        while j < ranges.count, range.last == .max || ranges[j].start <= range.last + 1 {
            merged = IOVARange(uncheckedStart: Swift.min(merged.start, ranges[j].start), last: Swift.max(merged.last, ranges[j].last))
            j += 1
        }
        ranges.replaceSubrange(i..<j, with: [merged])
    }

    /// Removes every address of `range`, trimming or splitting the ranges it overlaps.
    public mutating func remove(_ range: IOVARange) {
        let i = firstIndex(lastAtLeast: range.start)
        var j = i
        while j < ranges.count, ranges[j].start <= range.last { j += 1 }
        guard i < j else { return }
        var pieces: [IOVARange] = []
        if ranges[i].start < range.start {
            pieces.append(IOVARange(uncheckedStart: ranges[i].start, last: range.start - 1))
        }
        if ranges[j - 1].last > range.last {
            pieces.append(IOVARange(uncheckedStart: range.last + 1, last: ranges[j - 1].last))
        }
        ranges.replaceSubrange(i..<j, with: pieces)
    }

    /// Reduces the set to at most `requested` ranges the way `vfio_combine_iova_ranges()`
    /// does, for a dirty tracker that holds fewer ranges than were asked for.
    ///
    /// With `requested` 1 (or less) the result is one range from the first range's start
    /// to the last range's end. Otherwise, while there are more than `requested` ranges,
    /// the two neighbours with the smallest gap (`next.start - previous.last`, the first
    /// such pair when several tie) become one range spanning both. The addresses between
    /// merged ranges become part of the set: the tracker then watches a little more than
    /// was asked, never less. An empty set stays empty.
    public mutating func combine(to requested: Int) {
        guard let first = ranges.first, let last = ranges.last else { return }
        if requested <= 1 {
            ranges = [IOVARange(uncheckedStart: first.start, last: last.last)]
            return
        }
        while ranges.count > requested {
            var minimumGap = UInt64.max
            var at = -1
            for k in 1..<ranges.count {
                let gap = ranges[k].start - ranges[k - 1].last
                if gap < minimumGap {
                    minimumGap = gap
                    at = k
                }
            }
            // The kernel stops (with a warning) when no gap is below the maximum.
            if at < 0 { break }
            ranges[at - 1] = IOVARange(uncheckedStart: ranges[at - 1].start, last: ranges[at].last)
            ranges.remove(at: at)
        }
    }

    /// A copy reduced with `combine(to:)`.
    public func combined(to requested: Int) -> IOVARangeSet {
        var copy = self
        copy.combine(to: requested)
        return copy
    }

    public var description: String {
        "{" + ranges.map(\.description).joined(separator: ", ") + "}"
    }
}
