/// A region's `type` and `subtype` (`struct vfio_region_info_cap_type`): what a
/// device-specific region holds.
///
/// Types are global per bus driver. A PCI vendor type is `VFIO_REGION_TYPE_PCI_VENDOR_TYPE`
/// with the vendor id in the low 16 bits; its subtypes are the vendor's.
public struct RegionType: Sendable, Hashable, CustomStringConvertible {
    public var type: UInt32
    public var subtype: UInt32

    public init(type: UInt32, subtype: UInt32) {
        self.type = type
        self.subtype = subtype
    }

    /// `VFIO_REGION_TYPE_PCI_VENDOR_TYPE`: the bit that marks a PCI vendor type.
    public static let pciVendorTypeBit: UInt32 = 1 << 31
    /// `VFIO_REGION_TYPE_PCI_VENDOR_MASK`: the vendor id's bits in a PCI vendor type.
    public static let pciVendorMask: UInt32 = 0xffff
    /// `VFIO_REGION_TYPE_GFX`
    public static let gfxType: UInt32 = 1
    /// `VFIO_REGION_TYPE_CCW`
    public static let ccwType: UInt32 = 2
    /// `VFIO_REGION_TYPE_MIGRATION_DEPRECATED`: the v1 migration region (removed in 5.18).
    public static let migrationDeprecatedType: UInt32 = 3

    /// The type for PCI vendor `vendor`'s regions.
    public static func pciVendorType(_ vendor: UInt16) -> UInt32 { pciVendorTypeBit | UInt32(vendor) }

    /// The PCI vendor id when `type` is a PCI vendor type, else `nil`.
    public var pciVendor: UInt16? {
        type & Self.pciVendorTypeBit != 0 ? UInt16(type & Self.pciVendorMask) : nil
    }

    /// `VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION` (vendor 8086): the IGD OpRegion.
    public static let intelIGDOpRegion = RegionType(type: pciVendorType(0x8086), subtype: 1)
    /// `VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG` (vendor 8086): the host bridge's config space.
    public static let intelIGDHostConfig = RegionType(type: pciVendorType(0x8086), subtype: 2)
    /// `VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG` (vendor 8086): the LPC bridge's config space.
    public static let intelIGDLPCConfig = RegionType(type: pciVendorType(0x8086), subtype: 3)
    /// `VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM` (vendor 10de, deprecated): NVLink2 GPU RAM.
    public static let nvidiaNVLink2RAM = RegionType(type: pciVendorType(0x10de), subtype: 1)
    /// `VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD` (vendor 1014, deprecated): the NPU's ATSD register.
    public static let ibmNVLink2ATSD = RegionType(type: pciVendorType(0x1014), subtype: 1)
    /// `VFIO_REGION_SUBTYPE_GFX_EDID`: the EDID region (`GFXEDIDRegion` is its register block).
    public static let gfxEDID = RegionType(type: gfxType, subtype: 1)
    /// `VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD`: halt/clear subchannel commands.
    public static let ccwAsyncCommand = RegionType(type: ccwType, subtype: 1)
    /// `VFIO_REGION_SUBTYPE_CCW_SCHIB`: the subchannel information block.
    public static let ccwSCHIB = RegionType(type: ccwType, subtype: 2)
    /// `VFIO_REGION_SUBTYPE_CCW_CRW`: channel report words.
    public static let ccwCRW = RegionType(type: ccwType, subtype: 3)
    /// `VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED`: the v1 migration region
    /// (`struct vfio_device_migration_info`).
    public static let migrationDeprecated = RegionType(type: migrationDeprecatedType, subtype: 1)

    /// Every type/subtype pair Linux 6.14 names, with the subtype's C name.
    public static let known: [(RegionType, String)] = [
        (.intelIGDOpRegion, "VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION"),
        (.intelIGDHostConfig, "VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG"),
        (.intelIGDLPCConfig, "VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG"),
        (.nvidiaNVLink2RAM, "VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM"),
        (.ibmNVLink2ATSD, "VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD"),
        (.gfxEDID, "VFIO_REGION_SUBTYPE_GFX_EDID"),
        (.ccwAsyncCommand, "VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD"),
        (.ccwSCHIB, "VFIO_REGION_SUBTYPE_CCW_SCHIB"),
        (.ccwCRW, "VFIO_REGION_SUBTYPE_CCW_CRW"),
        (.migrationDeprecated, "VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED"),
    ]

    /// The subtype's C name when the pair is one Linux names, else `nil`.
    public var cName: String? {
        for (candidate, name) in Self.known where candidate == self { return name }
        return nil
    }

    /// The C name's tail (`GFX_EDID`), or `type 0x…:subtype N` for pairs without a name.
    public var description: String {
        if let cName { return String(cName.dropFirst("VFIO_REGION_SUBTYPE_".count)) }
        if let vendor = pciVendor {
            return "pci-vendor 0x\(String(vendor, radix: 16)):subtype \(subtype)"
        }
        return "type \(type):subtype \(subtype)"
    }
}
