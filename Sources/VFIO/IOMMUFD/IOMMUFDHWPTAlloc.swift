/// `flags` of `struct iommu_hwpt_alloc` (`enum iommufd_hwpt_alloc_flags`).
public struct IOMMUFDHWPTAllocFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IOMMU_HWPT_ALLOC_NEST_PARENT`: the HWPT may serve as the parent (stage 2) of nested
    /// HWPTs or back a vIOMMU.
    public static let nestParent = IOMMUFDHWPTAllocFlags(rawValue: 1 << 0)
    /// `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`: require IOMMU dirty tracking on every device
    /// attached (`EOPNOTSUPP` when the IOMMU lacks it).
    public static let dirtyTracking = IOMMUFDHWPTAllocFlags(rawValue: 1 << 1)
    /// `IOMMU_HWPT_FAULT_ID_VALID`: `fault_id` names a fault queue for I/O page faults.
    /// `IOMMUFDHWPTAlloc` sets it itself when `faultID` is non-nil.
    public static let faultIDValid = IOMMUFDHWPTAllocFlags(rawValue: 1 << 2)
    /// `IOMMU_HWPT_ALLOC_PASID` (Linux 6.15; 6.14 answers `EOPNOTSUPP`): the domain may be
    /// attached to PASIDs of the device (`EOPNOTSUPP` when the IOMMU cannot).
    public static let pasid = IOMMUFDHWPTAllocFlags(rawValue: 1 << 3)

    /// Every flag Linux 6.15 defines (6.14 has the first three); other bits give `EOPNOTSUPP`.
    public static let known: IOMMUFDHWPTAllocFlags = [.nestParent, .dirtyTracking, .faultIDValid, .pasid]
}

/// `data_type` of `struct iommu_hwpt_alloc` (`enum iommu_hwpt_data_type`): the format of
/// the driver data describing a user-managed (nested, stage-1) page table.
public enum IOMMUFDHWPTDataType: UInt32, Sendable, CaseIterable {
    /// `IOMMU_HWPT_DATA_NONE`: a kernel-managed HWPT over an IOAS; no data.
    case none = 0
    /// `IOMMU_HWPT_DATA_VTD_S1`: `struct iommu_hwpt_vtd_s1` (`IOMMUFDHWPTVTDS1`).
    case vtdS1 = 1
    /// `IOMMU_HWPT_DATA_ARM_SMMUV3`: `struct iommu_hwpt_arm_smmuv3` (`IOMMUFDHWPTARMSMMUv3`).
    case armSMMUv3 = 2
}

/// `IOMMU_HWPT_ALLOC` (`struct iommu_hwpt_alloc`, 48 bytes): allocate a hardware page
/// table for a device, either kernel-managed over an IOAS (`pt_id` = IOAS, no data) or
/// user-managed nested under a parent HWPT or vIOMMU (`pt_id` = parent, with driver data).
///
/// Layout: `size` at 0, `flags` at 4, `dev_id` at 8, `pt_id` at 12, `out_hwpt_id` at 16,
/// `__reserved` at 20, `data_type` at 24, `data_len` at 28, `data_uptr` at 32,
/// `fault_id` at 40, `__reserved2` at 44.
public struct IOMMUFDHWPTAlloc: ArgszStruct {
    public static let cName = "iommu_hwpt_alloc"
    /// `sizeof(struct iommu_hwpt_alloc)`
    public static let fixedSize = 48

    /// `.nestParent`, `.dirtyTracking`, `.pasid`. `.faultIDValid` follows `faultID` and
    /// is never stored here.
    public var flags: IOMMUFDHWPTAllocFlags {
        get { storedFlags }
        set { storedFlags = newValue.subtracting(.faultIDValid) }
    }
    private var storedFlags: IOMMUFDHWPTAllocFlags
    /// The device (the id `VFIO_DEVICE_BIND_IOMMUFD` returned).
    public var deviceID: UInt32
    /// The IOAS, parent HWPT or vIOMMU to build on.
    public var parentID: UInt32
    /// Out: the new HWPT's id.
    public var outHWPTID: UInt32
    public var dataType: IOMMUFDHWPTDataType
    /// The length in bytes of the driver data at `dataUptr`.
    public var dataLength: UInt32
    /// The user address of the driver data, an integer the caller supplies.
    public var dataUptr: UInt64
    /// The fault queue (`IOMMU_FAULT_QUEUE_ALLOC`) that receives this HWPT's page faults.
    public var faultID: UInt32?

    public init(flags: IOMMUFDHWPTAllocFlags = [], deviceID: UInt32, parentID: UInt32, outHWPTID: UInt32 = 0,
                dataType: IOMMUFDHWPTDataType = .none, dataLength: UInt32 = 0, dataUptr: UInt64 = 0, faultID: UInt32? = nil) {
        self.storedFlags = flags.subtracting(.faultIDValid)
        self.deviceID = deviceID
        self.parentID = parentID
        self.outHWPTID = outHWPTID
        self.dataType = dataType
        self.dataLength = dataLength
        self.dataUptr = dataUptr
        self.faultID = faultID
    }

    /// The flags as written to the wire.
    public var wireFlags: IOMMUFDHWPTAllocFlags {
        faultID == nil ? storedFlags : storedFlags.union(.faultIDValid)
    }

    /// Throws `.invalidArgument` for what the kernel refuses up front: unknown flags
    /// (`EOPNOTSUPP`), a non-zero `data_len` with `IOMMU_HWPT_DATA_NONE` or a zero one
    /// with a driver data type (`EINVAL`).
    public func validate() throws(VFIOError) {
        if let why = Self.problem(wireFlags, dataType, dataLength, dataUptr) { throw .invalidArgument(Self.cName, why) }
    }

    static func problem(_ flags: IOMMUFDHWPTAllocFlags, _ type: IOMMUFDHWPTDataType, _ length: UInt32, _ uptr: UInt64) -> String? {
        let unknown = flags.subtracting(.known)
        if !unknown.isEmpty { return "unknown flag bits 0x\(String(unknown.rawValue, radix: 16))" }
        if type == .none && length != 0 {
            return "IOMMU_HWPT_DATA_NONE takes no data, got data_len \(length)"
        }
        if type != .none && length == 0 {
            return "data type \(type) needs data (data_len is 0)"
        }
        return nil
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(wireFlags.rawValue)
        writer.u32(deviceID)
        writer.u32(parentID)
        writer.u32(outHWPTID)
        writer.u32(0)
        writer.u32(dataType.rawValue)
        writer.u32(dataLength)
        writer.u64(dataUptr)
        writer.u32(faultID ?? 0)
        writer.u32(0)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for unknown flags or data type, non-zero reserved words, or
    ///   data that does not match the data type. Without FAULT_ID_VALID `fault_id` is
    ///   ignored, as the kernel ignores it.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        let flags = try reader.iommufdFlags(IOMMUFDHWPTAllocFlags.self, known: .known)
        storedFlags = flags.subtracting(.faultIDValid)
        deviceID = try reader.u32()
        parentID = try reader.u32()
        outHWPTID = try reader.u32()
        try reader.iommufdReserved32()
        dataType = try reader.iommufdEnum(IOMMUFDHWPTDataType.self, "data_type")
        dataLength = try reader.u32()
        dataUptr = try reader.u64()
        let fault = try reader.u32()
        faultID = flags.contains(.faultIDValid) ? fault : nil
        try reader.iommufdReserved32("__reserved2")
        if let why = Self.problem(flags, dataType, dataLength, dataUptr) { throw .malformed(Self.cName, why) }
        reader.iommufdFinish(start: start, size: size)
    }
}
