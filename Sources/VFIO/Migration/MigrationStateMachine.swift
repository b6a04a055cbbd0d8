/// The VFIO migration v2 state machine (`enum vfio_device_mig_state`), as the kernel runs it
/// in `vfio_mig_get_next_state()` (drivers/vfio/vfio_main.c).
///
/// A user may ask a device for any supported state; the kernel walks there one arc at a
/// time. This type answers, for the features a device reports
/// (`VFIO_DEVICE_FEATURE_MIGRATION`):
/// - which states exist (``isSupported(_:features:)``),
/// - which arcs a driver must implement (``arcs(for:)``),
/// - the next arc of a combination transition (``nextState(from:to:features:)``), with the
///   kernel's answer, including every case in which the kernel answers `-EINVAL`,
/// - the whole sequence of arcs (``path(from:to:features:)``).
///
/// ## Feature sets
/// Every state but ERROR needs `VFIO_MIGRATION_STOP_COPY`; vfio-pci-core refuses to register
/// a migration driver without it, and `vfio_mig_get_next_state()` finds no supported state
/// without it. So P2P alone, PRE_COPY alone, or P2P|PRE_COPY without STOP_COPY are not
/// migration-capable devices: every call here throws for them (see ``validate(_:)``).
/// Bits other than STOP_COPY, P2P and PRE_COPY are ignored, as the kernel ignores them.
///
/// ## Paths
/// The uAPI asks for the shortest path through the arcs that has no saving state
/// (STOP_COPY, PRE_COPY, PRE_COPY_P2P) in its interior; RESUMING never appears in the
/// interior either, since its only arc leads to STOP. The one exception the kernel makes:
/// a path that starts and ends in the saving group stays inside it, keeping the one data
/// session (PRE_COPY -> PRE_COPY_P2P -> STOP_COPY). STOP_COPY -> PRE_COPY and
/// STOP_COPY -> PRE_COPY_P2P are refused outright.
public enum MigrationStateMachine {
    /// The operation name used in errors: the kernel function whose answers these are.
    public static let operation = "vfio_mig_get_next_state"

    // MARK: - States

    /// The features a device must report for `state` to be usable as a current state or a
    /// target, or `nil` for ERROR, which is never usable: a device may fall into it, but it
    /// is neither a valid target nor a state the kernel computes a way out of (only
    /// `VFIO_DEVICE_RESET` leaves it, back to RUNNING).
    public static func requiredFeatures(for state: MigrationState) -> MigrationFeatures? {
        switch state {
        case .error: return nil
        case .stop, .running, .stopCopy, .resuming: return [.stopCopy]
        case .runningP2P: return [.stopCopy, .p2p]
        case .preCopy: return [.stopCopy, .preCopy]
        case .preCopyP2P: return [.stopCopy, .p2p, .preCopy]
        }
    }

    /// Whether a device reporting `features` offers `state` (as current state and target).
    /// Always `false` for ERROR.
    public static func isSupported(_ state: MigrationState, features: MigrationFeatures) -> Bool {
        guard let required = requiredFeatures(for: state) else { return false }
        return features.isSuperset(of: required)
    }

    /// The states a device reporting `features` offers, in kernel number order; empty
    /// when `features` lacks STOP_COPY.
    public static func supportedStates(for features: MigrationFeatures) -> [MigrationState] {
        MigrationState.allCases.filter { isSupported($0, features: features) }
    }

    /// Throws unless `features` describes a migration-capable device, i.e. contains
    /// `VFIO_MIGRATION_STOP_COPY`. The kernel refuses to register a vfio-pci migration
    /// driver without it (`vfio_pci_core_register_device()` returns -EINVAL), and
    /// `vfio_mig_get_next_state()` returns -EINVAL for every request from such a device.
    /// Unknown bits are accepted: the uAPI leaves them to future revisions.
    public static func validate(_ features: MigrationFeatures) throws(VFIOError) {
        guard features.contains(.stopCopy) else {
            throw VFIOError.invalidArgument(
                operation,
                "features must include STOP_COPY (VFIO_MIGRATION_STOP_COPY); a device reporting \(features) offers no migration states"
            )
        }
    }

    // MARK: - Arcs

