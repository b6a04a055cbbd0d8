/// `flags` of `struct vfio_iommu_type1_dma_unmap`.
public struct Type1DMAUnmapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`: a `struct vfio_bitmap` follows in `data[]`
    /// and receives the dirty bits of the range before it is unmapped. `Type1DMAUnmap`
    /// sets this bit itself when `dirtyBitmap` is non-nil.
    public static let getDirtyBitmap = Type1DMAUnmapFlags(rawValue: 1 << 0)
    /// `VFIO_DMA_UNMAP_FLAG_ALL`: unmap everything; `iova` and `size` must be 0.
    /// Needs `VFIO_UNMAP_ALL`.
    public static let all = Type1DMAUnmapFlags(rawValue: 1 << 1)
    /// `VFIO_DMA_UNMAP_FLAG_VADDR`: keep the mappings but invalidate their process
    /// addresses until `VFIO_DMA_MAP_FLAG_VADDR` supplies new ones. Needs `VFIO_UPDATE_VADDR`.
    public static let vaddr = Type1DMAUnmapFlags(rawValue: 1 << 2)

    /// Every flag Linux 6.14 accepts; any other bit makes the kernel answer `EINVAL`.
    public static let known: Type1DMAUnmapFlags = [.getDirtyBitmap, .all, .vaddr]
}

/// `VFIO_IOMMU_UNMAP_DMA` (`struct vfio_iommu_type1_dma_unmap`, 24 bytes plus `data[]`).
///
/// Layout: `argsz` at 0, `flags` at 4, `iova` at 8, `size` at 16; with
/// `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP` a `struct vfio_bitmap` follows at 24 and
/// `argsz` is 48. On return the kernel writes the number of bytes unmapped into `size`.
/// On a v2 container the range must not split a mapping (`EINVAL`).
public struct Type1DMAUnmap: ArgszStruct {
    public static let cName = "vfio_iommu_type1_dma_unmap"
    /// `sizeof(struct vfio_iommu_type1_dma_unmap)`, without `data[]`.
    public static let fixedSize = 24

    /// `.all` and/or `.vaddr`. `.getDirtyBitmap` is derived from `dirtyBitmap` and is
    /// never stored here.
    public var flags: Type1DMAUnmapFlags {
        get { storedFlags }
        set { storedFlags = newValue.subtracting(.getDirtyBitmap) }
    }
    private var storedFlags: Type1DMAUnmapFlags
    /// The first IOVA to unmap (0 with `.all`).
    public var iova: UInt64
    /// The length in bytes (0 with `.all`); in a reply, the bytes actually unmapped.
    public var size: UInt64
    /// When set, the dirty bits of the range are written to this bitmap before the unmap.
    public var dirtyBitmap: Type1Bitmap?

    public init(flags: Type1DMAUnmapFlags = [], iova: UInt64, size: UInt64, dirtyBitmap: Type1Bitmap? = nil) {
        self.storedFlags = flags.subtracting(.getDirtyBitmap)
        self.iova = iova
        self.size = size
        self.dirtyBitmap = dirtyBitmap
    }

    /// The flags as written to the wire.
    public var wireFlags: Type1DMAUnmapFlags {
        dirtyBitmap == nil ? storedFlags : storedFlags.union(.getDirtyBitmap)
    }

    /// Checks what Linux 6.14's `vfio_iommu_type1_unmap_dma()`/`vfio_dma_do_unmap()`
    /// refuse with `EINVAL` regardless of the container's state: unknown flags, the dirty
    /// bitmap together with ALL or VADDR, ALL with a non-zero `iova` or `size`, and
    /// (without ALL) a zero `size` or a range that wraps past 2^64.
    public func validate() throws(VFIOError) {
        if let why = Self.problem(wireFlags, iova: iova, size: size) { throw .invalidArgument(Self.cName, why) }
    }

    static func problem(_ flags: Type1DMAUnmapFlags, iova: UInt64, size: UInt64) -> String? {
        let unknown = flags.subtracting(.known)
        if !unknown.isEmpty { return "unknown flag bits 0x\(String(unknown.rawValue, radix: 16))" }
        if flags.contains(.getDirtyBitmap) && flags.contains(.all) {
            return "VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP cannot be combined with VFIO_DMA_UNMAP_FLAG_ALL"
        }
        if flags.contains(.getDirtyBitmap) && flags.contains(.vaddr) {
            return "VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP cannot be combined with VFIO_DMA_UNMAP_FLAG_VADDR"
        }
        if flags.contains(.all) {
            if iova != 0 || size != 0 { return "VFIO_DMA_UNMAP_FLAG_ALL needs iova and size 0, got iova 0x\(String(iova, radix: 16)) size 0x\(String(size, radix: 16))" }
        } else {
            if size == 0 { return "size is 0" }
            if iova > UInt64.max - (size - 1) { return "iova 0x\(String(iova, radix: 16)) + size 0x\(String(size, radix: 16)) wraps past 2^64" }
        }
        return nil
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(wireFlags.rawValue)
        writer.u64(iova)
        writer.u64(size)
        dirtyBitmap?.encode(into: &writer)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for a short buffer, `argsz` below 24, a dirty-bitmap request
    ///   whose `argsz` or buffer lacks the 24-byte `vfio_bitmap`, or anything `validate()` refuses.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        let flags = Type1DMAUnmapFlags(rawValue: try reader.u32())
        iova = try reader.u64()
        size = try reader.u64()
        if let why = Self.problem(flags, iova: iova, size: size) { throw .malformed(Self.cName, why) }
        storedFlags = flags.subtracting(.getDirtyBitmap)
        if flags.contains(.getDirtyBitmap) {
            let needed = Self.fixedSize + Type1Bitmap.fixedSize
            if Int(argsz) < needed {
                throw .malformed(Self.cName, "argsz \(argsz) leaves no room for the vfio_bitmap that GET_DIRTY_BITMAP needs (\(needed) bytes)")
            }
            dirtyBitmap = try Type1Bitmap(from: &reader)
        } else {
            dirtyBitmap = nil
        }
        reader.offset = max(reader.offset, start + min(Int(argsz), reader.bytes.count - start))
    }
}
