import VFIO
import VFIOSystem

extension HostDevice {
    /// The iommufd and the device id `VFIO_DEVICE_BIND_IOMMUFD` returned.
    /// - Throws: `.unsupported` for a device opened through a group.
    public func iommufdBinding(_ operation: String) throws(VFIOError) -> (iommufd: IOMMUFD, deviceID: UInt32) {
        guard case .iommufd(let iommufd, let deviceID) = binding else {
            throw .unsupported(operation, "the device was opened through a group, not its cdev and iommufd")
        }
        return (iommufd, deviceID)
    }

    /// `IOMMU_GET_HW_INFO` for this device: its IOMMU's capabilities and registers.
    /// - Throws: `.unsupported` for a device opened through a group.
    public func iommuHardwareInfo() throws(VFIOError) -> IOMMUHardwareInfo {
        let (iommufd, deviceID) = try iommufdBinding("IOMMU_GET_HW_INFO")
        return try iommufd.hardwareInfo(deviceID: deviceID)
    }

    /// `IOMMU_HWPT_ALLOC`: a kernel-managed HWPT over `ioas` (the IOAS the device is
    /// attached to when nil) for this device; attach it with `attach(_: HWPT)`.
    /// - Throws: as `IOMMUFD.allocateHWPT`; `.unsupported` for a device opened through a
    ///   group or, with no `ioas`, attached to none.
    public func allocateHWPT(on ioas: IOAS? = nil, flags: IOMMUFDHWPTAllocFlags = [],
                             faultQueue: IOMMUFDFaultQueue? = nil) throws(VFIOError) -> HWPT {
        let (iommufd, deviceID) = try iommufdBinding("IOMMU_HWPT_ALLOC")
        let parent: IOAS
        if let ioas {
            parent = ioas
        } else if let current = try dmaSpace() as? IOAS {
            parent = current
        } else {
            throw .unsupported("IOMMU_HWPT_ALLOC", "the device is attached to no IOAS")
        }
        return try iommufd.allocateHWPT(deviceID: deviceID, ioas: parent, flags: flags, faultQueue: faultQueue)
    }
}
