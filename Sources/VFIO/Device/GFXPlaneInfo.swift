/// `flags` of `struct vfio_device_gfx_plane_info`.
public struct GFXPlaneFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_GFX_PLANE_TYPE_PROBE`: with DMABUF or REGION, only ask whether that way of
    /// exposing planes is supported (0 if so, `EINVAL` if not).
    public static let probe = GFXPlaneFlags(rawValue: 1 << 0)
    /// `VFIO_GFX_PLANE_TYPE_DMABUF`: the plane is exposed as a dma-buf (`dmabufID`).
    public static let dmabuf = GFXPlaneFlags(rawValue: 1 << 1)
    /// `VFIO_GFX_PLANE_TYPE_REGION`: the plane is exposed as a device region (`regionIndex`).
    public static let region = GFXPlaneFlags(rawValue: 1 << 2)
}

/// `struct vfio_device_gfx_plane_info`, the argument and reply of
/// `VFIO_DEVICE_QUERY_GFX_PLANE` (mediated vGPUs).
///
/// The caller sets `flags` (DMABUF or REGION, with PROBE to only ask) and `drmPlaneType`;
/// the device fills the rest. A plane the guest disabled comes back with zero format, size,
/// width and height. Other flag combinations fail with `EINVAL`.
///
/// With DMABUF, `VFIO_DEVICE_GET_GFX_DMABUF` then takes a pointer to the `__u32`
/// `dmabufID` (no struct) and returns a new dma-buf fd for that framebuffer.
public struct GFXPlaneInfo: ArgszStruct {
    public static let cName = "vfio_device_gfx_plane_info"
    /// `sizeof(struct vfio_device_gfx_plane_info)`
    public static let fixedSize = 64

    /// `DRM_PLANE_TYPE_OVERLAY`
    public static let drmPlaneOverlay: UInt32 = 0
    /// `DRM_PLANE_TYPE_PRIMARY`
    public static let drmPlanePrimary: UInt32 = 1
    /// `DRM_PLANE_TYPE_CURSOR`
    public static let drmPlaneCursor: UInt32 = 2
    /// The `xHot`/`yHot` value meaning "no hotspot information".
    public static let noHotspot: UInt32 = 0xFFFF_FFFF

    public var flags: GFXPlaneFlags
    /// `DRM_PLANE_TYPE_*` (input).
    public var drmPlaneType: UInt32
    /// The DRM fourcc format, 0 when the plane is disabled.
    public var drmFormat: UInt32
    /// The DRM format modifier (tiling).
    public var drmFormatModifier: UInt64
    public var width: UInt32
    public var height: UInt32
    /// Bytes per line.
    public var stride: UInt32
    /// The plane's size in bytes, page aligned.
    public var size: UInt32
    /// Cursor plane position.
    public var xPos: UInt32
    public var yPos: UInt32
    /// Cursor hotspot, `noHotspot` when unknown.
    public var xHot: UInt32
    public var yHot: UInt32
    /// The union `region_index` / `dmabuf_id`; which one depends on `flags`.
    public var regionIndexOrDMABufID: UInt32

    public init(
        flags: GFXPlaneFlags, drmPlaneType: UInt32, drmFormat: UInt32 = 0, drmFormatModifier: UInt64 = 0,
        width: UInt32 = 0, height: UInt32 = 0, stride: UInt32 = 0, size: UInt32 = 0,
        xPos: UInt32 = 0, yPos: UInt32 = 0, xHot: UInt32 = 0, yHot: UInt32 = 0, regionIndexOrDMABufID: UInt32 = 0
    ) {
        self.flags = flags
        self.drmPlaneType = drmPlaneType
        self.drmFormat = drmFormat
        self.drmFormatModifier = drmFormatModifier
        self.width = width
        self.height = height
        self.stride = stride
        self.size = size
        self.xPos = xPos
        self.yPos = yPos
        self.xHot = xHot
        self.yHot = yHot
        self.regionIndexOrDMABufID = regionIndexOrDMABufID
    }

    /// The query for plane `drmPlaneType` exposed as `kind` (`.dmabuf` or `.region`),
    /// or a probe when `probe` is true.
    public static func query(drmPlaneType: UInt32, kind: GFXPlaneFlags, probe: Bool = false) -> GFXPlaneInfo {
        GFXPlaneInfo(flags: probe ? kind.union(.probe) : kind, drmPlaneType: drmPlaneType)
    }

    /// The region index, when the plane is exposed as a region.
    public var regionIndex: UInt32? { flags.contains(.region) ? regionIndexOrDMABufID : nil }
    /// The dma-buf id for `VFIO_DEVICE_GET_GFX_DMABUF`, when the plane is exposed as a dma-buf.
    public var dmabufID: UInt32? { flags.contains(.dmabuf) ? regionIndexOrDMABufID : nil }

    /// Whether the guest has disabled the plane (the device reports a zero format and size).
    public var isDisabled: Bool { drmFormat == 0 && size == 0 && width == 0 && height == 0 }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.u32(drmPlaneType)
        writer.u32(drmFormat)
        writer.u64(drmFormatModifier)
        writer.u32(width)
        writer.u32(height)
        writer.u32(stride)
        writer.u32(size)
        writer.u32(xPos)
        writer.u32(yPos)
        writer.u32(xHot)
        writer.u32(yHot)
        writer.u32(regionIndexOrDMABufID)
        writer.u32(0)  // reserved
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        flags = GFXPlaneFlags(rawValue: try reader.u32())
        drmPlaneType = try reader.u32()
        drmFormat = try reader.u32()
        drmFormatModifier = try reader.u64()
        width = try reader.u32()
        height = try reader.u32()
        stride = try reader.u32()
        size = try reader.u32()
        xPos = try reader.u32()
        yPos = try reader.u32()
        xHot = try reader.u32()
        yHot = try reader.u32()
        regionIndexOrDMABufID = try reader.u32()
        try reader.skip(4)  // reserved
        InfoChainCodec.finish(&reader, start: start, argsz: argsz)
    }
}
