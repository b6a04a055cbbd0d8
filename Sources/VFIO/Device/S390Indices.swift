/// vfio-ccw's fixed region indices. Linux 6.14 fixes only the I/O config region; the
/// async-command, SCHIB and CRW regions are device-specific indices found through their
/// type capability (`RegionType.ccwAsyncCommand`, `.ccwSCHIB`, `.ccwCRW`).
public enum CCWRegionIndex: UInt32, Sendable, CaseIterable {
    /// `VFIO_CCW_CONFIG_REGION_INDEX`: the I/O region (`struct ccw_io_region`).
    case config = 0

    /// `VFIO_CCW_NUM_REGIONS`
    public static let count: UInt32 = 1

    public var cName: String { "VFIO_CCW_CONFIG_REGION_INDEX" }
}

/// vfio-ccw's IRQ indices.
public enum CCWIRQIndex: UInt32, Sendable, CaseIterable {
    /// `VFIO_CCW_IO_IRQ_INDEX`: I/O completion.
    case io = 0
    /// `VFIO_CCW_CRW_IRQ_INDEX`: channel report words are pending.
    case crw = 1
    /// `VFIO_CCW_REQ_IRQ_INDEX`: the host asks the user to release the device.
    case req = 2

    /// `VFIO_CCW_NUM_IRQS`
    public static let count: UInt32 = 3

    public var cName: String {
        switch self {
        case .io: return "VFIO_CCW_IO_IRQ_INDEX"
        case .crw: return "VFIO_CCW_CRW_IRQ_INDEX"
        case .req: return "VFIO_CCW_REQ_IRQ_INDEX"
        }
    }
}

/// vfio-ap's IRQ indices (it has no fixed regions). Linux 6.14 defines only REQ; the
/// configuration-change index that later kernels add is not part of the 6.14 uAPI.
public enum APIRQIndex: UInt32, Sendable, CaseIterable {
    /// `VFIO_AP_REQ_IRQ_INDEX`: the host asks the user to release the device.
    case req = 0

    /// `VFIO_AP_NUM_IRQS`
    public static let count: UInt32 = 1

    public var cName: String { "VFIO_AP_REQ_IRQ_INDEX" }
}
