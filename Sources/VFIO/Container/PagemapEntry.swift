/// One 64-bit entry of `/proc/PID/pagemap` (the kernel's
/// Documentation/admin-guide/mm/pagemap.rst): what backs one virtual page.
///
/// The file holds one little-endian `u64` per virtual page, at byte offset
/// `(virtual address / page size) * 8`. Bits: 0-54 the page frame number when present
/// (zero unless the reader has `CAP_SYS_ADMIN`, since Linux 4.2), 55 soft-dirty,
/// 56 exclusively mapped, 61 file page or shared anonymous, 62 swapped, 63 present.
/// A no-IOMMU device is given `frameNumber * pageSize + offset in the page`.
public struct PagemapEntry: Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The size of one entry in the file.
    public static let size = 8
    private static let frameMask: UInt64 = (1 << 55) - 1

    /// Bit 63: the page is in RAM.
    public var isPresent: Bool { rawValue & (1 << 63) != 0 }
    /// Bit 62: the page is in swap (the low bits then name the swap slot, not a frame).
    public var isSwapped: Bool { rawValue & (1 << 62) != 0 }
    /// Bit 61: a file page or shared anonymous memory (a memfd's pages are).
    public var isFileOrShared: Bool { rawValue & (1 << 61) != 0 }
    /// Bit 56: the page is mapped exactly once.
    public var isExclusive: Bool { rawValue & (1 << 56) != 0 }
    /// Bit 55: soft-dirty.
    public var isSoftDirty: Bool { rawValue & (1 << 55) != 0 }

    /// Bits 0-54 of a present page: its page frame number. 0 for a reader without
    /// `CAP_SYS_ADMIN` (the kernel hides it) or for a page that is not present.
    public var frameNumber: UInt64? {
        guard isPresent, !isSwapped else { return nil }
        return rawValue & Self.frameMask
    }

    /// The byte offset in the pagemap file of the entry for `virtualAddress`.
    public static func fileOffset(of virtualAddress: UInt64, pageSize: UInt64) -> UInt64 {
        virtualAddress / pageSize * UInt64(size)
    }
}