    /// The arcs a driver reporting `features` must implement, in a fixed order (by source,
    /// then target, in kernel number order). Empty when `features` lacks STOP_COPY.
    ///
    /// Always: STOP <-> STOP_COPY, STOP <-> RESUMING. Without P2P: RUNNING <-> STOP. With P2P:
    /// RUNNING <-> RUNNING_P2P, RUNNING_P2P <-> STOP. With PRE_COPY: RUNNING <-> PRE_COPY and,
    /// without P2P, PRE_COPY -> STOP_COPY; with P2P as well: PRE_COPY <-> PRE_COPY_P2P,
    /// RUNNING_P2P -> PRE_COPY_P2P, PRE_COPY_P2P -> RUNNING_P2P, PRE_COPY_P2P -> STOP_COPY.
    public static func arcs(for features: MigrationFeatures) -> [MigrationArc] {
        guard features.contains(.stopCopy) else { return [] }
        let p2p = features.contains(.p2p)
        let preCopy = features.contains(.preCopy)
        var pairs: [(MigrationState, MigrationState)] = [
            (.stop, .stopCopy), (.stopCopy, .stop), (.stop, .resuming), (.resuming, .stop),
        ]
        if p2p {
            pairs += [(.running, .runningP2P), (.runningP2P, .running), (.runningP2P, .stop), (.stop, .runningP2P)]
        } else {
            pairs += [(.running, .stop), (.stop, .running)]
        }
        if preCopy {
            pairs += [(.running, .preCopy), (.preCopy, .running)]
            if p2p {
                pairs += [
                    (.preCopy, .preCopyP2P), (.preCopyP2P, .preCopy), (.runningP2P, .preCopyP2P),
                    (.preCopyP2P, .runningP2P), (.preCopyP2P, .stopCopy),
                ]
            } else {
                pairs += [(.preCopy, .stopCopy)]
            }
        }
        return pairs.map { MigrationArc(from: $0.0, to: $0.1) }
            .sorted { ($0.from.rawValue, $0.to.rawValue) < ($1.from.rawValue, $1.to.rawValue) }
    }

    // MARK: - Next state

    /// The next state on the way from `from` to `to` for a device reporting `features`:
    /// exactly what `vfio_mig_get_next_state()` stores in `*next_fsm`.
    ///
    /// `from == to` (a supported state) returns that state: there is no arc to take, and a
    /// driver looping "while current != target" never asks.
    ///
    /// Throws `VFIOError.invalidArgument("vfio_mig_get_next_state", ...)` exactly where the
    /// kernel returns -EINVAL:
    /// - `features` lacks STOP_COPY;
    /// - `from` is ERROR, or a state `features` does not offer (in the kernel a WARN: the
    ///   driver's own state is wrong);
    /// - `to` is ERROR, or a state `features` does not offer;
    /// - STOP_COPY -> PRE_COPY and STOP_COPY -> PRE_COPY_P2P, which the uAPI forbids.
    ///   On a PRE_COPY device, Linux 6.14 never returns from these two requests: its skip
    ///   loop treats the ERROR sentinel as one more unsupported state and spins (a 2026
    ///   stable fix, "Fixes: 4db52602a607", stops the loop at ERROR so the kernel returns
    ///   -EINVAL). This returns the error that the uAPI promises and the fixed kernel gives.
    public static func nextState(
        from: MigrationState, to: MigrationState, features: MigrationFeatures
    ) throws(VFIOError) -> MigrationState {
        try validate(features)
        try checkCurrent(from, features: features)
        try checkTarget(to, features: features)
        return try skippingHop(from: from, to: to, features: features)
    }

    /// ``nextState(from:to:features:)`` for raw `device_state` numbers, as they arrive in
    /// `struct vfio_device_feature_mig_state` or a vfio-user message. A number outside
    /// 0...7 (`VFIO_DEVICE_STATE_NR` and above) is refused as the kernel refuses it.
    public static func nextState(
        fromRawValue: UInt32, toRawValue: UInt32, features: MigrationFeatures
    ) throws(VFIOError) -> MigrationState {
        try validate(features)
        guard let from = MigrationState(rawValue: fromRawValue) else {
            throw VFIOError.invalidArgument(operation, "the current state \(fromRawValue) is not a migration state (0...7)")
        }
        try checkCurrent(from, features: features)
        guard let to = MigrationState(rawValue: toRawValue) else {
            throw VFIOError.invalidArgument(operation, "target state \(toRawValue) is not a migration state (0...7)")
        }
        try checkTarget(to, features: features)
        return try skippingHop(from: from, to: to, features: features)
    }

    /// Every arc the kernel takes from `from` to `to`, by repeated
    /// ``nextState(from:to:features:)``; empty when `from == to`. Throws what `nextState`
    /// throws (also for `from == to` when that state is ERROR or not offered).
    public static func path(
        from: MigrationState, to: MigrationState, features: MigrationFeatures
    ) throws(VFIOError) -> [MigrationArc] {
        var current = from
        var arcs: [MigrationArc] = []
        repeat {
            let next = try nextState(from: current, to: to, features: features)
            if next == current { break }
            arcs.append(MigrationArc(from: current, to: next))
            current = next
            // No path is longer than the number of states; the exhaustive tests prove it.
            precondition(arcs.count < MigrationState.allCases.count, "migration path \(from) -> \(to) does not converge")
        } while current != to
        return arcs
    }

