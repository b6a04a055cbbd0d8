/// A caller-owned dirty bitmap (`struct vfio_bitmap`, 24 bytes), passed in the `data[]`
/// of a dirty-bitmap unmap and of `VFIO_IOMMU_DIRTY_PAGES` GET_BITMAP.
///
/// Layout: `pgsize` at 0, `size` at 8, `data` at 16. Bit n of the bitmap stands for the
/// page at `iova + n * pgsize`; the kernel sets the bits of dirty pages. The memory must
/// be zeroed by the caller and hold at least one bit per page of the range, rounded up to
/// whole `u64` words, else `EINVAL`; a size above the migration capability's
/// `max_dirty_bitmap_size` also fails.
public struct Type1Bitmap: KernelStruct, Hashable {
    public static let cName = "vfio_bitmap"
    /// `sizeof(struct vfio_bitmap)`
    public static let fixedSize = 24

    /// The page size one bit stands for, in bytes: must be the container's smallest page size.
    public var pageSize: UInt64
    /// The bitmap's size in bytes.
    public var size: UInt64
    /// The bitmap's user-space address (C `__u64 *data`), an integer the caller supplies
    /// and keeps valid for the duration of the ioctl.
    public var data: UInt64

    public init(pageSize: UInt64, size: UInt64, data: UInt64) {
        self.pageSize = pageSize
        self.size = size
        self.data = data
    }

    /// The bytes of bitmap a range of `length` bytes needs at `pageSize`, as the kernel
    /// computes it: one bit per page, rounded up to whole 64-bit words.
    public static func requiredSize(forLength length: UInt64, pageSize: UInt64) -> UInt64 {
        precondition(pageSize > 0 && pageSize & (pageSize - 1) == 0, "page size must be a power of two")
        let pages = length / pageSize + (length % pageSize == 0 ? 0 : 1)
        return (pages + 63) / 64 * 8
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(pageSize)
        writer.u64(size)
        writer.u64(data)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        pageSize = try reader.u64()
        size = try reader.u64()
        data = try reader.u64()
    }
}
