/// `VFIO_IOMMU_SPAPR_TCE_CREATE` (`struct vfio_iommu_spapr_tce_create`, 40 bytes): create
/// an extra DMA window (a new TCE table) in every group of a v2 sPAPR container.
///
/// Layout: `argsz` at 0, `flags` at 4 (must be 0), `page_shift` at 8, `__resv1` at 12,
/// `window_size` at 16, `levels` at 24, `__resv2` at 28, `start_addr` at 32 (out).
/// The kernel answers `EINVAL` for an unsupported page size or level count and `ENOSPC`
/// when no more windows are free.
public struct SPAPRTCECreate: ArgszStruct {
    public static let cName = "vfio_iommu_spapr_tce_create"
    /// `sizeof(struct vfio_iommu_spapr_tce_create)`
    public static let fixedSize = 40

    /// log2 of the TCE page size (12 for 4 KiB, 16 for 64 KiB, 24 for 16 MiB).
    public var pageShift: UInt32
    /// The window's size in bytes.
    public var windowSize: UInt64
    /// The TCE table's levels.
    public var levels: UInt32
    /// Out: the bus address where the kernel placed the window (0 in a request).
    public var startAddress: UInt64

    public init(pageShift: UInt32, windowSize: UInt64, levels: UInt32, startAddress: UInt64 = 0) {
        self.pageShift = pageShift
        self.windowSize = windowSize
        self.levels = levels
        self.startAddress = startAddress
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(0) // flags
        writer.u32(pageShift)
        writer.u32(0) // __resv1
        writer.u64(windowSize)
        writer.u32(levels)
        writer.u32(0) // __resv2
        writer.u64(startAddress)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for a short buffer, `argsz` below 40, or non-zero `flags`.
    ///   The reserved words are ignored, as the kernel ignores them.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        _ = try reader.argsz(fixedSize: Self.fixedSize)
        let flags = try reader.u32()
        if flags != 0 { throw .malformed(Self.cName, "flags 0x\(String(flags, radix: 16)) must be 0") }
        pageShift = try reader.u32()
        try reader.skip(4)
        windowSize = try reader.u64()
        levels = try reader.u32()
        try reader.skip(4)
        startAddress = try reader.u64()
    }
}

/// `VFIO_IOMMU_SPAPR_TCE_REMOVE` (`struct vfio_iommu_spapr_tce_remove`, 16 bytes): remove
/// the DMA window that starts at `start_addr` from every group of the container.
///
/// Layout: `argsz` at 0, `flags` at 4 (must be 0), `start_addr` at 8. An address that is
/// no window's start gives `EINVAL`.
public struct SPAPRTCERemove: ArgszStruct {
    public static let cName = "vfio_iommu_spapr_tce_remove"
    /// `sizeof(struct vfio_iommu_spapr_tce_remove)`
    public static let fixedSize = 16

    /// The bus address `VFIO_IOMMU_SPAPR_TCE_CREATE` returned.
    public var startAddress: UInt64

    public init(startAddress: UInt64) {
        self.startAddress = startAddress
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(0) // flags
        writer.u64(startAddress)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for a short buffer, `argsz` below 16, or non-zero `flags`.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        _ = try reader.argsz(fixedSize: Self.fixedSize)
        let flags = try reader.u32()
        if flags != 0 { throw .malformed(Self.cName, "flags 0x\(String(flags, radix: 16)) must be 0") }
        startAddress = try reader.u64()
    }
}
