/// One step of the VFIO migration v2 state machine: a transition a driver carries out in a
/// single `migration_set_state` step.
///
/// Users request any target with `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`; the kernel splits
/// a request that is not itself an arc into a sequence of arcs (see
/// ``MigrationStateMachine/path(from:to:features:)``) and the driver only ever sees arcs.
public struct MigrationArc: Sendable, Hashable, CustomStringConvertible {
    /// The state the device is in before the step.
    public var from: MigrationState
    /// The state the device is in after the step.
    public var to: MigrationState

    public init(from: MigrationState, to: MigrationState) {
        self.from = from
        self.to = to
    }

    /// `true` when this step starts a data transfer session, i.e. when the
    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` SET that ends with it returns a new `data_fd`:
    /// entering the saving group (STOP_COPY, PRE_COPY, PRE_COPY_P2P) from outside it, or
    /// entering RESUMING. Moving inside the saving group keeps the existing session.
    public var opensDataSession: Bool {
        if to == .resuming { return true }
        return to.isSaving && !from.isSaving
    }

    /// `true` when this step ends the data transfer session: leaving the saving group or
    /// leaving RESUMING (where the driver must check and load what was written, and may
    /// fail the request).
    public var closesDataSession: Bool {
        if from == .resuming { return true }
        return from.isSaving && !to.isSaving
    }

    /// `FROM -> TO` with the short state names, e.g. `STOP -> STOP_COPY`.
    public var description: String { "\(from) -> \(to)" }
}

extension MigrationState {
    /// `true` for the "saving group" of the uAPI: STOP_COPY, PRE_COPY and PRE_COPY_P2P,
    /// the states that share one outgoing data transfer session.
    public var isSaving: Bool {
        switch self {
        case .stopCopy, .preCopy, .preCopyP2P: return true
        case .error, .stop, .running, .resuming, .runningP2P: return false
        }
    }

    /// `true` for the P2P quiescent states RUNNING_P2P and PRE_COPY_P2P, in which the
    /// device starts no new peer-to-peer DMA.
    public var isP2PQuiescent: Bool { self == .runningP2P || self == .preCopyP2P }
}
