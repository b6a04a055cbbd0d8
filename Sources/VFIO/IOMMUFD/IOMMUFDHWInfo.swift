/// `out_data_type` of `struct iommu_hw_info` (`enum iommu_hw_info_type`): the format of
/// the IOMMU-specific data written at `data_uptr`.
public enum IOMMUFDHWInfoType: UInt32, Sendable, CaseIterable {
    /// `IOMMU_HW_INFO_TYPE_NONE`: the driver reports no data.
    case none = 0
    /// `IOMMU_HW_INFO_TYPE_INTEL_VTD`: `struct iommu_hw_info_vtd` (`IOMMUFDHWInfoVTD`).
    case intelVTD = 1
    /// `IOMMU_HW_INFO_TYPE_ARM_SMMUV3`: `struct iommu_hw_info_arm_smmuv3` (`IOMMUFDHWInfoARMSMMUv3`).
    case armSMMUv3 = 2
}

/// `out_capabilities` of `struct iommu_hw_info` (`enum iommufd_hw_capabilities`).
public struct IOMMUFDHWCapabilities: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// `IOMMU_HW_CAP_DIRTY_TRACKING`: the IOMMU tracks dirty pages;
    /// `IOMMU_HWPT_SET_DIRTY_TRACKING` and `IOMMU_HWPT_GET_DIRTY_BITMAP` work.
    public static let dirtyTracking = IOMMUFDHWCapabilities(rawValue: 1 << 0)
    /// `IOMMU_HW_CAP_PCI_PASID_EXEC` (Linux 6.15; in 6.12.y stable, e.g. Debian's
    /// 6.12.95): the device's PASID capability has Execute Permission enabled.
    public static let pciPASIDExec = IOMMUFDHWCapabilities(rawValue: 1 << 1)
    /// `IOMMU_HW_CAP_PCI_PASID_PRIV` (Linux 6.15; in 6.12.y stable): Privileged Mode enabled.
    public static let pciPASIDPriv = IOMMUFDHWCapabilities(rawValue: 1 << 2)
}

/// `IOMMU_GET_HW_INFO` (`struct iommu_hw_info`, 40 bytes): read the IOMMU facts behind a
/// bound device, for building a matching virtual IOMMU.
///
/// Layout: `size` at 0, `flags` at 4 (must be 0), `dev_id` at 8, `data_len` at 12,
/// `data_uptr` at 16, `out_data_type` at 24, `__reserved` at 28 (a `__u32` in 6.14),
/// `out_capabilities` at 32. Linux 6.15 made byte 28 `__u8 out_max_pasid_log2` (bytes
/// 29-31 stay reserved), and 6.12.y stable kernels (Debian's 6.12.95, the test guest's)
/// carry that change: the decoder reads byte 28 as `outMaxPASIDLog2`, 0 on 6.14.
///
/// `dataLength` is in: the buffer's size (0 is allowed), and out: the size of the data the
/// kernel has. A larger buffer is zero-filled past the data, a smaller one truncates it.
public struct IOMMUFDHWInfo: ArgszStruct {
    public static let cName = "iommu_hw_info"
    /// `sizeof(struct iommu_hw_info)`
    public static let fixedSize = 40

    public var deviceID: UInt32
    /// In: the buffer's size in bytes. Out: the size of the data.
    public var dataLength: UInt32
    /// The user address of the buffer for the IOMMU-specific data.
    public var dataUptr: UInt64
    /// Out: how to read that data.
    public var outDataType: IOMMUFDHWInfoType
    /// Out: generic capabilities. Unknown bits are kept.
    public var outCapabilities: IOMMUFDHWCapabilities
    /// Out (`out_max_pasid_log2`, byte 28; reserved, 0, in 6.14): log2 of the PASIDs
    /// the device has enabled, 0 without PASID.
    public var outMaxPASIDLog2: UInt8

