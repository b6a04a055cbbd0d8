import Glibc
import VFIO

/// Hands out IOVA ranges inside the valid ranges a DMA space reports (type1's IOVA_RANGE
/// capability, `IOMMU_IOAS_IOVA_RANGES`), first fit, aligned, never overlapping one another.
public struct IOVAAllocator: Sendable, Equatable {
    /// The ranges that may be used at all.
    public let valid: IOVARangeSet
    /// What is still free.
    public private(set) var free: IOVARangeSet
    /// Allocated ranges by start.
    public private(set) var allocated: [UInt64: UInt64] = [:]

    public init(validRanges: [IOVARange]) throws(VFIOError) {
        var set = IOVARangeSet()
        for range in validRanges { set.insert(range) }
        valid = set
        free = set
    }

    /// Reserves `size` bytes aligned to `alignment` (a power of two), with the last byte
    /// at or below `limit` (a device's DMA mask, e.g. `1 << 28 - 1` for edu).
    /// - Throws: `.invalidArgument` for size 0 or a bad alignment; `ENOSPC` when no free
    ///   range fits.
    public mutating func allocate(size: UInt64, alignment: UInt64 = 4096, limit: UInt64 = .max) throws(VFIOError) -> UInt64 {
        guard size > 0 else { throw .invalidArgument("IOVAAllocator", "size is 0") }
        guard alignment > 0, alignment & (alignment - 1) == 0 else {
            throw .invalidArgument("IOVAAllocator", "alignment \(alignment) is not a power of two")
        }
        for range in free {
            let (bumped, overflow) = range.start.addingReportingOverflow(alignment - 1)
            if overflow { continue }
            let start = bumped & ~(alignment - 1)
            guard start >= range.start, start <= range.last else { continue }
            let (end, wraps) = start.addingReportingOverflow(size - 1)
            if wraps || end > range.last || end > limit { continue }
            let piece = try IOVARange(start: start, last: end)
            free.remove(piece)
            allocated[start] = size
            return start
        }
        throw .errno("IOVAAllocator: no free \(size)-byte range below 0x\(String(limit, radix: 16)) in \(valid)", ENOSPC)
    }

    /// Reserves exactly `[iova, iova + size)`, which must be free and valid.
    /// - Throws: `EINVAL` outside the valid ranges; `EEXIST` over an allocated range.
    public mutating func reserve(iova: UInt64, size: UInt64) throws(VFIOError) {
        let range = try IOVARange(iova: iova, length: size)
        guard valid.contains(range) else {
            throw .errno("IOVAAllocator: \(range) is outside the valid ranges \(valid)", EINVAL)
        }
        guard free.contains(range) else {
            throw .errno("IOVAAllocator: \(range) overlaps an allocated range", EEXIST)
        }
        free.remove(range)
        allocated[iova] = size
    }

    /// Returns what `allocate` or `reserve` gave out at `iova`. Unknown starts are ignored.
    public mutating func release(iova: UInt64) {
        guard let size = allocated.removeValue(forKey: iova), let range = try? IOVARange(iova: iova, length: size) else { return }
        free.insert(range)
    }

    /// Releases every allocation.
    public mutating func releaseAll() {
        allocated.removeAll()
        free = valid
    }
}
