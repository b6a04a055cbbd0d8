/// `data_type` of `struct iommu_hwpt_invalidate` (`enum iommu_hwpt_invalidate_data_type`):
/// the format of every entry of the request array.
public enum IOMMUFDInvalidateDataType: UInt32, Sendable, CaseIterable {
    /// `IOMMU_HWPT_INVALIDATE_DATA_VTD_S1`: `struct iommu_hwpt_vtd_s1_invalidate`
    /// (`IOMMUFDVTDS1Invalidate`), for a nested VT-d HWPT.
    case vtdS1 = 0
    /// `IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3`: `struct iommu_viommu_arm_smmuv3_invalidate`
    /// (`IOMMUFDARMSMMUv3Invalidate`), for an SMMUv3 vIOMMU.
    case viommuARMSMMUv3 = 1
}

/// `IOMMU_HWPT_INVALIDATE` (`struct iommu_hwpt_invalidate`, 32 bytes): flush caches of a
/// user-managed HWPT or of a vIOMMU after the guest changed its tables.
///
/// Layout: `size` at 0, `hwpt_id` at 4, `data_uptr` at 8, `data_type` at 16, `entry_len`
/// at 20, `entry_num` at 24 (in: entries; out: entries handled), `__reserved` at 28.
/// `entry_num` 0 only asks whether `data_type` is supported.
public struct IOMMUFDHWPTInvalidate: ArgszStruct {
    public static let cName = "iommu_hwpt_invalidate"
    /// `sizeof(struct iommu_hwpt_invalidate)`
    public static let fixedSize = 32

    /// A nested HWPT or a vIOMMU.
    public var hwptID: UInt32
    /// The user address of the entry array, an integer the caller supplies.
    public var dataUptr: UInt64
    public var dataType: IOMMUFDInvalidateDataType
    /// The size in bytes of one entry.
    public var entryLength: UInt32
    /// In: the number of entries. Out: the number the kernel handled.
    public var entryCount: UInt32

    public init(hwptID: UInt32, dataUptr: UInt64, dataType: IOMMUFDInvalidateDataType, entryLength: UInt32, entryCount: UInt32) {
        self.hwptID = hwptID
        self.dataUptr = dataUptr
        self.dataType = dataType
        self.entryLength = entryLength
        self.entryCount = entryCount
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(hwptID)
        writer.u64(dataUptr)
        writer.u32(dataType.rawValue)
        writer.u32(entryLength)
        writer.u32(entryCount)
        writer.u32(0)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for an unknown `data_type` or a non-zero `__reserved`.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        hwptID = try reader.u32()
        dataUptr = try reader.u64()
        dataType = try reader.iommufdEnum(IOMMUFDInvalidateDataType.self, "data_type")
        entryLength = try reader.u32()
        entryCount = try reader.u32()
        try reader.iommufdReserved32()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `flags` of `struct iommu_hwpt_vtd_s1_invalidate` (`enum iommu_hwpt_vtd_s1_invalidate_flags`).
public struct IOMMUFDVTDS1InvalidateFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IOMMU_VTD_INV_FLAGS_LEAF`: only the leaf PTE caches need flushing.
    public static let leaf = IOMMUFDVTDS1InvalidateFlags(rawValue: 1 << 0)
}

/// One VT-d stage-1 invalidation (`struct iommu_hwpt_vtd_s1_invalidate`, 24 bytes):
/// `addr` at 0 (4 KiB aligned), `npages` at 8 (4 KiB pages), `flags` at 16,
/// `__reserved` at 20. `addr` 0 with `npages` `UInt64.max` flushes everything.
public struct IOMMUFDVTDS1Invalidate: KernelStruct, Hashable {
    public static let cName = "iommu_hwpt_vtd_s1_invalidate"
    /// `sizeof(struct iommu_hwpt_vtd_s1_invalidate)`
    public static let fixedSize = 24

    public var address: UInt64
    public var pageCount: UInt64
    public var flags: IOMMUFDVTDS1InvalidateFlags

    public init(address: UInt64, pageCount: UInt64, flags: IOMMUFDVTDS1InvalidateFlags = []) {
        self.address = address
        self.pageCount = pageCount
        self.flags = flags
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(address)
        writer.u64(pageCount)
        writer.u32(flags.rawValue)
        writer.u32(0)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        address = try reader.u64()
        pageCount = try reader.u64()
        flags = IOMMUFDVTDS1InvalidateFlags(rawValue: try reader.u32())
        try reader.iommufdReserved32()
    }
}

/// One SMMUv3 command for a vIOMMU (`struct iommu_viommu_arm_smmuv3_invalidate`, 16 bytes):
/// the 128-bit CMDQ command as two little-endian double words (`cmd[0]` at 0, `cmd[1]` at 8).
/// Commands outside the TLBI/ATC/CFGI_CD set the kernel supports give `EIO`.
public struct IOMMUFDARMSMMUv3Invalidate: KernelStruct, Hashable {
    public static let cName = "iommu_viommu_arm_smmuv3_invalidate"
    /// `sizeof(struct iommu_viommu_arm_smmuv3_invalidate)`
    public static let fixedSize = 16

    public var command: (UInt64, UInt64)

    public init(command: (UInt64, UInt64)) { self.command = command }

    public static func == (a: Self, b: Self) -> Bool { a.command == b.command }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(command.0)
        hasher.combine(command.1)
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(command.0)
        writer.u64(command.1)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        command = (try reader.u64(), try reader.u64())
    }
}
