/// `type` of `struct iommu_viommu_alloc` (`enum iommu_viommu_type`).
public enum IOMMUFDViommuType: UInt32, Sendable, CaseIterable {
    /// `IOMMU_VIOMMU_TYPE_DEFAULT`: reserved for future use; no driver implements it in 6.14.
    case `default` = 0
    /// `IOMMU_VIOMMU_TYPE_ARM_SMMUV3`: an ARM SMMUv3 vIOMMU.
    case armSMMUv3 = 1
}

/// `IOMMU_VIOMMU_ALLOC` (`struct iommu_viommu_alloc`, 24 bytes in Linux 6.14): create a
/// virtual IOMMU, the slice of a physical IOMMU one VM owns, over a nesting-parent HWPT.
///
/// Layout: `size` at 0, `flags` at 4 (must be 0), `type` at 8, `dev_id` at 12,
/// `hwpt_id` at 16, `out_viommu_id` at 20. (Later kernels append driver data fields;
/// they accept this 24-byte form unchanged.)
public struct IOMMUFDViommuAlloc: ArgszStruct {
    public static let cName = "iommu_viommu_alloc"
    /// `sizeof(struct iommu_viommu_alloc)` in Linux 6.14.
    public static let fixedSize = 24

    public var type: IOMMUFDViommuType
    /// A device behind the physical IOMMU the vIOMMU is carved from.
    public var deviceID: UInt32
    /// A HWPT allocated with `IOMMU_HWPT_ALLOC_NEST_PARENT`.
    public var hwptID: UInt32
    /// Out: the vIOMMU's id.
    public var outViommuID: UInt32

    public init(type: IOMMUFDViommuType, deviceID: UInt32, hwptID: UInt32, outViommuID: UInt32 = 0) {
        self.type = type
        self.deviceID = deviceID
        self.hwptID = hwptID
        self.outViommuID = outViommuID
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(0) // flags
        writer.u32(type.rawValue)
        writer.u32(deviceID)
        writer.u32(hwptID)
        writer.u32(outViommuID)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for non-zero `flags` or a `type` Linux 6.14 does not define.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        try reader.iommufdZeroFlags()
        type = try reader.iommufdEnum(IOMMUFDViommuType.self, "type")
        deviceID = try reader.u32()
        hwptID = try reader.u32()
        outViommuID = try reader.u32()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `IOMMU_VDEVICE_ALLOC` (`struct iommu_vdevice_alloc`, 24 bytes): give a device its
/// identity inside a vIOMMU (the vSID of SMMUv3, the vRID of VT-d...). Destroy the vDEVICE
/// with `IOMMU_DESTROY` before closing the device, or its id leaks until the iommufd closes.
///
/// Layout: `size` at 0, `viommu_id` at 4, `dev_id` at 8, `out_vdevice_id` at 12,
/// `virt_id` at 16.
public struct IOMMUFDVDeviceAlloc: ArgszStruct {
    public static let cName = "iommu_vdevice_alloc"
    /// `sizeof(struct iommu_vdevice_alloc)`
    public static let fixedSize = 24

    public var viommuID: UInt32
    public var deviceID: UInt32
    /// Out: the vDEVICE's id.
    public var outVDeviceID: UInt32
    /// The device's ID as the guest sees it in this vIOMMU.
    public var virtualID: UInt64

    public init(viommuID: UInt32, deviceID: UInt32, outVDeviceID: UInt32 = 0, virtualID: UInt64) {
        self.viommuID = viommuID
        self.deviceID = deviceID
        self.outVDeviceID = outVDeviceID
        self.virtualID = virtualID
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(viommuID)
        writer.u32(deviceID)
        writer.u32(outVDeviceID)
        writer.u64(virtualID)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        viommuID = try reader.u32()
        deviceID = try reader.u32()
        outVDeviceID = try reader.u32()
        virtualID = try reader.u64()
        reader.iommufdFinish(start: start, size: size)
    }
}
