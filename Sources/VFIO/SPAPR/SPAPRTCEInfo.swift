/// The dynamic DMA window facts of an sPAPR TCE container
/// (`struct vfio_iommu_spapr_tce_ddw_info`, 16 bytes): `pgsizes` at 0,
/// `max_dynamic_windows_supported` at 8, `levels` at 12.
public struct SPAPRTCEDDWInfo: KernelStruct, Hashable {
    public static let cName = "vfio_iommu_spapr_tce_ddw_info"
    /// `sizeof(struct vfio_iommu_spapr_tce_ddw_info)`
    public static let fixedSize = 16

    /// The TCE page sizes a window may use, one bit per size (4 KiB, 64 KiB, 16 MiB...).
    public var pageSizes: UInt64
    /// How many DMA windows the platform can have at once.
    public var maxDynamicWindows: UInt32
    /// The most levels a multi-level TCE table may have.
    public var levels: UInt32

    public init(pageSizes: UInt64, maxDynamicWindows: UInt32, levels: UInt32) {
        self.pageSizes = pageSizes
        self.maxDynamicWindows = maxDynamicWindows
        self.levels = levels
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(pageSizes)
        writer.u32(maxDynamicWindows)
        writer.u32(levels)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        pageSizes = try reader.u64()
        maxDynamicWindows = try reader.u32()
        levels = try reader.u32()
    }
}

/// `flags` of `struct vfio_iommu_spapr_tce_info`.
public struct SPAPRTCEInfoFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_IOMMU_SPAPR_INFO_DDW`: dynamic DMA windows are supported and `ddw` is valid.
    public static let ddw = SPAPRTCEInfoFlags(rawValue: 1 << 0)
}

/// The reply of `VFIO_IOMMU_SPAPR_TCE_GET_INFO` (`struct vfio_iommu_spapr_tce_info`,
/// 32 bytes): `argsz` at 0, `flags` at 4, `dma32_window_start` at 8,
/// `dma32_window_size` at 12, `ddw` at 16.
///
/// The kernel accepts an `argsz` of 16 (callers predating DDW) and then leaves `ddw`
/// alone; this decoder accepts the same and reports a zero `ddw` for it.
public struct SPAPRTCEInfo: ArgszStruct {
    public static let cName = "vfio_iommu_spapr_tce_info"
    /// `sizeof(struct vfio_iommu_spapr_tce_info)`
    public static let fixedSize = 32
    /// The smallest `argsz` the kernel accepts: up to `dma32_window_size`.
    public static let minimumArgsz = 16

    public var flags: SPAPRTCEInfoFlags
    /// The PCI bus address where the default 32-bit DMA window starts, in bytes.
    /// IOVAs are absolute bus addresses: the window filters them, it does not offset them.
    public var dma32WindowStart: UInt32
    /// The default window's size in bytes.
    public var dma32WindowSize: UInt32
    /// Valid with `.ddw`.
    public var ddw: SPAPRTCEDDWInfo

    public init(flags: SPAPRTCEInfoFlags, dma32WindowStart: UInt32, dma32WindowSize: UInt32,
                ddw: SPAPRTCEDDWInfo = SPAPRTCEDDWInfo(pageSizes: 0, maxDynamicWindows: 0, levels: 0)) {
        self.flags = flags
        self.dma32WindowStart = dma32WindowStart
        self.dma32WindowSize = dma32WindowSize
        self.ddw = ddw
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.u32(dma32WindowStart)
        writer.u32(dma32WindowSize)
        ddw.encode(into: &writer)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` when `argsz` is below 16 or the buffer is shorter than the
    ///   part `argsz` covers (up to 32 bytes).
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let argsz = try reader.argsz(fixedSize: Self.minimumArgsz)
        flags = SPAPRTCEInfoFlags(rawValue: try reader.u32())
        dma32WindowStart = try reader.u32()
        dma32WindowSize = try reader.u32()
        if argsz >= UInt32(Self.fixedSize) {
            ddw = try SPAPRTCEDDWInfo(from: &reader)
        } else {
            ddw = SPAPRTCEDDWInfo(pageSizes: 0, maxDynamicWindows: 0, levels: 0)
        }
    }
}
