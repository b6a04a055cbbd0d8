/// `flags` of `struct iommu_hwpt_set_dirty_tracking`
/// (`enum iommufd_hwpt_set_dirty_tracking_flags`).
public struct IOMMUFDSetDirtyTrackingFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IOMMU_HWPT_DIRTY_TRACKING_ENABLE`: turn tracking on; without it, off.
    public static let enable = IOMMUFDSetDirtyTrackingFlags(rawValue: 1)
}

/// `IOMMU_HWPT_SET_DIRTY_TRACKING` (`struct iommu_hwpt_set_dirty_tracking`, 16 bytes):
/// switch IOMMU dirty tracking of a HWPT on or off. The HWPT must have been allocated
/// with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`, else `EOPNOTSUPP`.
///
/// Layout: `size` at 0, `flags` at 4, `hwpt_id` at 8, `__reserved` at 12.
public struct IOMMUFDHWPTSetDirtyTracking: ArgszStruct {
    public static let cName = "iommu_hwpt_set_dirty_tracking"
    /// `sizeof(struct iommu_hwpt_set_dirty_tracking)`
    public static let fixedSize = 16

    public var flags: IOMMUFDSetDirtyTrackingFlags
    public var hwptID: UInt32

    public init(flags: IOMMUFDSetDirtyTrackingFlags, hwptID: UInt32) {
        self.flags = flags
        self.hwptID = hwptID
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.u32(hwptID)
        writer.u32(0)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for unknown flags (the kernel's `EOPNOTSUPP`) or a non-zero `__reserved`.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        flags = try reader.iommufdFlags(IOMMUFDSetDirtyTrackingFlags.self, known: .enable)
        hwptID = try reader.u32()
        try reader.iommufdReserved32()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `flags` of `struct iommu_hwpt_get_dirty_bitmap` (`enum iommufd_hwpt_get_dirty_bitmap_flags`).
public struct IOMMUFDGetDirtyBitmapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR`: read the dirty bits without clearing them
    /// (useful right before unmapping the same range).
    public static let noClear = IOMMUFDGetDirtyBitmapFlags(rawValue: 1)
}

/// `IOMMU_HWPT_GET_DIRTY_BITMAP` (`struct iommu_hwpt_get_dirty_bitmap`, 48 bytes): read
/// (and by default clear) the IOMMU dirty bits of an IOVA range into a user bitmap.
///
/// Layout: `size` at 0, `hwpt_id` at 4, `flags` at 8, `__reserved` at 12, `iova` at 16,
/// `length` at 24, `page_size` at 32, `data` at 40. Bit n (in 64-bit words, little-endian)
/// stands for the page at `iova + n * page_size`. `iova` and `length` must be multiples of
/// `page_size`, a power of two, else `EINVAL`.
public struct IOMMUFDHWPTGetDirtyBitmap: ArgszStruct {
    public static let cName = "iommu_hwpt_get_dirty_bitmap"
    /// `sizeof(struct iommu_hwpt_get_dirty_bitmap)`
    public static let fixedSize = 48

    public var hwptID: UInt32
    public var flags: IOMMUFDGetDirtyBitmapFlags
    public var iova: UInt64
    /// The range's length in bytes.
    public var length: UInt64
    /// The bytes one bit stands for.
    public var pageSize: UInt64
    /// The user address of the bitmap, an integer the caller supplies.
    public var data: UInt64

    public init(hwptID: UInt32, flags: IOMMUFDGetDirtyBitmapFlags = [], iova: UInt64, length: UInt64, pageSize: UInt64, data: UInt64) {
        self.hwptID = hwptID
        self.flags = flags
        self.iova = iova
        self.length = length
        self.pageSize = pageSize
        self.data = data
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(hwptID)
        writer.u32(flags.rawValue)
        writer.u32(0)
        writer.u64(iova)
        writer.u64(length)
        writer.u64(pageSize)
        writer.u64(data)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for unknown flags or a non-zero `__reserved`.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        hwptID = try reader.u32()
        flags = try reader.iommufdFlags(IOMMUFDGetDirtyBitmapFlags.self, known: .noClear)
        try reader.iommufdReserved32()
        iova = try reader.u64()
        length = try reader.u64()
        pageSize = try reader.u64()
        data = try reader.u64()
        reader.iommufdFinish(start: start, size: size)
    }
}
