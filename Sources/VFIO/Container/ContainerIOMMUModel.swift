/// The IOMMU backend a legacy container is given with `VFIO_SET_IOMMU`: what its DMA
/// addresses mean and which ioctls it answers.
///
/// - `type1v2` (`VFIO_TYPE1v2_IOMMU`): IOVAs translated by the IOMMU; an unmap must cover
///   whole mappings (`EINVAL` for a range that splits one); dirty-page logging
///   (`VFIO_IOMMU_DIRTY_PAGES`) works.
/// - `type1` (`VFIO_TYPE1_IOMMU`): the original type1 semantics: an unmap starting inside
///   a mapping succeeds and unmaps nothing (the reply's size is 0), one covering a
///   mapping's first IOVA removes the whole mapping; `VFIO_IOMMU_DIRTY_PAGES` answers
///   `EACCES`.
/// - `noIOMMU` (`VFIO_NOIOMMU_IOMMU`): no translation and no isolation. The device sees
///   physical addresses and can reach all memory; the container answers only
///   `VFIO_CHECK_EXTENSION` (no DMA mapping, no `VFIO_IOMMU_GET_INFO`). Needs the `vfio`
///   module's `enable_unsafe_noiommu_mode` (kernel parameter
///   `vfio.enable_unsafe_noiommu_mode=1`, or writing `Y` to
///   `/sys/module/vfio/parameters/enable_unsafe_noiommu_mode` before the device is bound),
///   a kernel built with `CONFIG_VFIO_NOIOMMU`, and `CAP_SYS_RAWIO`. Its groups are
///   `/dev/vfio/noiommu-N`. Binding a device to vfio-pci in this mode taints the kernel
///   (`TAINT_USER`, "Adding kernel taint for vfio-noiommu group on device"), and each
///   open of the device logs "vfio-noiommu device opened by user".
public enum ContainerIOMMUModel: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case type1v2
    case type1
    case noIOMMU

    /// The number `VFIO_CHECK_EXTENSION` and `VFIO_SET_IOMMU` take.
    public var containerExtension: ContainerExtension {
        switch self {
        case .type1v2: return .type1v2
        case .type1: return .type1
        case .noIOMMU: return .noIOMMU
        }
    }

    /// Whether the container maps DMA (`VFIO_IOMMU_MAP_DMA`); false for no-IOMMU.
    public var mapsDMA: Bool { self != .noIOMMU }

    /// The path of IOMMU group `number`'s VFIO group file under this model:
    /// `/dev/vfio/N`, or `/dev/vfio/noiommu-N` for no-IOMMU.
    public func groupPath(_ number: Int) -> String {
        self == .noIOMMU ? "/dev/vfio/noiommu-\(number)" : "/dev/vfio/\(number)"
    }

    /// The C constant's name, e.g. `VFIO_TYPE1v2_IOMMU`.
    public var cName: String { containerExtension.cName }

    /// The short name (`type1v2`, `type1`, `noiommu`).
    public var description: String { containerExtension.shortName }

    /// Parses a short name, the C name or the number, as `ContainerExtension(name:)` does,
    /// keeping only the three x86 models.
    public init?(name: String) {
        guard let ext = ContainerExtension(name: name), let model = Self.allCases.first(where: { $0.containerExtension == ext }) else {
            return nil
        }
        self = model
    }
}
