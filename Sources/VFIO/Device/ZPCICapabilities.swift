/// `struct vfio_device_info_cap_zpci_base` (`<linux/vfio_zdev.h>`): the s390 PCI
/// function's descriptive data.
///
/// Version 1 ends after `gid`; version 2 adds the function handle `fh`, which is `nil` in a
/// version-1 capability.
public struct ZPCIBase: Sendable, Equatable {
    /// The start of the DMA addresses the function may use.
    public var startDMA: UInt64
    /// The end (inclusive) of the DMA addresses the function may use.
    public var endDMA: UInt64
    /// Physical channel id.
    public var pchid: UInt16
    /// Virtual function number.
    public var vfn: UInt16
    /// Function measurement block length, in bytes.
    public var fmbLength: UInt16
    /// PCI function type.
    public var pft: UInt8
    /// PCI function group id.
    public var gid: UInt8
    /// PCI function handle (version 2 only).
    public var fh: UInt32?

    public init(startDMA: UInt64, endDMA: UInt64, pchid: UInt16, vfn: UInt16, fmbLength: UInt16, pft: UInt8, gid: UInt8, fh: UInt32? = nil) {
        self.startDMA = startDMA
        self.endDMA = endDMA
        self.pchid = pchid
        self.vfn = vfn
        self.fmbLength = fmbLength
        self.pft = pft
        self.gid = gid
        self.fh = fh
    }

    /// 2 when `fh` is present, else 1.
    public var version: UInt16 { fh == nil ? 1 : 2 }

    var body: [UInt8] {
        var writer = ByteWriter(capacity: 32)
        writer.u64(startDMA)
        writer.u64(endDMA)
        writer.u16(pchid)
        writer.u16(vfn)
        writer.u16(fmbLength)
        writer.u8(pft)
        writer.u8(gid)
        if let fh { writer.u32(fh) }
        return writer.bytes
    }

    init(body: [UInt8], version: UInt16) throws(VFIOError) {
        var reader = ByteReader(body, context: "vfio_device_info_cap_zpci_base")
        startDMA = try reader.u64()
        endDMA = try reader.u64()
        pchid = try reader.u16()
        vfn = try reader.u16()
        fmbLength = try reader.u16()
        pft = try reader.u8()
        gid = try reader.u8()
        fh = version >= 2 ? try reader.u32() : nil
    }
}

/// `struct vfio_device_info_cap_zpci_group` (`<linux/vfio_zdev.h>`): data about the group
/// of s390 PCI functions the device belongs to.
///
/// Version 1 ends after `version`; version 2 adds `imaxstbl`, which is `nil` in a
/// version-1 capability.
public struct ZPCIGroup: Sendable, Equatable {
    /// `VFIO_DEVICE_INFO_ZPCI_FLAG_REFRESH`: the guest must refresh the IOTLB itself.
    public static let flagRefresh: UInt64 = 1

    /// DMA address space mask.
    public var dasm: UInt64
    /// The MSI address.
    public var msiAddress: UInt64
    /// `VFIO_DEVICE_INFO_ZPCI_FLAG_*` bits.
    public var flags: UInt64
    /// Measurement block update interval.
    public var mui: UInt16
    /// The largest number of MSIs.
    public var noi: UInt16
    /// Maximum store block length.
    public var maxstbl: UInt16
    /// Supported PCI version.
    public var pciVersion: UInt8
    /// Maximum interpreted store block length (version 2 only).
    public var imaxstbl: UInt16?

    public init(dasm: UInt64, msiAddress: UInt64, flags: UInt64, mui: UInt16, noi: UInt16, maxstbl: UInt16, pciVersion: UInt8, imaxstbl: UInt16? = nil) {
        self.dasm = dasm
        self.msiAddress = msiAddress
        self.flags = flags
        self.mui = mui
        self.noi = noi
        self.maxstbl = maxstbl
        self.pciVersion = pciVersion
        self.imaxstbl = imaxstbl
    }

    /// 2 when `imaxstbl` is present, else 1.
    public var version: UInt16 { imaxstbl == nil ? 1 : 2 }

    var body: [UInt8] {
        var writer = ByteWriter(capacity: 40)
        writer.u64(dasm)
        writer.u64(msiAddress)
        writer.u64(flags)
        writer.u16(mui)
        writer.u16(noi)
        writer.u16(maxstbl)
        writer.u8(pciVersion)
        if let imaxstbl {
            writer.u8(0)  // reserved
            writer.u16(imaxstbl)
        }
        return writer.bytes
    }

    init(body: [UInt8], version: UInt16) throws(VFIOError) {
        var reader = ByteReader(body, context: "vfio_device_info_cap_zpci_group")
        dasm = try reader.u64()
        msiAddress = try reader.u64()
        flags = try reader.u64()
        mui = try reader.u16()
        noi = try reader.u16()
        maxstbl = try reader.u16()
        pciVersion = try reader.u8()
        if version >= 2 {
            try reader.skip(1)
            imaxstbl = try reader.u16()
        } else {
            imaxstbl = nil
        }
    }
}
