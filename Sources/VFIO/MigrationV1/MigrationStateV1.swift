/// `device_state` of the deprecated v1 migration protocol (`struct
/// vfio_device_migration_info`): three bits, RUNNING, SAVING and RESUMING, with STOP as
/// none of them.
///
/// Linux 5.8 to 5.17 named the bits `VFIO_DEVICE_STATE_STOP/RUNNING/SAVING/RESUMING`;
/// 5.18 renamed them `VFIO_DEVICE_STATE_V1_*` when protocol v2 took the old names, and
/// later kernels dropped v1. Bits 3–31 are reserved: a user changes the state with a
/// read-modify-write that keeps them.
///
/// | bits (RESUMING SAVING RUNNING) | meaning |
/// |---|---|
/// | 000 | stopped |
/// | 001 | running (the default) |
/// | 010 | stop-and-copy: stopped, saving |
/// | 011 | pre-copy: running, saving |
/// | 100 | resuming: stopped, loading state |
/// | 101, 111 | invalid |
/// | 110 | error (left only by a device reset) |
public struct MigrationStateV1: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_DEVICE_STATE_V1_STOP` (0): no bit set.
    public static let stop: MigrationStateV1 = []
    /// `VFIO_DEVICE_STATE_V1_RUNNING` (bit 0)
    public static let running = MigrationStateV1(rawValue: 1 << 0)
    /// `VFIO_DEVICE_STATE_V1_SAVING` (bit 1)
    public static let saving = MigrationStateV1(rawValue: 1 << 1)
    /// `VFIO_DEVICE_STATE_V1_RESUMING` (bit 2)
    public static let resuming = MigrationStateV1(rawValue: 1 << 2)
    /// `VFIO_DEVICE_STATE_MASK`: the three defined bits.
    public static let mask: MigrationStateV1 = [.running, .saving, .resuming]
    /// The error state, SAVING|RESUMING (what `VFIO_DEVICE_STATE_SET_ERROR` sets).
    public static let error: MigrationStateV1 = [.saving, .resuming]

    /// The three defined bits of this value.
    public var definedBits: MigrationStateV1 { intersection(.mask) }

    /// `VFIO_DEVICE_STATE_VALID(state)`: RESUMING may not be combined with RUNNING or
    /// SAVING; every state without RESUMING is valid. (The error state is therefore not
    /// valid as a target.) Reserved bits are not looked at.
    public var isValid: Bool {
        contains(.resuming) ? definedBits == .resuming : true
    }

    /// `VFIO_DEVICE_STATE_IS_ERROR(state)`: exactly SAVING and RESUMING among the defined bits.
    public var isError: Bool { definedBits == .error }

    /// `VFIO_DEVICE_STATE_SET_ERROR(state)`: the error state, keeping the reserved bits.
    /// (The 5.x header's macro misspelled `SAVING` as `SATE_SAVING`; this is its intent.)
    public var settingError: MigrationStateV1 {
        MigrationStateV1(rawValue: (rawValue & ~MigrationStateV1.mask.rawValue) | MigrationStateV1.error.rawValue)
    }

    /// The state's name by its defined bits, or `nil` for the two invalid combinations.
    public var name: MigrationStateV1Name? { MigrationStateV1Name(self) }

    /// The name (e.g. `PRE_COPY`), `INVALID(0x5)` for an invalid combination, with any
    /// reserved bits appended.
    public var description: String {
        var text = name?.description ?? "INVALID(0x\(String(definedBits.rawValue, radix: 16)))"
        let reserved = rawValue & ~MigrationStateV1.mask.rawValue
        if reserved != 0 { text += "+reserved(0x\(String(reserved, radix: 16)))" }
        return text
    }
}

/// The named v1 states, for tools and messages. Each is one combination of the three
/// defined bits; 101 and 111 have no name (they are invalid).
public enum MigrationStateV1Name: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// 000: stopped.
    case stop = 0b000
    /// 001: running, the default.
    case running = 0b001
    /// 011: SAVING|RUNNING, pre-copy: running while the state is read out.
    case preCopy = 0b011
    /// 010: SAVING, stop-and-copy: stopped while the rest of the state is read out.
    case stopAndCopy = 0b010
    /// 100: RESUMING: stopped while saved state is written in.
    case resuming = 0b100
    /// 110: SAVING|RESUMING, the error state.
    case error = 0b110

    /// Names `state` by its defined bits; `nil` for 101 and 111.
    public init?(_ state: MigrationStateV1) {
        self.init(rawValue: state.definedBits.rawValue)
    }

    /// The bits of this state.
    public var state: MigrationStateV1 { MigrationStateV1(rawValue: rawValue) }

    public var description: String {
        switch self {
        case .stop: return "STOP"
        case .running: return "RUNNING"
        case .preCopy: return "PRE_COPY"
        case .stopAndCopy: return "STOP_AND_COPY"
        case .resuming: return "RESUMING"
        case .error: return "ERROR"
        }
    }
}
