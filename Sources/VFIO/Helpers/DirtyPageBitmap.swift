/// A dirty-page log over one IOVA range: what a device model keeps while DMA logging
/// (`VFIO_DEVICE_FEATURE_DMA_LOGGING_START`) is on, and the bitmap it hands back for
/// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`.
///
/// Pages are tracked at `pageSize` (a power of two). A report may use a different page
/// size: a smaller report page repeats the bit of the tracked page it lies in, a larger
/// one is dirty when any tracked page inside it is (an OR).
///
/// The report's layout is the ABI's: an array of little-endian 64-bit words in which bit
/// `i` (bit `i % 64` of word `i / 64`) stands for the `i`-th report page counted from the
/// report's `iova`, i.e. `[iova + i * pageSize, iova + (i + 1) * pageSize)`. (The uAPI
/// header's one-line formula for this is looser; this is what the kernel's
/// `iova_bitmap` writes.)
public struct DirtyPageBitmap: Sendable, Equatable {
    /// The smallest report page size the kernel accepts (`SZ_4K`).
    public static let minimumReportPageSize: UInt64 = 4096
    /// The most pages one bitmap tracks (2^32, a 512 MiB bitmap), to bound allocation.
    public static let maximumPages: UInt64 = 1 << 32

    /// The tracked addresses.
    public let range: IOVARange
    /// The tracking granule in bytes, a power of two.
    public let pageSize: UInt64
    /// One bit per tracked page, page 0 at `range.start`.
    private var words: [UInt64]
    private let pageCount: Int
    private let pageShift: UInt64

    /// A clean log over `[iova, iova + length)` at `pageSize`.
    /// - Throws: `VFIOError.invalidArgument("DirtyPageBitmap", …)` when `pageSize` is not
    ///   a power of two, `iova` or `length` is not a multiple of it, `length` is 0, the
    ///   range wraps past 64 bits, or it holds more than `maximumPages` pages.
    public init(iova: UInt64, length: UInt64, pageSize: UInt64) throws(VFIOError) {
        let operation = "DirtyPageBitmap"
        guard pageSize != 0, pageSize & (pageSize - 1) == 0 else {
            throw .invalidArgument(operation, "tracking page size \(pageSize) is not a power of two")
        }
        guard iova & (pageSize - 1) == 0, length & (pageSize - 1) == 0 else {
            throw .invalidArgument(operation, "range at iova 0x\(String(iova, radix: 16)) with length 0x\(String(length, radix: 16)) is not aligned to the tracking page size 0x\(String(pageSize, radix: 16))")
        }
        let range = try IOVARange(iova: iova, length: length)
        let pages = length / pageSize
        guard pages <= DirtyPageBitmap.maximumPages else {
            throw .invalidArgument(operation, "\(pages) pages exceed the limit of \(DirtyPageBitmap.maximumPages)")
        }
        self.range = range
        self.pageSize = pageSize
        self.pageShift = UInt64(pageSize.trailingZeroBitCount)
        self.pageCount = Int(pages)
        self.words = Array(repeating: 0, count: (Int(pages) + 63) / 64)
    }

    /// The number of tracked pages.
    public var pages: Int { pageCount }

    /// The number of dirty tracked pages.
    public var dirtyPageCount: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// Checks that `[iova, iova + length)` lies inside the tracked range and returns the
    /// offset of `iova` and of the byte after the end, from `range.start`.
    private func offsets(_ what: String, iova: UInt64, length: UInt64) throws(VFIOError) -> (UInt64, UInt64) {
        let (end, overflow) = iova.addingReportingOverflow(length)
        if overflow {
            throw .invalidArgument("DirtyPageBitmap", "\(what) at iova 0x\(String(iova, radix: 16)) with length 0x\(String(length, radix: 16)) wraps past the end of the 64-bit address space")
        }
        // `range.last - range.start + 1` cannot overflow: the range never reaches 2^64.
        let size = range.last - range.start + 1
        if iova < range.start || iova - range.start >= size || end - range.start > size {
            throw .invalidArgument("DirtyPageBitmap", "\(what) [0x\(String(iova, radix: 16)), 0x\(String(end, radix: 16))) is outside the tracked range \(range)")
        }
        return (iova - range.start, end - range.start)
    }

    /// Records a DMA write of `length` bytes at `iova`: every tracked page it touches
    /// becomes dirty. A zero length marks nothing (but `iova` must still be in range).
    /// - Throws: `VFIOError.invalidArgument` when the write is not inside the tracked range.
    public mutating func mark(iova: UInt64, length: UInt64) throws(VFIOError) {
        let (from, to) = try offsets("write", iova: iova, length: length)
        if length == 0 { return }
        setBits(&words, Int(from >> pageShift), Int((to - 1) >> pageShift))
    }

    /// True when the tracked page holding `iova` is dirty.
    /// - Throws: `VFIOError.invalidArgument` when `iova` is outside the tracked range.
    public func isDirty(_ iova: UInt64) throws(VFIOError) -> Bool {
        guard range.contains(iova) else {
            throw .invalidArgument("DirtyPageBitmap", "address 0x\(String(iova, radix: 16)) is outside the tracked range \(range)")
        }
        let page = Int((iova - range.start) >> pageShift)
        return words[page >> 6] & (1 << UInt64(page & 63)) != 0
    }

