/// A device's migration state (`enum vfio_device_mig_state`), with the kernel's numbers.
///
/// `error` is entered only when a transition fails in a way the driver cannot undo; it is
/// never a valid target and is left only by a device reset.
public enum MigrationState: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// `VFIO_DEVICE_STATE_ERROR`
    case error = 0
    /// `VFIO_DEVICE_STATE_STOP`
    case stop = 1
    /// `VFIO_DEVICE_STATE_RUNNING`
    case running = 2
    /// `VFIO_DEVICE_STATE_STOP_COPY`
    case stopCopy = 3
    /// `VFIO_DEVICE_STATE_RESUMING`
    case resuming = 4
    /// `VFIO_DEVICE_STATE_RUNNING_P2P`
    case runningP2P = 5
    /// `VFIO_DEVICE_STATE_PRE_COPY`
    case preCopy = 6
    /// `VFIO_DEVICE_STATE_PRE_COPY_P2P`
    case preCopyP2P = 7

    /// The C constant's name, e.g. `VFIO_DEVICE_STATE_STOP_COPY`.
    public var cName: String {
        switch self {
        case .error: return "VFIO_DEVICE_STATE_ERROR"
        case .stop: return "VFIO_DEVICE_STATE_STOP"
        case .running: return "VFIO_DEVICE_STATE_RUNNING"
        case .stopCopy: return "VFIO_DEVICE_STATE_STOP_COPY"
        case .resuming: return "VFIO_DEVICE_STATE_RESUMING"
        case .runningP2P: return "VFIO_DEVICE_STATE_RUNNING_P2P"
        case .preCopy: return "VFIO_DEVICE_STATE_PRE_COPY"
        case .preCopyP2P: return "VFIO_DEVICE_STATE_PRE_COPY_P2P"
        }
    }

    /// The short name used by the tool and in messages, e.g. `STOP_COPY`.
    public var description: String { String(cName.dropFirst("VFIO_DEVICE_STATE_".count)) }

    /// Parses a short name (`STOP_COPY`, `stop-copy`, case-insensitive) or the C name.
    public init?(name: String) {
        let key = String(name.uppercased().map { $0 == "-" ? "_" : $0 })
        for state in MigrationState.allCases where state.description == key || state.cName == key {
            self = state
            return
        }
        return nil
    }
}

/// The migration features a device reports (`VFIO_DEVICE_FEATURE_MIGRATION`'s `flags`).
public struct MigrationFeatures: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// `VFIO_MIGRATION_STOP_COPY`: the mandatory base (STOP, RUNNING, STOP_COPY, RESUMING).
    public static let stopCopy = MigrationFeatures(rawValue: 1 << 0)
    /// `VFIO_MIGRATION_P2P`: adds RUNNING_P2P (and PRE_COPY_P2P with pre-copy).
    public static let p2p = MigrationFeatures(rawValue: 1 << 1)
    /// `VFIO_MIGRATION_PRE_COPY`: adds PRE_COPY (and PRE_COPY_P2P with P2P).
    public static let preCopy = MigrationFeatures(rawValue: 1 << 2)

    /// The four combinations a device may offer: STOP_COPY alone or with P2P, PRE_COPY, both.
    public static let validCombinations: [MigrationFeatures] = [
        [.stopCopy], [.stopCopy, .p2p], [.stopCopy, .preCopy], [.stopCopy, .p2p, .preCopy],
    ]

    public var description: String {
        var names: [String] = []
        if contains(.stopCopy) { names.append("STOP_COPY") }
        if contains(.p2p) { names.append("P2P") }
        if contains(.preCopy) { names.append("PRE_COPY") }
        let unknown = rawValue & ~0x7
        if unknown != 0 { names.append("0x\(String(unknown, radix: 16))") }
        return names.isEmpty ? "none" : names.joined(separator: "|")
    }
}
