import VFIO
import VFIOHost

/// `vfio info`'s iommufd part, for a kernel device opened through its cdev: the ids of
/// the binding and attachment, and what `IOMMU_GET_HW_INFO` says of its IOMMU (VT-d
/// registers decoded). Nil for a device reached another way.
struct IOMMUFDReport {
    var deviceID: UInt32
    var ioasID: UInt32?
    var pageTableID: UInt32?
    var hardware: Result<IOMMUHardwareInfo, VFIOError>

    init?(device: HostDevice) {
        guard case .iommufd(_, let deviceID) = device.binding else { return nil }
        self.deviceID = deviceID
        ioasID = (try? device.dmaSpace() as? IOAS)?.id
        pageTableID = device.attachedPageTableID
        hardware = Result { () throws(VFIOError) in try device.iommuHardwareInfo() }
    }

    static func typeName(_ type: IOMMUFDHWInfoType) -> String {
        switch type {
        case .none: return "no driver data"
        case .intelVTD: return "Intel VT-d"
        case .armSMMUv3: return "ARM SMMUv3"
        }
    }

    static func capabilityNames(_ capabilities: IOMMUFDHWCapabilities) -> [String] {
        [(IOMMUFDHWCapabilities.dirtyTracking, "DIRTY_TRACKING"), (.pciPASIDExec, "PCI_PASID_EXEC"), (.pciPASIDPriv, "PCI_PASID_PRIV")]
            .filter { capabilities.contains($0.0) }.map(\.1)
    }

    func text() -> String {
        var out = ["  iommufd: device id \(deviceID), IOAS \(ioasID.map { String($0) } ?? "none"), HWPT \(pageTableID.map { String($0) } ?? "none")"]
        switch hardware {
        case .failure(let error):
            out.append("  IOMMU: \(error)")
        case .success(let info):
            let capabilities = Self.capabilityNames(info.capabilities)
            out.append("  IOMMU: \(Self.typeName(info.dataType)), capabilities: \(capabilities.isEmpty ? "none" : capabilities.joined(separator: " "))"
                       + (info.maxPASIDLog2 > 0 ? ", PASIDs 2^\(info.maxPASIDLog2)" : ""))
            switch Result(catching: { () throws(VFIOError) in try info.intelVTD() }) {
            case .failure(let error): out.append("  VT-d: \(error)")
            case .success(nil): break
            case .success(let vtd?):
                let cap = vtd.capability, ecap = vtd.extendedCapability
                let large = [(1, "2M"), (2, "1G")].filter { cap.secondLevelLargePageSupport & UInt64($0.0) != 0 }.map(\.1)
                out.append("  VT-d cap \(hex(vtd.capabilityRegister, width: 16)): \(cap.flagNames.joined(separator: " ")); MGAW \(cap.maximumGuestAddressWidth), "
                           + "SAGAW \(cap.secondLevelAddressWidths.map(String.init).joined(separator: "/")), \(cap.domainCount) domains, "
                           + "large pages \(large.isEmpty ? "none" : large.joined(separator: " "))")
                out.append("  VT-d ecap \(hex(vtd.extendedCapabilityRegister, width: 16)): \(ecap.flagNames.joined(separator: " ")); "
                           + "nesting parent \(ecap.allowsNestingParent ? "yes" : "no (needs SMTS NEST)"), "
                           + "dirty tracking \(ecap.allowsDirtyTracking ? "yes" : "no (needs SMTS SLADS SMPWC)")")
            }
        }
        return out.joined(separator: "\n")
    }

    func json() -> JSON {
        var fields: [(String, JSON)] = [("device_id", .unsigned(UInt64(deviceID)))]
        fields.append(("ioas_id", ioasID.map { .unsigned(UInt64($0)) } ?? .null))
        fields.append(("hwpt_id", pageTableID.map { .unsigned(UInt64($0)) } ?? .null))
        switch hardware {
        case .failure(let error):
            fields.append(("hw_info", DeviceReport.json(error)))
        case .success(let info):
            var hw: [(String, JSON)] = [("type", .string(Self.typeName(info.dataType))),
                                        ("capabilities", .array(Self.capabilityNames(info.capabilities).map(JSON.string))),
                                        ("max_pasid_log2", .unsigned(UInt64(info.maxPASIDLog2)))]
            if let vtd = try? info.intelVTD() {
                hw.append(("vtd", .object([("flags", .unsigned(UInt64(vtd.flags.rawValue))),
                                           ("cap_reg", .string(hex(vtd.capabilityRegister, width: 16))),
                                           ("ecap_reg", .string(hex(vtd.extendedCapabilityRegister, width: 16))),
                                           ("cap", .array(vtd.capability.flagNames.map(JSON.string))),
                                           ("ecap", .array(vtd.extendedCapability.flagNames.map(JSON.string))),
                                           ("mgaw", .unsigned(UInt64(vtd.capability.maximumGuestAddressWidth))),
                                           ("nesting_parent", .bool(vtd.extendedCapability.allowsNestingParent)),
                                           ("dirty_tracking", .bool(vtd.extendedCapability.allowsDirtyTracking))])))
            }
            fields.append(("hw_info", .object(hw)))
        }
        return .object(fields)
    }

    /// `report` with an `"iommufd"` member appended.
    func appended(to report: JSON) -> JSON {
        guard case .object(var fields) = report else { return report }
        fields.append(("iommufd", json()))
        return .object(fields)
    }
}