    public init(deviceID: UInt32, dataLength: UInt32, dataUptr: UInt64,
                outDataType: IOMMUFDHWInfoType = .none, outCapabilities: IOMMUFDHWCapabilities = [], outMaxPASIDLog2: UInt8 = 0) {
        self.deviceID = deviceID
        self.dataLength = dataLength
        self.dataUptr = dataUptr
        self.outDataType = outDataType
        self.outCapabilities = outCapabilities
        self.outMaxPASIDLog2 = outMaxPASIDLog2
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(0) // flags
        writer.u32(deviceID)
        writer.u32(dataLength)
        writer.u64(dataUptr)
        writer.u32(outDataType.rawValue)
        writer.u8(outMaxPASIDLog2)
        writer.u8(0)
        writer.u16(0)
        writer.u64(outCapabilities.rawValue)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for non-zero `flags` or `__reserved` (bytes 29-31), or an
    ///   `out_data_type` Linux 6.14 does not define.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        try reader.iommufdZeroFlags()
        deviceID = try reader.u32()
        dataLength = try reader.u32()
        dataUptr = try reader.u64()
        outDataType = try reader.iommufdEnum(IOMMUFDHWInfoType.self, "out_data_type")
        outMaxPASIDLog2 = try reader.u8()
        let reserved = try reader.u8()
        if reserved != 0 { throw .malformed(reader.context, "__reserved is 0x\(String(reserved, radix: 16)), must be 0") }
        try reader.iommufdReserved16()
        outCapabilities = IOMMUFDHWCapabilities(rawValue: try reader.u64())
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `flags` of `struct iommu_hw_info_vtd` (`enum iommu_hw_info_vtd_flags`).
public struct IOMMUFDHWInfoVTDFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17`: read-only mappings are refused on a
    /// nesting-parent domain (Intel erratum 772415).
    public static let errata772415SPR17 = IOMMUFDHWInfoVTDFlags(rawValue: 1 << 0)
}

/// The Intel VT-d data of `IOMMU_GET_HW_INFO` (`struct iommu_hw_info_vtd`, 24 bytes):
/// `flags` at 0, `__reserved` at 4, `cap_reg` at 8, `ecap_reg` at 16 (the raw VT-d
/// capability and extended capability registers).
public struct IOMMUFDHWInfoVTD: KernelStruct, Hashable {
    public static let cName = "iommu_hw_info_vtd"
    /// `sizeof(struct iommu_hw_info_vtd)`
    public static let fixedSize = 24

    public var flags: IOMMUFDHWInfoVTDFlags
    public var capabilityRegister: UInt64
    public var extendedCapabilityRegister: UInt64

    public init(flags: IOMMUFDHWInfoVTDFlags, capabilityRegister: UInt64, extendedCapabilityRegister: UInt64) {
        self.flags = flags
        self.capabilityRegister = capabilityRegister
        self.extendedCapabilityRegister = extendedCapabilityRegister
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(flags.rawValue)
        writer.u32(0)
        writer.u64(capabilityRegister)
        writer.u64(extendedCapabilityRegister)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        flags = IOMMUFDHWInfoVTDFlags(rawValue: try reader.u32())
        try reader.iommufdReserved32()
        capabilityRegister = try reader.u64()
        extendedCapabilityRegister = try reader.u64()
    }
}

/// The ARM SMMUv3 data of `IOMMU_GET_HW_INFO` (`struct iommu_hw_info_arm_smmuv3`, 40 bytes):
/// `flags` at 0, `__reserved` at 4, `idr[6]` at 8, `iidr` at 32, `aidr` at 36 (raw SMMU
/// ID registers; only the fields the header lists are meaningful to a VMM).
public struct IOMMUFDHWInfoARMSMMUv3: KernelStruct, Hashable {
    public static let cName = "iommu_hw_info_arm_smmuv3"
    /// `sizeof(struct iommu_hw_info_arm_smmuv3)`
    public static let fixedSize = 40

    /// `flags`; none are defined (0).
    public var flags: UInt32
    /// `IDR0` ... `IDR5`, always six entries.
    public var idr: [UInt32]
    public var iidr: UInt32
    public var aidr: UInt32

    /// - Precondition: `idr` has six entries.
    public init(flags: UInt32 = 0, idr: [UInt32], iidr: UInt32, aidr: UInt32) {
        precondition(idr.count == 6, "SMMUv3 reports six IDR registers")
        self.flags = flags
        self.idr = idr
        self.iidr = iidr
        self.aidr = aidr
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(flags)
        writer.u32(0)
        for index in 0..<6 { writer.u32(index < idr.count ? idr[index] : 0) }
        writer.u32(iidr)
        writer.u32(aidr)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        flags = try reader.u32()
        try reader.iommufdReserved32()
        var registers: [UInt32] = []
        for _ in 0..<6 { registers.append(try reader.u32()) }
        idr = registers
        iidr = try reader.u32()
        aidr = try reader.u32()
    }
}
