/// An extension a container may support, by the number `VFIO_CHECK_EXTENSION` takes.
///
/// The IOMMU types (`type1`, `type1v2`, `spaprTCE`, `spaprTCEv2`, `noIOMMU`) are also the
/// argument of `VFIO_SET_IOMMU`. `VFIO_CHECK_EXTENSION` answers 0 for "not supported" and a
/// positive number otherwise; `dmaCacheCoherent` and `updateVaddr` can change as groups are
/// added to or removed from the container.
public enum ContainerExtension: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// `VFIO_TYPE1_IOMMU`: the original type1 IOMMU backend.
    case type1 = 1
    /// `VFIO_SPAPR_TCE_IOMMU`: the POWER sPAPR TCE backend, version 1.
    case spaprTCE = 2
    /// `VFIO_TYPE1v2_IOMMU`: type1 with the v2 semantics (no partial unmaps of a mapping).
    case type1v2 = 3
    /// `VFIO_DMA_CC_IOMMU`: the IOMMU enforces DMA cache coherence (e.g. strips PCIe No Snoop).
    case dmaCacheCoherent = 4
    /// `VFIO_EEH`: POWER Enhanced Error Handling is available.
    case eeh = 5
    /// `__VFIO_RESERVED_TYPE1_NESTING_IOMMU` in Linux 6.14; it was `VFIO_TYPE1_NESTING_IOMMU`
    /// (two-stage type1, implying v2) until the kernel removed it in 6.13. Kernels since then
    /// answer 0 for it; nested translation lives in iommufd.
    case type1NestingReserved = 6
    /// `VFIO_SPAPR_TCE_v2_IOMMU`: the sPAPR TCE backend, version 2 (dynamic DMA windows).
    case spaprTCEv2 = 7
    /// `VFIO_NOIOMMU_IOMMU`: no translation and no isolation; only `VFIO_CHECK_EXTENSION`
    /// works on such a container, and using it taints the kernel.
    case noIOMMU = 8
    /// `VFIO_UNMAP_ALL`: type1 accepts `VFIO_DMA_UNMAP_FLAG_ALL`.
    case unmapAll = 9
    /// `VFIO_UPDATE_VADDR`: type1 accepts the `VADDR` flag of map and unmap (not with
    /// mediated devices in the container).
    case updateVaddr = 10

    /// The C constant's name, e.g. `VFIO_TYPE1v2_IOMMU`.
    public var cName: String {
        switch self {
        case .type1: return "VFIO_TYPE1_IOMMU"
        case .spaprTCE: return "VFIO_SPAPR_TCE_IOMMU"
        case .type1v2: return "VFIO_TYPE1v2_IOMMU"
        case .dmaCacheCoherent: return "VFIO_DMA_CC_IOMMU"
        case .eeh: return "VFIO_EEH"
        case .type1NestingReserved: return "__VFIO_RESERVED_TYPE1_NESTING_IOMMU"
        case .spaprTCEv2: return "VFIO_SPAPR_TCE_v2_IOMMU"
        case .noIOMMU: return "VFIO_NOIOMMU_IOMMU"
        case .unmapAll: return "VFIO_UNMAP_ALL"
        case .updateVaddr: return "VFIO_UPDATE_VADDR"
        }
    }

    /// A short name for the command-line tool, e.g. `type1v2`.
    public var shortName: String {
        switch self {
        case .type1: return "type1"
        case .spaprTCE: return "spapr-tce"
        case .type1v2: return "type1v2"
        case .dmaCacheCoherent: return "dma-cc"
        case .eeh: return "eeh"
        case .type1NestingReserved: return "type1-nesting"
        case .spaprTCEv2: return "spapr-tce-v2"
        case .noIOMMU: return "noiommu"
        case .unmapAll: return "unmap-all"
        case .updateVaddr: return "update-vaddr"
        }
    }

    /// Whether the number names an IOMMU backend that `VFIO_SET_IOMMU` can select.
    public var isIOMMUType: Bool {
        switch self {
        case .type1, .spaprTCE, .type1v2, .spaprTCEv2, .noIOMMU: return true
        default: return false
        }
    }

    public var description: String { shortName }

    /// Parses a short name (`type1v2`, case-insensitive, `_` or `-`), the C name, or the number.
    public init?(name: String) {
        if let number = UInt32(name), let value = ContainerExtension(rawValue: number) {
            self = value
            return
        }
        let key = String(name.lowercased().map { $0 == "_" ? "-" : $0 })
        for candidate in ContainerExtension.allCases
        where candidate.shortName == key || candidate.cName.lowercased() == name.lowercased() {
            self = candidate
            return
        }
        return nil
    }
}
