/// The register block at the start of a `VFIO_REGION_SUBTYPE_GFX_EDID` region
/// (`struct vfio_region_gfx_edid`), through which the user sets a virtual monitor's EDID.
///
/// It is not an ioctl argument: it is read and written with `pread`/`pwrite` on the device
/// fd at the region's offset (each field alone at its `…Offset`). To change the EDID: write
/// `linkState = linkDown`, write the blob at `edidOffset` and its length to `edidSize`,
/// then write `linkState = linkUp`.
public struct GFXEDIDRegion: KernelStruct {
    public static let cName = "vfio_region_gfx_edid"
    /// `sizeof(struct vfio_region_gfx_edid)`
    public static let fixedSize = 24

    /// `VFIO_DEVICE_GFX_LINK_STATE_UP`: the monitor is on.
    public static let linkUp: UInt32 = 1
    /// `VFIO_DEVICE_GFX_LINK_STATE_DOWN`: the monitor is off.
    public static let linkDown: UInt32 = 2

    /// Byte offsets of the registers within the region.
    public static let edidOffsetOffset = 0
    public static let edidMaxSizeOffset = 4
    public static let edidSizeOffset = 8
    public static let maxXResOffset = 12
    public static let maxYResOffset = 16
    public static let linkStateOffset = 20

    /// Where the EDID blob sits, from the start of the region (read-only).
    public var edidOffset: UInt32
    /// The largest EDID blob the region takes (read-only).
    public var edidMaxSize: UInt32
    /// The current blob's length (read/write).
    public var edidSize: UInt32
    /// The widest display mode, 0 for no limit (read-only).
    public var maxXRes: UInt32
    /// The tallest display mode, 0 for no limit (read-only).
    public var maxYRes: UInt32
    /// `linkUp` or `linkDown` (read/write); other values are kept as read.
    public var linkState: UInt32

    public init(edidOffset: UInt32, edidMaxSize: UInt32, edidSize: UInt32, maxXRes: UInt32, maxYRes: UInt32, linkState: UInt32) {
        self.edidOffset = edidOffset
        self.edidMaxSize = edidMaxSize
        self.edidSize = edidSize
        self.maxXRes = maxXRes
        self.maxYRes = maxYRes
        self.linkState = linkState
    }

    /// Whether the link is up (`linkState == linkUp`).
    public var isLinkUp: Bool { linkState == Self.linkUp }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(edidOffset)
        writer.u32(edidMaxSize)
        writer.u32(edidSize)
        writer.u32(maxXRes)
        writer.u32(maxYRes)
        writer.u32(linkState)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        edidOffset = try reader.u32()
        edidMaxSize = try reader.u32()
        edidSize = try reader.u32()
        maxXRes = try reader.u32()
        maxYRes = try reader.u32()
        linkState = try reader.u32()
    }
}
