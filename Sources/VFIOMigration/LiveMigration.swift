import Glibc
import VFIO

/// What a migration routine is doing, for progress displays.
public struct MigrationProgress: Sendable {
    public enum Phase: String, Sendable {
        /// Copying pre-copy data while the source runs (`round` counts from 1).
        case preCopy = "pre-copy"
        /// Copying the stop-copy data while the source is stopped.
        case stopCopy = "stop-copy"
        /// Writing a snapshot file or reading one into a device.
        case save, restore
    }

    public var phase: Phase
    public var round: Int
    /// Bytes moved so far, all phases together.
    public var bytes: UInt64
    /// The estimate of what is still to come, when known.
    public var remainingEstimate: UInt64?
    /// Time since the routine started.
    public var elapsed: Duration
    /// Where `remainingEstimate` comes from (pre-copy only).
    public var estimateSource: PrecopyEstimateSource? = nil

    /// Bytes per second so far.
    public var rate: Double {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return seconds > 0 ? Double(bytes) / seconds : 0
    }
}

/// Where `LiveMigration.migrate` takes its estimate of the pre-copy data left.
public enum PrecopyEstimateSource: String, Sendable {
    /// `VFIO_MIG_GET_PRECOPY_INFO`'s initial and dirty bytes (the kernel's data_fd).
    case precopyInfo = "VFIO_MIG_GET_PRECOPY_INFO"
    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE` (vfio-user has no pre-copy info).
    case dataSize = "VFIO_DEVICE_FEATURE_MIG_DATA_SIZE"
    /// The source offers neither: the bytes the last pre-copy round read until the
    /// source had no more (libvfio-user's servers, whose features do not include
    /// MIG_DATA_SIZE).
    case reads = "the pre-copy reads"
}

/// Settings of `LiveMigration.migrate`.
public struct MigrationOptions: Sendable {
    /// Stop pre-copy once the estimate of what is left is at most this many bytes.
    public var threshold: UInt64
    /// The most pre-copy rounds before stopping anyway.
    public var maxRounds: Int
    /// Use PRE_COPY when the source offers it (false: straight to STOP_COPY).
    public var preCopy: Bool
    /// The largest piece read from the source and written to the destination at once.
    public var chunkSize: Int
    /// When the estimate comes from the reads (`PrecopyEstimateSource.reads`): the most
    /// bytes the first pre-copy round reads; a later round reads at most what the round
    /// before it read (at least `chunkSize`). Bounds a source whose pre-copy data never
    /// ends.
    public var firstRoundLimit: UInt64

    public init(threshold: UInt64 = 64 << 10, maxRounds: Int = 8, preCopy: Bool = true, chunkSize: Int = 1 << 20,
                firstRoundLimit: UInt64 = 1 << 30) {
        self.threshold = threshold
        self.maxRounds = maxRounds
        self.preCopy = preCopy
        self.chunkSize = chunkSize
        self.firstRoundLimit = firstRoundLimit
    }
}

/// What a finished migration did.
public struct MigrationReport: Sendable, CustomStringConvertible {
    /// Whether PRE_COPY was used.
    public var usedPreCopy: Bool
    /// Pre-copy rounds read (0 without PRE_COPY).
    public var rounds: Int
    /// Where the estimate that ended pre-copy came from (nil without PRE_COPY).
    public var estimateSource: PrecopyEstimateSource?
    /// Bytes read while the source ran (pre-copy) and while it was stopped.
    public var preCopyBytes: UInt64
    public var stopCopyBytes: UInt64
    public var totalBytes: UInt64 { preCopyBytes + stopCopyBytes }
    /// From the source leaving a running state (RUNNING or PRE_COPY) to the destination
    /// running.
    public var downtime: Duration
    /// The whole migration.
    public var total: Duration

    public var description: String {
        "\(totalBytes) bytes moved (\(preCopyBytes) pre-copy in \(rounds) round(s), \(stopCopyBytes) stop-copy), downtime \(formatDuration(downtime)), total \(formatDuration(total))"
    }
}

/// A migration step that failed: which device, which move, what the device said, and
/// what was done to recover.
public struct MigrationFailure: Error, CustomStringConvertible {
    /// What was being done, naming the device, e.g. `source model:edu: RUNNING -> PRE_COPY`.
    public var step: String
    public var error: VFIOError
    /// What recovery did (`the source is back in RUNNING`, …), or nil.
    public var recovery: String?

    public var description: String {
        var text = "\(step) failed: \(error)"
        if let recovery { text += "; \(recovery)" }
        return text
    }
}

/// Formats a duration as ms or s.
public func formatDuration(_ d: Duration) -> String {
    let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    if seconds < 1 { return String(format3(seconds * 1000)) + " ms" }
    return String(format3(seconds)) + " s"
}

func format3(_ value: Double) -> String {
    let scaled = (value * 1000).rounded() / 1000
    return "\(scaled)"
}

/// Live migration of one device to another over the user-side protocol, whatever the
/// transports: `vfio migrate` and the tests call it.
public enum LiveMigration {
    /// Moves a running device's state from `source` to `destination`:
    ///
    /// 1. the destination to RESUMING (its stream opens);
    /// 2. with PRE_COPY (offered by the source and `options.preCopy`): the source to
    ///    PRE_COPY, then rounds, each copying what the source has for now (until a read
    ///    returns nothing), until the estimate of what is left is at most
    ///    `options.threshold`, or `options.maxRounds`. The estimate is `precopyInfo()`'s
    ///    initial and dirty bytes; where the transport has no pre-copy info (vfio-user),
    ///    `migrationDataSize()`; where the source offers neither (it answers ENOTTY,
    ///    EINVAL or EOPNOTSUPP, as libvfio-user's servers do for MIG_DATA_SIZE), the
    ///    bytes the last round read (`PrecopyEstimateSource.reads`; rounds are then
    ///    bounded by `options.firstRoundLimit`);
    /// 3. the source to STOP_COPY (the clock of the downtime starts when the source leaves
    ///    RUNNING or PRE_COPY), and the rest copied to the end of the stream;
    /// 4. the destination to STOP (it checks and loads the state) and RUNNING (the
    ///    downtime ends), the source to STOP.
    ///
    /// On a failure before the destination runs, the source is put back to RUNNING (or,
    /// failing that, reset) and the failure says so; the destination is left as it is.
    public static func migrate(from source: any VFIODevice, to destination: any VFIODevice,
                               options: MigrationOptions = MigrationOptions(),
                               progress: (MigrationProgress) -> Void = { _ in }) throws(MigrationFailure) -> MigrationReport {
        let clock = ContinuousClock()
        let start = clock.now
        var report = MigrationReport(usedPreCopy: false, rounds: 0, estimateSource: nil, preCopyBytes: 0, stopCopyBytes: 0,
                                     downtime: .zero, total: .zero)
        var sourceTouched = false
        var destinationRunning = false

        func fail(_ step: String, _ error: VFIOError) -> MigrationFailure {
            var failure = MigrationFailure(step: step, error: error)
            if sourceTouched && !destinationRunning {
                failure.recovery = recoverSource(source)
            }
            if !destinationRunning, let state = try? destination.migrationState() {
                let note = "the destination \(destination.name) is left in \(state)"
                failure.recovery = failure.recovery.map { "\($0); \(note)" } ?? note
            }
            return failure
        }
        func attempt<T>(_ step: String, _ body: () throws(VFIOError) -> T) throws(MigrationFailure) -> T {
            do { return try body() } catch { throw fail(step, error) }
        }

        let sourceFeatures = try attempt("source \(source.name): VFIO_DEVICE_FEATURE_MIGRATION") { () throws(VFIOError) in
            try source.migrationFeatures()
        }
        _ = try attempt("destination \(destination.name): VFIO_DEVICE_FEATURE_MIGRATION") { () throws(VFIOError) in
            try destination.migrationFeatures()
        }
        let sourceState = try attempt("source \(source.name): VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE GET") { () throws(VFIOError) in
            try source.migrationState()
        }
        guard sourceState == .running else {
            throw MigrationFailure(step: "source \(source.name)", error: .invalidArgument("migrate", "the source is in \(sourceState), not RUNNING"))
        }
        let destinationState = try attempt("destination \(destination.name): VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE GET") { () throws(VFIOError) in
            try destination.migrationState()
        }
        let sink = try attempt("destination \(destination.name): \(destinationState) -> RESUMING") { () throws(VFIOError) in
            try destination.setMigrationState(.resuming)
        }
        guard let sink else {
            throw fail("destination \(destination.name): \(destinationState) -> RESUMING",
                       .malformed("migrate", "the move opened no data stream"))
        }
        defer { sink.close() }

        let chunk = max(options.chunkSize, 4096)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var moved: UInt64 = 0
        var estimate: UInt64?
        var estimateSource: PrecopyEstimateSource?

        /// Copies until the source has nothing more (or `limit` bytes). Returns the bytes.
        func copy(_ from: any MigrationDataStream, phase: MigrationProgress.Phase, round: Int,
                  limit: UInt64 = .max, step: String) throws(MigrationFailure) -> UInt64 {
            var copied: UInt64 = 0
            while copied < limit {
                let got = try attempt("source \(source.name): \(step): migration data read") { () throws(VFIOError) in
                    try from.read(into: buffer)
                }
                if got == 0 { break }
                try attempt("destination \(destination.name): RESUMING: migration data write") { () throws(VFIOError) in
                    try sink.write(from: UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
                }
                copied += UInt64(got)
                moved += UInt64(got)
                progress(MigrationProgress(phase: phase, round: round, bytes: moved, remainingEstimate: estimate,
                                           elapsed: clock.now - start, estimateSource: estimateSource))
            }
            return copied
        }

        /// The estimate of what is left, from the source found to give one at the first
        /// call; nil when the source gives none (the reads then make it).
        func remaining(_ stream: any MigrationDataStream) throws(VFIOError) -> UInt64? {
            switch estimateSource {
            case .precopyInfo?:
                let info = try stream.precopyInfo()
                return info.initialBytes + info.dirtyBytes
            case .dataSize?:
                return try source.migrationDataSize()
            case .reads?:
                return nil
            case nil:
                if let info = try? stream.precopyInfo() {
                    estimateSource = .precopyInfo
                    return info.initialBytes + info.dirtyBytes
                }
                do throws(VFIOError) {
                    let size = try source.migrationDataSize()
                    estimateSource = .dataSize
                    return size
                } catch where Self.isNotOffered(error) {
                    estimateSource = .reads
                    return nil
                }
            }
        }

        var stopped: ContinuousClock.Instant
        var saving: any MigrationDataStream
        if options.preCopy && sourceFeatures.contains(.preCopy) {
            report.usedPreCopy = true
            sourceTouched = true
            let opened = try attempt("source \(source.name): RUNNING -> PRE_COPY") { () throws(VFIOError) in
                try source.setMigrationState(.preCopy)
            }
            guard let opened else {
                throw fail("source \(source.name): RUNNING -> PRE_COPY", .malformed("migrate", "the move opened no data stream"))
            }
            saving = opened
            estimate = try attempt("source \(source.name): PRE_COPY: estimate") { () throws(VFIOError) in try remaining(opened) }
            report.estimateSource = estimateSource
            var lastRound: UInt64?
            for round in 1...max(options.maxRounds, 1) {
                report.rounds = round
                // A round reads what the source has now; a device changing faster than it
                // is read is cut at what the round started with (measured by the reads:
                // at what the round before read).
                let limit: UInt64
                if estimateSource == .reads {
                    limit = lastRound.map { max($0, UInt64(chunk)) } ?? max(options.firstRoundLimit, 1)
                } else {
                    limit = max(estimate ?? 0, UInt64(chunk))
                }
                let copied = try copy(opened, phase: .preCopy, round: round, limit: limit, step: "PRE_COPY")
                report.preCopyBytes += copied
                lastRound = copied
                if estimateSource == .reads {
                    estimate = copied
                } else {
                    estimate = try attempt("source \(source.name): PRE_COPY: estimate") { () throws(VFIOError) in try remaining(opened) }
                }
                if let left = estimate, left <= options.threshold { break }
            }
            stopped = clock.now
            let more = try attempt("source \(source.name): PRE_COPY -> STOP_COPY") { () throws(VFIOError) in
                try source.setMigrationState(.stopCopy)
            }
            if let more { saving = more }
        } else {
            estimate = try? source.migrationDataSize()  // taken while it still runs
            sourceTouched = true
            stopped = clock.now
            let opened = try attempt("source \(source.name): RUNNING -> STOP_COPY") { () throws(VFIOError) in
                try source.setMigrationState(.stopCopy)
            }
            guard let opened else {
                throw fail("source \(source.name): RUNNING -> STOP_COPY", .malformed("migrate", "the move opened no data stream"))
            }
            saving = opened
        }
        report.stopCopyBytes = try copy(saving, phase: .stopCopy, round: report.rounds, step: "STOP_COPY")
        saving.close()
        try attempt("destination \(destination.name): RESUMING -> STOP (loading the \(moved)-byte state; a refusal means data it cannot load: another kind of device, or corrupt or truncated)") { () throws(VFIOError) in
            _ = try destination.setMigrationState(.stop)
        }
        try attempt("destination \(destination.name): STOP -> RUNNING") { () throws(VFIOError) in
            _ = try destination.setMigrationState(.running)
        }
        destinationRunning = true
        report.downtime = clock.now - stopped
        try attempt("source \(source.name): STOP_COPY -> STOP") { () throws(VFIOError) in
            _ = try source.setMigrationState(.stop)
        }
        report.total = clock.now - start
        return report
    }

    /// Whether a GET of an estimate failed because the device does not offer it: ENOTTY
    /// (the kernel, this library's server), EINVAL (libvfio-user, for a feature it does
    /// not know), EOPNOTSUPP, or `.unsupported`.
    static func isNotOffered(_ error: VFIOError) -> Bool {
        if case .unsupported = error.reason { return true }
        guard let code = error.errnoValue else { return false }
        return code == ENOTTY || code == EINVAL || code == EOPNOTSUPP
    }

    /// Puts a source back to RUNNING after a failed migration (reset when the move is
    /// refused, e.g. from ERROR) and says what happened.
    static func recoverSource(_ source: any VFIODevice) -> String {
        do {
            _ = try source.setMigrationState(.running)
            return "the source \(source.name) is back in RUNNING"
        } catch {
            do {
                try source.reset()
                return "the source \(source.name) refused RUNNING (\(error)) and was reset to RUNNING"
            } catch let resetError {
                return "the source \(source.name) could not be put back to RUNNING: \(error); reset: \(resetError)"
            }
        }
    }
}
