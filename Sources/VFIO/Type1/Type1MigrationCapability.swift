/// The body of the `VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION` capability
/// (`struct vfio_iommu_type1_info_cap_migration` after its 8-byte header).
///
/// Its presence says the type1 driver can log dirty pages (`VFIO_IOMMU_DIRTY_PAGES`).
/// Body layout: `flags` at 0, 4 bytes of padding, `pgsize_bitmap` at 8,
/// `max_dirty_bitmap_size` at 16 (24 bytes; 32 with the header).
public struct Type1MigrationCapability: Sendable, Hashable {
    /// `VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION`
    public static let id: UInt16 = 2
    /// The capability version this layout describes.
    public static let version: UInt16 = 1
    /// The body's size in bytes (without the capability header).
    public static let bodySize = 24

    /// No flags are defined; the kernel reports 0.
    public var flags: UInt32
    /// The page sizes dirty logging supports, one bit per size (bit n = 2^n bytes).
    public var pageSizeBitmap: UInt64
    /// The largest bitmap, in bytes, that one `VFIO_IOMMU_DIRTY_PAGES` GET_BITMAP or
    /// dirty-bitmap unmap may ask for.
    public var maxDirtyBitmapSize: UInt64

    public init(flags: UInt32 = 0, pageSizeBitmap: UInt64, maxDirtyBitmapSize: UInt64) {
        self.flags = flags
        self.pageSizeBitmap = pageSizeBitmap
        self.maxDirtyBitmapSize = maxDirtyBitmapSize
    }

    /// The capability body (without header).
    public var body: [UInt8] {
        var writer = ByteWriter(capacity: Self.bodySize)
        writer.u32(flags)
        writer.zeros(4)
        writer.u64(pageSizeBitmap)
        writer.u64(maxDirtyBitmapSize)
        return writer.bytes
    }

    /// Decodes the body of a capability with id 2.
    /// - Throws: `.malformed` when the body is shorter than 24 bytes.
    public init(body: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(body, context: "vfio_iommu_type1_info_cap_migration")
        flags = try reader.u32()
        try reader.skip(4)
        pageSizeBitmap = try reader.u64()
        maxDirtyBitmapSize = try reader.u64()
    }
}
