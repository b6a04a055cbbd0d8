import VFIO
import VFIOHost

/// What `vfio info` adds for a device opened through the kernel: the way in and, through
/// a container, its IOMMU model (no-IOMMU mode comes with its warning).
struct KernelTransportReport {
    var lines: [String] = []
    var fields: [(String, JSON)] = []

    /// Nil for a device not opened through the kernel.
    init?(device: any VFIODevice) {
        guard let host = device as? HostDevice else { return nil }
        switch host.binding {
        case .group(let container, let group):
            let model = container.model
            lines.append("  Kernel access: container, IOMMU group \(group.number) (\(model.groupPath(group.number)))")
            lines.append("  IOMMU model: \(model) (\(model.cName))")
            var kernel: [(String, JSON)] = [("access", .string("container")), ("group", .unsigned(UInt64(group.number))),
                                            ("iommu_model", .string(model.description)), ("iommu_model_c_name", .string(model.cName))]
            if model == .noIOMMU {
                lines.append("  Warning: " + NoIOMMU.warning)
                kernel.append(("warning", .string(NoIOMMU.warning)))
            }
            fields.append(("kernel", .object(kernel)))
        case .iommufd(_, let deviceID):
            lines.append("  Kernel access: iommufd (device cdev), device ID \(deviceID)")
            fields.append(("kernel", .object([("access", .string("iommufd")), ("device_id", .unsigned(UInt64(deviceID)))])))
        }
    }
}