    /// Clears the whole log.
    public mutating func clearAll() {
        for k in words.indices { words[k] = 0 }
    }

    /// The dirty bitmap for `[iova, iova + length)` at `pageSize`, laid out as
    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` returns it: `ceil(length / pageSize / 64)`
    /// little-endian 64-bit words (8 bytes each), bit `i` for report page `i`.
    ///
    /// With `clear`, the report is read-and-clear as the kernel's is: every tracked page
    /// lying wholly inside the reported range is clean afterwards. A tracked page only
    /// partly covered (a report page smaller than the tracking page) stays dirty, so the
    /// part not reported is not lost; it is reported again next time.
    ///
    /// - Throws: `VFIOError.invalidArgument("DirtyPageBitmap", …)` when `pageSize` is not a
    ///   power of two or is below 4 KiB (the kernel's `EINVAL`), `iova + length` wraps
    ///   (`EOVERFLOW`), `length` is 0, `iova` or `length` is not a multiple of `pageSize`,
    ///   or the range is not inside the tracked range.
    public mutating func report(iova: UInt64, length: UInt64, pageSize reportPageSize: UInt64, clear: Bool) throws(VFIOError) -> [UInt8] {
        let operation = "DirtyPageBitmap"
        guard reportPageSize != 0, reportPageSize & (reportPageSize - 1) == 0 else {
            throw .invalidArgument(operation, "report page size \(reportPageSize) is not a power of two")
        }
        guard reportPageSize >= DirtyPageBitmap.minimumReportPageSize else {
            throw .invalidArgument(operation, "report page size \(reportPageSize) is below the \(DirtyPageBitmap.minimumReportPageSize)-byte minimum")
        }
        if iova.addingReportingOverflow(length).overflow {
            throw .invalidArgument(operation, "report at iova 0x\(String(iova, radix: 16)) with length 0x\(String(length, radix: 16)) wraps past the end of the 64-bit address space")
        }
        guard length > 0 else {
            throw .invalidArgument(operation, "report at iova 0x\(String(iova, radix: 16)) has length 0")
        }
        guard iova & (reportPageSize - 1) == 0, length & (reportPageSize - 1) == 0 else {
            throw .invalidArgument(operation, "report at iova 0x\(String(iova, radix: 16)) with length 0x\(String(length, radix: 16)) is not aligned to the report page size 0x\(String(reportPageSize, radix: 16))")
        }
        let (from, to) = try offsets("report", iova: iova, length: length)
        let reportShift = UInt64(reportPageSize.trailingZeroBitCount)
        let reportPages = Int(length >> reportShift)
        var out = [UInt64](repeating: 0, count: (reportPages + 63) / 64)

        // Walk the dirty tracked pages that overlap the report and set the report bits
        // each one covers.
        let firstPage = Int(from >> pageShift)
        let lastPage = Int((to - 1) >> pageShift)
        var word = firstPage >> 6
        while word <= lastPage >> 6 {
            var bits = words[word]
            while bits != 0 {
                let page = word << 6 + bits.trailingZeroBitCount
                bits &= bits - 1
                if page < firstPage || page > lastPage { continue }
                let pageStart = UInt64(page) << pageShift
                let lo = max(pageStart, from) - from
                let hi = min(pageStart + pageSize, to) - from
                setBits(&out, Int(lo >> reportShift), Int((hi - 1) >> reportShift))
            }
            word += 1
        }

        if clear {
            // Tracked pages wholly inside [from, to).
            let firstWhole = Int((from + pageSize - 1) >> pageShift)
            let endWhole = Int(to >> pageShift)
            if firstWhole < endWhole { clearBits(&words, firstWhole, endWhole - 1) }
        }

        var bytes: [UInt8] = []
        bytes.reserveCapacity(out.count * 8)
        for value in out {
            for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        }
        return bytes
    }
}

/// Sets bits `first...last` (inclusive) of a little-endian word array.
private func setBits(_ words: inout [UInt64], _ first: Int, _ last: Int) {
    var bit = first
    while bit <= last {
        let inWord = bit & 63
        let span = min(64 - inWord, last - bit + 1)
        let mask: UInt64 = span == 64 ? .max : ((1 << UInt64(span)) - 1) << UInt64(inWord)
        words[bit >> 6] |= mask
        bit += span
    }
}

/// Clears bits `first...last` (inclusive) of a little-endian word array.
private func clearBits(_ words: inout [UInt64], _ first: Int, _ last: Int) {
    var bit = first
    while bit <= last {
        let inWord = bit & 63
        let span = min(64 - inWord, last - bit + 1)
        let mask: UInt64 = span == 64 ? .max : ((1 << UInt64(span)) - 1) << UInt64(inWord)
        words[bit >> 6] &= ~mask
        bit += span
    }
}
