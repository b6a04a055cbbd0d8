/// The device API strings a mediated device type reports in its `device_api` sysfs
/// attribute (`VFIO_DEVICE_API_*_STRING`), one per bus flag of `vfio_device_info`.
///
/// Linux 6.14 defines strings for PCI, platform, AMBA, CCW and AP only; fsl-mc and CDX
/// devices have a flag but no string.
public enum DeviceAPI: String, Sendable, CaseIterable {
    /// `VFIO_DEVICE_API_PCI_STRING`
    case pci = "vfio-pci"
    /// `VFIO_DEVICE_API_PLATFORM_STRING`
    case platform = "vfio-platform"
    /// `VFIO_DEVICE_API_AMBA_STRING`
    case amba = "vfio-amba"
    /// `VFIO_DEVICE_API_CCW_STRING`
    case ccw = "vfio-ccw"
    /// `VFIO_DEVICE_API_AP_STRING`
    case ap = "vfio-ap"

    /// The C constant's name, e.g. `VFIO_DEVICE_API_PCI_STRING`.
    public var cName: String {
        switch self {
        case .pci: return "VFIO_DEVICE_API_PCI_STRING"
        case .platform: return "VFIO_DEVICE_API_PLATFORM_STRING"
        case .amba: return "VFIO_DEVICE_API_AMBA_STRING"
        case .ccw: return "VFIO_DEVICE_API_CCW_STRING"
        case .ap: return "VFIO_DEVICE_API_AP_STRING"
        }
    }

    /// The `vfio_device_info` flag that goes with this API.
    public var deviceFlag: DeviceInfoFlags {
        switch self {
        case .pci: return .pci
        case .platform: return .platform
        case .amba: return .amba
        case .ccw: return .ccw
        case .ap: return .ap
        }
    }
}
