/// `flags` of `struct vfio_iommu_type1_dirty_bitmap`; exactly one must be set.
public struct Type1DirtyPagesFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_IOMMU_DIRTY_PAGES_FLAG_START`
    public static let start = Type1DirtyPagesFlags(rawValue: 1 << 0)
    /// `VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP`
    public static let stop = Type1DirtyPagesFlags(rawValue: 1 << 1)
    /// `VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP`
    public static let getBitmap = Type1DirtyPagesFlags(rawValue: 1 << 2)
}

/// The range and bitmap of a GET_BITMAP request
/// (`struct vfio_iommu_type1_dirty_bitmap_get`, 40 bytes).
///
/// Layout: `iova` at 0, `size` at 8, `bitmap` (`struct vfio_bitmap`) at 16. `iova` and
/// `size` must be non-zero multiples of the smallest IOMMU page size, `bitmap.pageSize`
/// must equal it, and the range must lie inside mapped memory, else `EINVAL`.
public struct Type1DirtyBitmapRange: KernelStruct, Hashable {
    public static let cName = "vfio_iommu_type1_dirty_bitmap_get"
    /// `sizeof(struct vfio_iommu_type1_dirty_bitmap_get)`
    public static let fixedSize = 40

    public var iova: UInt64
    /// The length of the range in bytes.
    public var size: UInt64
    public var bitmap: Type1Bitmap

    public init(iova: UInt64, size: UInt64, bitmap: Type1Bitmap) {
        self.iova = iova
        self.size = size
        self.bitmap = bitmap
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(iova)
        writer.u64(size)
        bitmap.encode(into: &writer)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        iova = try reader.u64()
        size = try reader.u64()
        bitmap = try Type1Bitmap(from: &reader)
    }
}

/// `VFIO_IOMMU_DIRTY_PAGES` (`struct vfio_iommu_type1_dirty_bitmap`, 8 bytes plus `data[]`):
/// start or stop dirty page logging on a v2 type1 container, or read the bitmap of a range.
///
/// Layout: `argsz` at 0, `flags` at 4; for GET_BITMAP a `vfio_iommu_type1_dirty_bitmap_get`
/// follows at 8 and `argsz` is 48 (the bitmap memory itself is not counted). The kernel
/// answers `EACCES` on a v1 container and `EINVAL` for GET_BITMAP while logging is off.
public struct Type1DirtyPages: ArgszStruct {
    public static let cName = "vfio_iommu_type1_dirty_bitmap"
    /// `sizeof(struct vfio_iommu_type1_dirty_bitmap)`, without `data[]`.
    public static let fixedSize = 8

    /// What to do; exactly one flag by construction.
    public enum Operation: Sendable, Hashable {
        /// `VFIO_IOMMU_DIRTY_PAGES_FLAG_START`: begin logging pages the device dirties.
        case start
        /// `VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP`: stop logging and drop the logs.
        case stop
        /// `VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP`: copy (and clear) the dirty bits of a range.
        case getBitmap(Type1DirtyBitmapRange)
    }

    public var operation: Operation

    public init(_ operation: Operation) {
        self.operation = operation
    }

    /// The flags written to the wire.
    public var flags: Type1DirtyPagesFlags {
        switch operation {
        case .start: return .start
        case .stop: return .stop
        case .getBitmap: return .getBitmap
        }
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        if case .getBitmap(let range) = operation { range.encode(into: &writer) }
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for a short buffer, `argsz` below 8, flags that are not
    ///   exactly one of START, STOP and GET_BITMAP (the kernel's `EINVAL`), or a
    ///   GET_BITMAP whose `argsz` or buffer lacks the 40-byte range.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        let flags = Type1DirtyPagesFlags(rawValue: try reader.u32())
        switch flags {
        case .start: operation = .start
        case .stop: operation = .stop
        case .getBitmap:
            let needed = Self.fixedSize + Type1DirtyBitmapRange.fixedSize
            if Int(argsz) < needed {
                throw .malformed(Self.cName, "argsz \(argsz) leaves no room for the vfio_iommu_type1_dirty_bitmap_get that GET_BITMAP needs (\(needed) bytes)")
            }
            operation = .getBitmap(try Type1DirtyBitmapRange(from: &reader))
        default:
            throw .malformed(Self.cName, "flags 0x\(String(flags.rawValue, radix: 16)) must be exactly one of START, STOP and GET_BITMAP")
        }
        reader.offset = max(reader.offset, start + min(Int(argsz), reader.bytes.count - start))
    }
}
