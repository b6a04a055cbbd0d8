/// `flags` of `struct iommu_hwpt_vtd_s1` (`enum iommu_hwpt_vtd_s1_flags`).
public struct IOMMUFDVTDS1Flags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// `IOMMU_VTD_S1_SRE`: supervisor requests.
    public static let supervisorRequest = IOMMUFDVTDS1Flags(rawValue: 1 << 0)
    /// `IOMMU_VTD_S1_EAFE`: extended access flag.
    public static let extendedAccessFlag = IOMMUFDVTDS1Flags(rawValue: 1 << 1)
    /// `IOMMU_VTD_S1_WPE`: write protect.
    public static let writeProtect = IOMMUFDVTDS1Flags(rawValue: 1 << 2)
}

/// The driver data of an `IOMMU_HWPT_DATA_VTD_S1` HWPT (`struct iommu_hwpt_vtd_s1`,
/// 24 bytes): an Intel VT-d stage-1 page table in guest memory.
///
/// Layout: `flags` at 0 (`__aligned_u64`), `pgtbl_addr` at 8, `addr_width` at 16,
/// `__reserved` at 20 (must be 0).
public struct IOMMUFDHWPTVTDS1: KernelStruct, Hashable {
    public static let cName = "iommu_hwpt_vtd_s1"
    /// `sizeof(struct iommu_hwpt_vtd_s1)`
    public static let fixedSize = 24

    public var flags: IOMMUFDVTDS1Flags
    /// The stage-1 table's base address (a guest physical address, translated by the parent).
    public var pageTableAddress: UInt64
    /// The table's address width in bits.
    public var addressWidth: UInt32

    public init(flags: IOMMUFDVTDS1Flags, pageTableAddress: UInt64, addressWidth: UInt32) {
        self.flags = flags
        self.pageTableAddress = pageTableAddress
        self.addressWidth = addressWidth
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(flags.rawValue)
        writer.u64(pageTableAddress)
        writer.u32(addressWidth)
        writer.u32(0)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        flags = IOMMUFDVTDS1Flags(rawValue: try reader.u64())
        pageTableAddress = try reader.u64()
        addressWidth = try reader.u32()
        try reader.iommufdReserved32()
    }
}

/// The driver data of an `IOMMU_HWPT_DATA_ARM_SMMUV3` HWPT (`struct iommu_hwpt_arm_smmuv3`,
/// 16 bytes): the first two little-endian double words of the guest's Stream Table Entry
/// (`ste[0]` at 0, `ste[1]` at 8). The kernel answers `EIO` for an STE using fields it
/// does not allow.
public struct IOMMUFDHWPTARMSMMUv3: KernelStruct, Hashable {
    public static let cName = "iommu_hwpt_arm_smmuv3"
    /// `sizeof(struct iommu_hwpt_arm_smmuv3)`
    public static let fixedSize = 16

    /// The STE's double words 0 and 1.
    public var ste: (UInt64, UInt64)

    public init(ste: (UInt64, UInt64)) { self.ste = ste }

    public static func == (a: Self, b: Self) -> Bool { a.ste == b.ste }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(ste.0)
        hasher.combine(ste.1)
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(ste.0)
        writer.u64(ste.1)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        ste = (try reader.u64(), try reader.u64())
    }
}
