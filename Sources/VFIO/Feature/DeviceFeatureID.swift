/// The device features of Linux 6.14, numbered as in `flags & VFIO_DEVICE_FEATURE_MASK`
/// of `struct vfio_device_feature`.
///
/// A number missing here is not an error on the wire: `DeviceFeaturePayload.unknown`
/// carries it. (Kernels after 6.14 define more, e.g. `VFIO_DEVICE_FEATURE_DMA_BUF` = 11.)
public enum DeviceFeatureID: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// `VFIO_DEVICE_FEATURE_PCI_VF_TOKEN`: SET a 16-byte UUID shared by an SR-IOV PF and its VFs.
    case pciVFToken = 0
    /// `VFIO_DEVICE_FEATURE_MIGRATION`: GET the migration features (`vfio_device_feature_migration`).
    case migration = 1
    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`: GET or SET the v2 migration state
    /// (`vfio_device_feature_mig_state`).
    case migrationDeviceState = 2
    /// `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY`: SET, no data; lets the device enter runtime low power.
    case lowPowerEntry = 3
    /// `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP`: SET with a wake-up eventfd
    /// (`vfio_device_low_power_entry_with_wakeup`).
    case lowPowerEntryWithWakeup = 4
    /// `VFIO_DEVICE_FEATURE_LOW_POWER_EXIT`: SET, no data; forbids low power again.
    case lowPowerExit = 5
    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`: SET (`vfio_device_feature_dma_logging_control`).
    case dmaLoggingStart = 6
    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP`: SET, no data.
    case dmaLoggingStop = 7
    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`: GET, reads and clears the dirty log of a range
    /// (`vfio_device_feature_dma_logging_report`).
    case dmaLoggingReport = 8
    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`: GET the estimated STOP_COPY data length
    /// (`vfio_device_feature_mig_data_size`).
    case migrationDataSize = 9
    /// `VFIO_DEVICE_FEATURE_BUS_MASTER`: SET bus mastering on or off
    /// (`vfio_device_feature_bus_master`; CDX devices only in 6.14).
    case busMaster = 10

    /// The C constant's name, e.g. `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`.
    public var cName: String {
        switch self {
        case .pciVFToken: return "VFIO_DEVICE_FEATURE_PCI_VF_TOKEN"
        case .migration: return "VFIO_DEVICE_FEATURE_MIGRATION"
        case .migrationDeviceState: return "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE"
        case .lowPowerEntry: return "VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY"
        case .lowPowerEntryWithWakeup: return "VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP"
        case .lowPowerExit: return "VFIO_DEVICE_FEATURE_LOW_POWER_EXIT"
        case .dmaLoggingStart: return "VFIO_DEVICE_FEATURE_DMA_LOGGING_START"
        case .dmaLoggingStop: return "VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP"
        case .dmaLoggingReport: return "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT"
        case .migrationDataSize: return "VFIO_DEVICE_FEATURE_MIG_DATA_SIZE"
        case .busMaster: return "VFIO_DEVICE_FEATURE_BUS_MASTER"
        }
    }

    /// The short name, e.g. `MIG_DEVICE_STATE`.
    public var description: String { String(cName.dropFirst("VFIO_DEVICE_FEATURE_".count)) }

    /// The operations the kernel's handler of this feature accepts (the `supported_ops` it
    /// passes to `vfio_check_feature()`); asking for another gives `EINVAL`.
    public var supportedOperations: DeviceFeatureFlags {
        switch self {
        case .migration, .dmaLoggingReport, .migrationDataSize: return .get
        case .migrationDeviceState: return [.get, .set]
        case .pciVFToken, .lowPowerEntry, .lowPowerEntryWithWakeup, .lowPowerExit,
             .dmaLoggingStart, .dmaLoggingStop, .busMaster:
            return .set
        }
    }

    /// The size of the feature's data (`sizeof` its payload struct, 0 for none). A GET or
    /// SET needs `argsz` of at least 8 plus this.
    public var payloadSize: Int {
        switch self {
        case .pciVFToken: return VFToken.fixedSize
        case .migration: return MigrationFeatureInfo.fixedSize
        case .migrationDeviceState: return MigrationStateFeature.fixedSize
        case .lowPowerEntry, .lowPowerExit, .dmaLoggingStop: return 0
        case .lowPowerEntryWithWakeup: return LowPowerEntryWithWakeup.fixedSize
        case .dmaLoggingStart: return DMALoggingControl.fixedSize
        case .dmaLoggingReport: return DMALoggingReport.fixedSize
        case .migrationDataSize: return MigrationDataSize.fixedSize
        case .busMaster: return BusMaster.fixedSize
        }
    }
}