    // MARK: - Internals

    private static func checkCurrent(_ state: MigrationState, features: MigrationFeatures) throws(VFIOError) {
        if state == .error {
            throw VFIOError.invalidArgument(
                operation, "the current state ERROR has no way out but a device reset (VFIO_DEVICE_RESET)")
        }
        if let missing = missingFeatures(for: state, features: features) {
            throw VFIOError.invalidArgument(
                operation, "the current state \(state) is not supported by a device without \(missing)")
        }
    }

    private static func checkTarget(_ state: MigrationState, features: MigrationFeatures) throws(VFIOError) {
        if state == .error {
            throw VFIOError.invalidArgument(operation, "ERROR cannot be a target; only a device reset leaves ERROR")
        }
        if let missing = missingFeatures(for: state, features: features) {
            let noun = missing.contains(" and ") ? "features" : "feature"
            throw VFIOError.invalidArgument(operation, "target \(state) needs the \(missing) \(noun)")
        }
    }

    /// The names of the features `state` needs and `features` lacks, joined with "and",
    /// or `nil` when nothing is missing.
    private static func missingFeatures(for state: MigrationState, features: MigrationFeatures) -> String? {
        guard let required = requiredFeatures(for: state) else { return nil }
        let missing = required.subtracting(features)
        if missing.isEmpty { return nil }
        var names: [String] = []
        if missing.contains(.stopCopy) { names.append("STOP_COPY") }
        if missing.contains(.p2p) { names.append("P2P") }
        if missing.contains(.preCopy) { names.append("PRE_COPY") }
        return names.joined(separator: " and ")
    }

    /// The kernel's algorithm: look up the full-feature next hop, and while it lands on a
    /// state this device does not offer, look up that state's next hop toward the same
    /// target. Both ends are already known to be offered.
    private static func skippingHop(
        from: MigrationState, to: MigrationState, features: MigrationFeatures
    ) throws(VFIOError) -> MigrationState {
        var hop = fullFeatureHop(from: from, to: to)
        // Each skip moves to a different unsupported state, so a bound of the state count
        // is never reached with this table.
        for _ in MigrationState.allCases {
            guard let next = hop else {
                throw VFIOError.invalidArgument(
                    operation,
                    "\(from) -> \(to) is not permitted: a device in STOP_COPY cannot return to pre-copy; go to STOP or RUNNING first"
                )
            }
            if isSupported(next, features: features) { return next }
            hop = fullFeatureHop(from: next, to: to)
        }
        preconditionFailure("migration next-hop table loops from \(from) toward \(to)")
    }

    /// The next hop from `from` toward `to` on a device with STOP_COPY, P2P and PRE_COPY,
    /// or `nil` where there is none (ERROR at either end, and the forbidden
    /// STOP_COPY -> PRE_COPY / PRE_COPY_P2P).
    static func fullFeatureHop(from: MigrationState, to: MigrationState) -> MigrationState? {
        nextHopTable[Int(from.rawValue)][Int(to.rawValue)]
    }

    /// Rows: current state; columns: target state; both in kernel number order
    /// (ERROR, STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P).
    private static let nextHopTable: [[MigrationState?]] = {
        let E: MigrationState? = nil
        let S = MigrationState.stop, R = MigrationState.running, SC = MigrationState.stopCopy
        let RS = MigrationState.resuming, RP = MigrationState.runningP2P
        let PC = MigrationState.preCopy, PP = MigrationState.preCopyP2P
        return [
            //          ERROR STOP RUNNING STOP_COPY RESUMING RUNNING_P2P PRE_COPY PRE_COPY_P2P
            /* ERROR */ [E, E, E, E, E, E, E, E],
            /* STOP  */ [E, S, RP, SC, RS, RP, RP, RP],
            /* RUN   */ [E, RP, R, RP, RP, RP, PC, RP],
            /* SCOPY */ [E, S, S, SC, S, S, E, E],
            /* RESUM */ [E, S, S, S, RS, S, S, S],
            /* RP2P  */ [E, S, R, S, S, RP, R, PP],
            /* PCOPY */ [E, R, R, PP, R, R, PC, PP],
            /* PCP2P */ [E, RP, RP, SC, RP, RP, PC, PP],
        ]
    }()
}
