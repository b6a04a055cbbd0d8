/// `flags` of `struct vfio_iommu_type1_dma_map`.
public struct Type1DMAMapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_DMA_MAP_FLAG_READ`: the device may read the memory.
    public static let read = Type1DMAMapFlags(rawValue: 1 << 0)
    /// `VFIO_DMA_MAP_FLAG_WRITE`: the device may write the memory.
    public static let write = Type1DMAMapFlags(rawValue: 1 << 1)
    /// `VFIO_DMA_MAP_FLAG_VADDR`: do not map; give an existing mapping (same `iova` and
    /// `size`) a new process address after `VFIO_DMA_UNMAP_FLAG_VADDR` invalidated it.
    /// Requires `VFIO_UPDATE_VADDR`; excludes READ and WRITE.
    public static let vaddr = Type1DMAMapFlags(rawValue: 1 << 2)

    /// Every flag Linux 6.14 accepts; any other bit makes the kernel answer `EINVAL`.
    public static let known: Type1DMAMapFlags = [.read, .write, .vaddr]
}

/// `VFIO_IOMMU_MAP_DMA` (`struct vfio_iommu_type1_dma_map`, 32 bytes): map `size` bytes
/// of process memory at `vaddr` to the device address `iova`.
///
/// Layout: `argsz` at 0, `flags` at 4, `vaddr` at 8, `iova` at 16, `size` at 24.
/// `iova`, `vaddr` and `size` must be multiples of the container's smallest IOMMU page
/// size (`Type1Info.iovaPageSizes`), else `EINVAL`; an `iova` range that overlaps an
/// existing mapping gives `EEXIST`; more than the DMA entry limit gives `ENOSPC`.
public struct Type1DMAMap: ArgszStruct {
    public static let cName = "vfio_iommu_type1_dma_map"
    /// `sizeof(struct vfio_iommu_type1_dma_map)`
    public static let fixedSize = 32

    public var flags: Type1DMAMapFlags
    /// The process virtual address of the memory, as an integer the caller supplies
    /// (for instance `UInt64(UInt(bitPattern: pointer))`); this library never dereferences it.
    public var vaddr: UInt64
    /// The device (IO virtual) address the memory appears at.
    public var iova: UInt64
    /// The length in bytes.
    public var size: UInt64

    public init(flags: Type1DMAMapFlags = [.read, .write], vaddr: UInt64, iova: UInt64, size: UInt64) {
        self.flags = flags
        self.vaddr = vaddr
        self.iova = iova
        self.size = size
    }

    /// Checks what Linux 6.14's `vfio_iommu_type1_map_dma()`/`vfio_dma_do_map()` refuse
    /// with `EINVAL` before looking at the container: unknown flags, VADDR together with
    /// READ or WRITE, neither VADDR nor any of READ/WRITE, a zero size, and an `iova` or
    /// `vaddr` range that wraps past 2^64.
    public func validate() throws(VFIOError) {
        if let why = problem { throw .invalidArgument(Self.cName, why) }
    }

    var problem: String? {
        let unknown = flags.subtracting(.known)
        if !unknown.isEmpty { return "unknown flag bits 0x\(String(unknown.rawValue, radix: 16))" }
        let prot = flags.intersection([.read, .write])
        if flags.contains(.vaddr) && !prot.isEmpty { return "VFIO_DMA_MAP_FLAG_VADDR cannot be combined with READ or WRITE" }
        if !flags.contains(.vaddr) && prot.isEmpty { return "a mapping needs VFIO_DMA_MAP_FLAG_READ and/or WRITE" }
        if size == 0 { return "size is 0" }
        if iova > UInt64.max - (size - 1) { return "iova 0x\(String(iova, radix: 16)) + size 0x\(String(size, radix: 16)) wraps past 2^64" }
        if vaddr > UInt64.max - (size - 1) { return "vaddr 0x\(String(vaddr, radix: 16)) + size 0x\(String(size, radix: 16)) wraps past 2^64" }
        return nil
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.u64(vaddr)
        writer.u64(iova)
        writer.u64(size)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for a short buffer, `argsz` below 32, or anything
    ///   `validate()` refuses.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        flags = Type1DMAMapFlags(rawValue: try reader.u32())
        vaddr = try reader.u64()
        iova = try reader.u64()
        size = try reader.u64()
        if let why = problem { throw .malformed(Self.cName, why) }
        reader.offset = start + min(Int(argsz), reader.bytes.count - start)
    }
}
