/// Which layout the data of a feature request follows where the two transports differ.
///
/// Only DMA logging differs: the kernel takes user pointers (`ranges`, `bitmap`), while
/// vfio-user carries the ranges and the bitmap inside the message.
public enum FeatureDataLayout: Sendable, Equatable {
    /// `<linux/vfio.h>` as passed to the `VFIO_DEVICE_FEATURE` ioctl.
    case kernel
    /// The `VFIO_USER_DEVICE_FEATURE` message of the vfio-user protocol.
    case vfioUser
}

/// The `data[]` of `struct vfio_device_feature`, typed by feature number.
///
/// Each case is one feature of Linux 6.14 with its payload struct; features without data
/// have no associated value. `.unknown` carries any other number with its raw bytes
/// (numbers listed in `DeviceFeatureID` always decode to their own case).
public enum DeviceFeaturePayload: Sendable, Equatable {
    /// `VFIO_DEVICE_FEATURE_PCI_VF_TOKEN` (0)
    case pciVFToken(VFToken)
    /// `VFIO_DEVICE_FEATURE_MIGRATION` (1)
    case migration(MigrationFeatureInfo)
    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` (2)
    case migrationDeviceState(MigrationStateFeature)
    /// `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY` (3), no data
    case lowPowerEntry
    /// `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP` (4)
    case lowPowerEntryWithWakeup(LowPowerEntryWithWakeup)
    /// `VFIO_DEVICE_FEATURE_LOW_POWER_EXIT` (5), no data
    case lowPowerExit
    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` (6), kernel layout (ranges by pointer)
    case dmaLoggingStart(DMALoggingControl)
    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` (6), vfio-user layout (ranges inline)
    case vfioUserDMALoggingStart(VFIOUserDMALoggingControl)
    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP` (7), no data
    case dmaLoggingStop
    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` (8), kernel layout (bitmap by pointer)
    case dmaLoggingReport(DMALoggingReport)
    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` (8), vfio-user layout (bitmap inline in replies)
    case vfioUserDMALoggingReport(VFIOUserDMALoggingReport)
    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE` (9)
    case migrationDataSize(MigrationDataSize)
    /// `VFIO_DEVICE_FEATURE_BUS_MASTER` (10)
    case busMaster(BusMaster)
    /// A feature number this library does not know, with its data as given.
    case unknown(feature: UInt32, data: [UInt8])

    /// The feature number (the low 16 bits of `flags`); `.unknown` gives its number masked
    /// to 16 bits.
    public var feature: UInt32 {
        switch self {
        case .pciVFToken: return DeviceFeatureID.pciVFToken.rawValue
        case .migration: return DeviceFeatureID.migration.rawValue
        case .migrationDeviceState: return DeviceFeatureID.migrationDeviceState.rawValue
        case .lowPowerEntry: return DeviceFeatureID.lowPowerEntry.rawValue
        case .lowPowerEntryWithWakeup: return DeviceFeatureID.lowPowerEntryWithWakeup.rawValue
        case .lowPowerExit: return DeviceFeatureID.lowPowerExit.rawValue
        case .dmaLoggingStart, .vfioUserDMALoggingStart: return DeviceFeatureID.dmaLoggingStart.rawValue
        case .dmaLoggingStop: return DeviceFeatureID.dmaLoggingStop.rawValue
        case .dmaLoggingReport, .vfioUserDMALoggingReport: return DeviceFeatureID.dmaLoggingReport.rawValue
        case .migrationDataSize: return DeviceFeatureID.migrationDataSize.rawValue
        case .busMaster: return DeviceFeatureID.busMaster.rawValue
        case .unknown(let feature, _): return feature & DeviceFeatureFlags.featureMask
        }
    }

    /// The known feature, or `nil` for `.unknown`.
    public var featureID: DeviceFeatureID? {
        if case .unknown = self { return nil }
        return DeviceFeatureID(rawValue: feature)
    }

    /// Appends the payload's bytes (nothing for the features without data).
    public func encode(into writer: inout ByteWriter) {
        switch self {
        case .pciVFToken(let value): value.encode(into: &writer)
        case .migration(let value): value.encode(into: &writer)
        case .migrationDeviceState(let value): value.encode(into: &writer)
        case .lowPowerEntry, .lowPowerExit, .dmaLoggingStop: break
        case .lowPowerEntryWithWakeup(let value): value.encode(into: &writer)
        case .dmaLoggingStart(let value): value.encode(into: &writer)
        case .vfioUserDMALoggingStart(let value): value.encode(into: &writer)
        case .dmaLoggingReport(let value): value.encode(into: &writer)
        case .vfioUserDMALoggingReport(let value): value.encode(into: &writer)
        case .migrationDataSize(let value): value.encode(into: &writer)
        case .busMaster(let value): value.encode(into: &writer)
        case .unknown(_, let data): writer.append(contentsOf: data)
        }
    }

    /// The payload's bytes.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        encode(into: &writer)
        return writer.bytes
    }

    /// Decodes the data of feature `feature` (the low 16 bits are used).
    ///
    /// Bytes past the payload struct are ignored (a caller may offer a larger buffer);
    /// the data of the features without a payload is ignored entirely.
    ///
    /// - Throws: `.malformed` naming the payload struct when `data` is shorter than it,
    ///   or a field holds a value 6.14 does not define (a migration state above 7, a bus
    ///   master op other than 0 or 1).
    public static func decode(feature: UInt32, data: [UInt8], layout: FeatureDataLayout = .kernel) throws(VFIOError) -> DeviceFeaturePayload {
        let number = feature & DeviceFeatureFlags.featureMask
        guard let id = DeviceFeatureID(rawValue: number) else {
            return .unknown(feature: number, data: data)
        }
        func decoded<T: KernelStruct>(_ type: T.Type) throws(VFIOError) -> T {
            if data.count < T.fixedSize {
                throw .malformed(T.cName, "\(data.count) byte(s) of data, the structure needs \(T.fixedSize)")
            }
            return try T(decoding: data)
        }
        switch id {
        case .pciVFToken: return .pciVFToken(try decoded(VFToken.self))
        case .migration: return .migration(try decoded(MigrationFeatureInfo.self))
        case .migrationDeviceState: return .migrationDeviceState(try decoded(MigrationStateFeature.self))
        case .lowPowerEntry: return .lowPowerEntry
        case .lowPowerEntryWithWakeup: return .lowPowerEntryWithWakeup(try decoded(LowPowerEntryWithWakeup.self))
        case .lowPowerExit: return .lowPowerExit
        case .dmaLoggingStart:
            switch layout {
            case .kernel: return .dmaLoggingStart(try decoded(DMALoggingControl.self))
            case .vfioUser: return .vfioUserDMALoggingStart(try decoded(VFIOUserDMALoggingControl.self))
            }
        case .dmaLoggingStop: return .dmaLoggingStop
        case .dmaLoggingReport:
            switch layout {
            case .kernel: return .dmaLoggingReport(try decoded(DMALoggingReport.self))
            case .vfioUser: return .vfioUserDMALoggingReport(try decoded(VFIOUserDMALoggingReport.self))
            }
        case .migrationDataSize: return .migrationDataSize(try decoded(MigrationDataSize.self))
        case .busMaster: return .busMaster(try decoded(BusMaster.self))
        }
    }
}
