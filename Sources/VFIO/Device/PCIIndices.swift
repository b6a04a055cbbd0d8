/// vfio-pci's fixed region indices (`VFIO_PCI_*_REGION_INDEX`).
///
/// Indices at or above `PCIRegionIndex.count` (`VFIO_PCI_NUM_REGIONS`, 9) are
/// device-specific regions, identified by their `VFIO_REGION_INFO_CAP_TYPE` capability.
/// Platform devices have no fixed indices at all: their regions are 0..<num_regions in
/// device-tree order.
public enum PCIRegionIndex: UInt32, Sendable, CaseIterable {
    /// `VFIO_PCI_BAR0_REGION_INDEX`
    case bar0 = 0
    /// `VFIO_PCI_BAR1_REGION_INDEX`
    case bar1 = 1
    /// `VFIO_PCI_BAR2_REGION_INDEX`
    case bar2 = 2
    /// `VFIO_PCI_BAR3_REGION_INDEX`
    case bar3 = 3
    /// `VFIO_PCI_BAR4_REGION_INDEX`
    case bar4 = 4
    /// `VFIO_PCI_BAR5_REGION_INDEX`
    case bar5 = 5
    /// `VFIO_PCI_ROM_REGION_INDEX`: the expansion ROM.
    case rom = 6
    /// `VFIO_PCI_CONFIG_REGION_INDEX`: configuration space (virtualized by vfio-pci).
    case config = 7
    /// `VFIO_PCI_VGA_REGION_INDEX`: legacy VGA ranges (I/O 0x3b0-0x3bb, 0x3c0-0x3df and
    /// memory 0xa0000-0xbffff), each at its own address from the region's offset.
    case vga = 8

    /// `VFIO_PCI_NUM_REGIONS`: the first device-specific region index.
    public static let count: UInt32 = 9

    /// The BAR with number `n` (0...5).
    public static func bar(_ n: Int) -> PCIRegionIndex? {
        (0...5).contains(n) ? PCIRegionIndex(rawValue: UInt32(n)) : nil
    }

    /// The C constant's name, e.g. `VFIO_PCI_BAR2_REGION_INDEX`.
    public var cName: String {
        switch self {
        case .bar0, .bar1, .bar2, .bar3, .bar4, .bar5: return "VFIO_PCI_BAR\(rawValue)_REGION_INDEX"
        case .rom: return "VFIO_PCI_ROM_REGION_INDEX"
        case .config: return "VFIO_PCI_CONFIG_REGION_INDEX"
        case .vga: return "VFIO_PCI_VGA_REGION_INDEX"
        }
    }
}

/// vfio-pci's IRQ indices (`VFIO_PCI_*_IRQ_INDEX`).
public enum PCIIRQIndex: UInt32, Sendable, CaseIterable {
    /// `VFIO_PCI_INTX_IRQ_INDEX`: the legacy level-triggered pin (automasked).
    case intx = 0
    /// `VFIO_PCI_MSI_IRQ_INDEX`
    case msi = 1
    /// `VFIO_PCI_MSIX_IRQ_INDEX`
    case msix = 2
    /// `VFIO_PCI_ERR_IRQ_INDEX`: AER error notification.
    case err = 3
    /// `VFIO_PCI_REQ_IRQ_INDEX`: the host asks the user to release the device.
    case req = 4

    /// `VFIO_PCI_NUM_IRQS`
    public static let count: UInt32 = 5

    /// The C constant's name, e.g. `VFIO_PCI_MSIX_IRQ_INDEX`.
    public var cName: String {
        switch self {
        case .intx: return "VFIO_PCI_INTX_IRQ_INDEX"
        case .msi: return "VFIO_PCI_MSI_IRQ_INDEX"
        case .msix: return "VFIO_PCI_MSIX_IRQ_INDEX"
        case .err: return "VFIO_PCI_ERR_IRQ_INDEX"
        case .req: return "VFIO_PCI_REQ_IRQ_INDEX"
        }
    }
}
