import Synchronization
import VFIO

/// Which way the open data stream flows.
public enum MigrationStreamDirection: Sendable, Hashable {
    /// Saving (PRE_COPY, PRE_COPY_P2P, STOP_COPY): the user reads with `readData(max:)`.
    case saving
    /// Resuming (RESUMING): the user writes with `writeData(_:)`.
    case resuming
}

/// The kit's migration driver for one `MigratableDevice`: what a kernel migration driver
/// (`vfio_migration_ops` plus its data_fd) does, for a model written in Swift. A server
/// creates one per device (`AttachedDevice` does) and forwards to it:
///
/// | request | call |
/// |---|---|
/// | `VFIO_DEVICE_FEATURE_MIGRATION` (GET) | `features` |
/// | `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` GET / SET | `currentState` / `setState(_:)` |
/// | `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE` | `dataSize()` |
/// | `VFIO_MIG_GET_PRECOPY_INFO` | `precopyInfo()` |
/// | read on data_fd, `VFIO_USER_MIG_DATA_READ` | `readData(max:)` |
/// | write on data_fd, `VFIO_USER_MIG_DATA_WRITE` | `writeData(_:)` |
/// | `VFIO_DEVICE_RESET` | `reset()` (with the model's own `reset()`) |
///
/// Errors are `VFIOError`s: reply with the errno of an `.errno` reason, and `EINVAL` for
/// the others (`.invalidArgument`, `.malformed`: their text says what was wrong).
///
/// **The state machine.** `setState` walks from `currentState` to the target one arc at a
/// time with `MigrationStateMachine.nextState`, as kernel drivers do with
/// `vfio_mig_get_next_state()`. On each arc:
/// - the run state changes when it differs (`MigrationRunState`: running, quiescent,
///   stopped), before the stream work when stopping and after it when resuming;
/// - a saving stream opens on RUNNING -> PRE_COPY, RUNNING_P2P -> PRE_COPY_P2P and
///   STOP -> STOP_COPY, and a resuming stream on STOP -> RESUMING;
/// - the saving stream continues across PRE_COPY -> PRE_COPY_P2P -> STOP_COPY (as the
///   kernel's data_fd does; entering STOP_COPY appends the final data to it);
/// - it closes on STOP_COPY -> STOP, and is abandoned on PRE_COPY -> RUNNING and
///   PRE_COPY_P2P -> RUNNING_P2P; the resuming stream closes on RESUMING -> STOP, which
///   checks the whole stream and loads it into the model.
///
/// **Failures.** A refused request (a target the device does not offer, STOP_COPY ->
/// PRE_COPY, any request while in ERROR) takes no arc: `currentState` is unchanged. When
/// an arc fails, the arcs before it stay done and:
/// - RESUMING -> STOP (a stream that fails the kit's checks or the model's `loadState`)
///   leaves the device in **ERROR**: it cannot be the device the user asked for, and the
///   state it had before RESUMING is no longer meant to be used;
/// - any other arc leaves the device in the arc's **source** state (the state reached so
///   far), with its stream as it was: the kit sets the model's run state back first; if
///   the model refuses that too, the device is in **ERROR**.
/// ERROR drops the streams and is left only by `reset()`, to RUNNING.
///
/// **Pre-copy.** Entering PRE_COPY queues the initial data: a record holding the model's
/// `precopyState()`. Reads return it; `precopyInfo().initialBytes` counts what is left of
/// it. Once it is read, a read compares a fresh `precopyState()` with what was sent and
/// returns a delta record of the changed blocks; `dirtyBytes` estimates the size of what
/// such reads would return now. A read that finds nothing new returns no bytes: the
/// **temporary end of stream** (more may come while the device runs; the kernel's read
/// fails with ENOMSG there). Entering STOP_COPY appends the final record (a delta against
/// what was sent, or the whole state when there was no pre-copy); in STOP_COPY an empty
/// read is the end of the stream.
///
/// Thread-safe; calls are serialised (the model is called with the driver's lock held,
/// so a model must not call its driver).
public final class MigrationDriver: Sendable {
    /// The model.
    public let device: any MigratableDevice
    /// `VFIO_DEVICE_FEATURE_MIGRATION`: the model's features (STOP_COPY, P2P, PRE_COPY).
    public let features: MigrationFeatures
    /// The model's identity, as written into the stream.
    public let identity: MigrationIdentity
    /// The most bytes a resuming stream may hold (writes beyond fail with ENOSPC).
    public let maximumStreamSize: Int
    /// Where a resuming stream's bytes are kept.
    public let bufferAllocator: any BufferAllocator
    private let tracker: TrackingContext?

    private struct SaveStream {
        /// Framed bytes generated and not yet read: `pending[0][readOffset...]`, then the
        /// other pieces whole (record headers and payloads as generated, not copied
        /// together).
        var pending: [[UInt8]]
        var readOffset = 0
        /// Bytes of the initial record not yet read.
        var initialRemaining: Int
        /// The image the destination holds once it has everything generated so far.
        var sentImage: [UInt8]
        var nextSequence: UInt32
        /// The final record has been generated (STOP_COPY).
        var finished: Bool

        var unread: Int { pending.reduce(0) { $0 + $1.count } - readOffset }
    }

    private struct State {
        var current: MigrationState = .running
        var saving: SaveStream?
        var resuming: StreamBytes?
    }

    private let state = Mutex(State())

    /// - Parameters:
    ///   - device: the model.
    ///   - tracker: the context the model is attached to, when it is a `TrackingContext`:
    ///     its interrupts are held while the device is stopped.
    ///   - maximumStreamSize: bound on a resuming stream (default 1 GiB).
    ///   - bufferAllocator: where a resuming stream's bytes are kept (default: the heap).
    /// - Throws: `VFIOError.invalidArgument` when the features lack STOP_COPY.
    public init(device: any MigratableDevice, tracker: TrackingContext? = nil, maximumStreamSize: Int = 1 << 30,
                bufferAllocator: any BufferAllocator = HeapBufferAllocator()) throws(VFIOError) {
        let features = device.migrationFeatures.intersection([.stopCopy, .p2p, .preCopy])
        try MigrationStateMachine.validate(features)
        self.device = device
        self.features = features
        self.identity = device.migrationIdentity
        self.tracker = tracker
        self.maximumStreamSize = maximumStreamSize
        self.bufferAllocator = bufferAllocator
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` GET: the state the device is in.
    public var currentState: MigrationState { state.withLock { $0.current } }

    /// The open data stream's direction, or `nil` when none is open.
    public var openStream: MigrationStreamDirection? {
        state.withLock { s in s.saving != nil ? .saving : s.resuming != nil ? .resuming : nil }
    }

    // MARK: State changes

    /// `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` SET: moves to `target`, one arc at a time
    /// (see the type's documentation for what each arc does and how failures end).
    ///
    /// - Returns: `true` when this call opened a data stream (its last arc opened one: the
    ///   kernel returns a new data_fd then); `false` otherwise, including when the stream
    ///   already open continues (PRE_COPY -> STOP_COPY).
    /// - Throws: `VFIOError.invalidArgument("vfio_mig_get_next_state", …)` for a request
    ///   the state machine refuses (nothing changes); for a failed arc, the model's or the
    ///   stream's error with the arc in front of the operation, e.g.
    ///   `RESUMING -> STOP [migration stream]: malformed: truncated: …`.
    @discardableResult
    public func setState(_ target: MigrationState) throws(VFIOError) -> Bool {
        try state.withLock { (s: inout State) throws(VFIOError) -> Bool in
            var opened = false
            while s.current != target {
                let next = try MigrationStateMachine.nextState(from: s.current, to: target, features: features)
                let arc = MigrationArc(from: s.current, to: next)
                try step(arc, &s)
                opened = arc.opensDataSession
            }
            return opened
        }
    }

    /// `VFIO_DEVICE_RESET`: back to RUNNING from any state (ERROR included), streams
    /// dropped, the model running again (held interrupts delivered). The server calls the
    /// model's own `reset()` as well (`AttachedDevice.reset()` does both).
    /// - Throws: the model's error when it refuses to run; the device is then in ERROR.
    public func reset() throws(VFIOError) {
        try state.withLock { (s: inout State) throws(VFIOError) in
            s.saving = nil
            s.resuming = nil
            do throws(VFIOError) {
                try device.setMigrationRunState(.running)
            } catch {
                s.current = .error
                throw VFIOError("reset [\(error.operation)]", error.reason)
            }
            tracker?.holdInterrupts(false)
            s.current = .running
        }
    }

    private func wrap(_ arc: MigrationArc, _ error: VFIOError) -> VFIOError {
        VFIOError("\(arc) [\(error.operation)]", error.reason)
    }

    private func setRunState(_ run: MigrationRunState) throws(VFIOError) {
        if run == .stopped { tracker?.holdInterrupts(true) }
        try device.setMigrationRunState(run)
        if run != .stopped { tracker?.holdInterrupts(false) }
    }

    private func enterError(_ s: inout State) {
        s.current = .error
        s.saving = nil
        s.resuming = nil
    }

    /// One arc. On return the device is in `arc.to`; on a throw in `arc.from` or ERROR.
    private func step(_ arc: MigrationArc, _ s: inout State) throws(VFIOError) {
        let fromRun = MigrationRunState(arc.from)!  // nextState never leaves from ERROR
        let toRun = MigrationRunState(arc.to)!
        let stopping = toRun != fromRun && (toRun == .stopped || fromRun == .running)

        /// Puts the run state back to the arc's source after a failure, or enters ERROR.
        func undoRun(_ failure: VFIOError) -> VFIOError {
            do {
                try setRunState(fromRun)
            } catch {
                enterError(&s)
            }
            return wrap(arc, failure)
        }

        if stopping {
            do { try setRunState(toRun) } catch { throw undoRun(error) }
        }
        do {
            try streamWork(arc, &s)
        } catch {
            if arc.from == .resuming {
                enterError(&s)
                throw wrap(arc, error)
            }
            if stopping { throw undoRun(error) }
            throw wrap(arc, error)
        }
        if toRun != fromRun && !stopping {
            do { try setRunState(toRun) } catch { throw undoRun(error) }
        }
        s.current = arc.to
    }

    private func streamWork(_ arc: MigrationArc, _ s: inout State) throws(VFIOError) {
        switch (arc.from, arc.to) {
        case (.stop, .resuming):
            let stream = StreamBytes(allocator: bufferAllocator)
            if let hint = device.stateSizeHint, hint > 0 {
                stream.prepare(total: min(MigrationStream.headerSize + hint, maximumStreamSize))
            }
            s.resuming = stream
        case (.resuming, .stop):
            let stream = s.resuming ?? StreamBytes(allocator: bufferAllocator)
            try MigrationStream.withDecoded(stream.bytes, expecting: identity) { (image, version) throws(VFIOError) in
                try device.loadState(from: image, version: version)
            }
            s.resuming = nil
        case (.stop, .stopCopy):
            let image = try device.saveState()
            let record = MigrationStream.recordPieces(kind: .image, final: true, sequence: 0, identity: identity, payload: image)
            s.saving = SaveStream(pending: record, initialRemaining: 0, sentImage: image, nextSequence: 1, finished: true)
        case (.running, .preCopy), (.runningP2P, .preCopyP2P):
            let image = try device.precopyState()
            let record = MigrationStream.recordPieces(kind: .image, final: false, sequence: 0, identity: identity, payload: image)
            s.saving = SaveStream(pending: record, initialRemaining: MigrationStream.headerSize + image.count, sentImage: image,
                                  nextSequence: 1, finished: false)
        case (.preCopy, .stopCopy), (.preCopyP2P, .stopCopy):
            guard var stream = s.saving else { preconditionFailure("PRE_COPY without a saving stream") }
            let image = try device.saveState()
            let payload = MigrationStream.delta(from: stream.sentImage, to: image) ?? MigrationStream.emptyDelta(length: image.count)
            stream.pending += MigrationStream.recordPieces(kind: .delta, final: true, sequence: stream.nextSequence,
                                                           identity: identity, payload: payload)
            stream.nextSequence &+= 1
            stream.sentImage = image
            stream.finished = true
            s.saving = stream
        default:
            if arc.closesDataSession { s.saving = nil }
        }
    }

    // MARK: Data

    /// Reads up to `max` bytes of the saving stream (a read on the kernel's data_fd): the
    /// rest of what was generated, or when all of it was read, in PRE_COPY, a delta of
    /// what changed since.
    ///
    /// An empty result is the end of the data for now: in PRE_COPY / PRE_COPY_P2P the
    /// temporary end of stream (nothing changed since the last read; a later read may
    /// return more), in STOP_COPY the end of the stream.
    /// - Throws: `.invalidArgument` when no saving stream is open; the model's error when a
    ///   pre-copy delta needs a `precopyState()` and it fails (nothing is consumed).
    public func readData(max: Int) throws(VFIOError) -> [UInt8] {
        try state.withLock { (s: inout State) throws(VFIOError) -> [UInt8] in
            var stream = try openSaving(s)
            guard max > 0 else { return [] }
            try generateIfRead(&stream)
            let pieces = take(max, &stream)
            s.saving = stream
            if pieces.count == 1 { return Array(pieces[0].bytes[pieces[0].range]) }
            return pieces.flatMap { $0.bytes[$0.range] }
        }
    }

    /// Reads up to `max` bytes of the saving stream without copying them
    /// (`VFIO_USER_MIG_DATA_READ`: `body` sends them): as many as `readData(max:)` returns
    /// when called again until `max` bytes or an empty result. `body` gets the bytes in
    /// place, in one piece (always in STOP_COPY; in PRE_COPY, bytes that span the end of
    /// one record and a fresh delta are joined into a copy). Fewer than `max` bytes (none
    /// included) is the end of the data for now, as for `readData(max:)`.
    ///
    /// The bytes are consumed when `body` returns; when it throws, nothing is (a delta
    /// generated for the call is dropped and generated again by the next read). `body`
    /// runs with the driver's lock held: it must not call the driver, and other callers
    /// wait while it runs (it may block, on a socket say, for as long as it must).
    /// - Returns: the number of bytes `body` got.
    /// - Throws: `.invalidArgument` when no saving stream is open; the model's error from
    ///   `precopyState()`; `body`'s error.
    @discardableResult
    public func readData(max: Int, _ body: (UnsafeRawBufferPointer) throws(VFIOError) -> Void) throws(VFIOError) -> Int {
        try state.withLock { (s: inout State) throws(VFIOError) -> Int in
            var stream = try openSaving(s)
            var pieces: [(bytes: [UInt8], range: Range<Int>)] = []
            var total = 0
            while total < max {
                try generateIfRead(&stream)
                let more = take(max - total, &stream)
                if more.isEmpty { break }
                pieces += more
                total += more.reduce(0) { $0 + $1.range.count }
            }
            if pieces.count > 1 {
                var joined: [UInt8] = []
                joined.reserveCapacity(total)
                for piece in pieces { joined.append(contentsOf: piece.bytes[piece.range]) }
                try withBytes(joined, body)
            } else if let piece = pieces.first {
                try withBytes(piece.bytes) { (raw: UnsafeRawBufferPointer) throws(VFIOError) in
                    try body(UnsafeRawBufferPointer(rebasing: raw[piece.range]))
                }
            } else {
                try body(UnsafeRawBufferPointer(start: nil, count: 0))
            }
            s.saving = stream
            return total
        }
    }

    private func openSaving(_ s: State) throws(VFIOError) -> SaveStream {
        guard let stream = s.saving else {
            throw .invalidArgument("migration data read", "no saving data stream is open (the device is in \(s.current))")
        }
        return stream
    }

    /// In pre-copy, when everything generated has been read: a delta record of what
    /// changed since (nothing when nothing did).
    private func generateIfRead(_ stream: inout SaveStream) throws(VFIOError) {
        guard stream.unread == 0 && !stream.finished else { return }
        let image = try device.precopyState()
        if let payload = MigrationStream.delta(from: stream.sentImage, to: image) {
            stream.pending = MigrationStream.recordPieces(kind: .delta, final: false, sequence: stream.nextSequence,
                                                          identity: identity, payload: payload)
            stream.readOffset = 0
            stream.nextSequence &+= 1
            stream.sentImage = image
        }
    }

    /// Takes up to `max` of the bytes generated and not read: the pieces that hold them
    /// (not copied) and their ranges there, in order; none when nothing is left.
    private func take(_ max: Int, _ stream: inout SaveStream) -> [(bytes: [UInt8], range: Range<Int>)] {
        var pieces: [(bytes: [UInt8], range: Range<Int>)] = []
        var left = max
        while left > 0, let first = stream.pending.first {
            let count = min(left, first.count - stream.readOffset)
            if count > 0 { pieces.append((first, stream.readOffset..<(stream.readOffset + count))) }
            stream.readOffset += count
            stream.initialRemaining -= min(stream.initialRemaining, count)
            left -= count
            if stream.readOffset == first.count {
                stream.pending.removeFirst()
                stream.readOffset = 0
            }
        }
        return pieces
    }

    /// Appends `bytes` to the resuming stream (a write on the kernel's data_fd). Nothing
    /// is checked until RESUMING -> STOP.
    /// - Returns: the number of bytes taken (all of them).
    /// - Throws: `.invalidArgument` when the device is not RESUMING; `ENOSPC` when the
    ///   stream would exceed `maximumStreamSize`.
    @discardableResult
    public func writeData(_ bytes: UnsafeRawBufferPointer) throws(VFIOError) -> Int {
        try writeData(count: bytes.count) { (target: UnsafeMutableRawBufferPointer) throws(VFIOError) in
            if !bytes.isEmpty { target.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        }
        return bytes.count
    }

    /// Appends `count` bytes to the resuming stream that `fill` writes in place
    /// (`VFIO_USER_MIG_DATA_WRITE`: a socket read straight into the stream, no copy). The
    /// bytes count when `fill` returns; when it throws, the stream is as before. Nothing
    /// is checked until RESUMING -> STOP.
    ///
    /// `fill` runs with the driver's lock held: it must not call the driver, and other
    /// callers wait while it runs.
    /// - Throws: `.invalidArgument` when the device is not RESUMING; `ENOSPC` when the
    ///   stream would exceed `maximumStreamSize` (`fill` is not called then); `fill`'s
    ///   error.
    public func writeData(count: Int, _ fill: (UnsafeMutableRawBufferPointer) throws(VFIOError) -> Void) throws(VFIOError) {
        precondition(count >= 0, "a negative count")
        try state.withLock { (s: inout State) throws(VFIOError) in
            guard let stream = s.resuming else {
                throw .invalidArgument("migration data write", "no resuming data stream is open (the device is in \(s.current))")
            }
            guard count <= maximumStreamSize - stream.count else {
                throw .errno("migration data write", DeviceErrno.ENOSPC)
            }
            let before = stream.count
            try stream.append(length: count, fill)
            // Room for the first record once its header is in (the state's image, most of
            // a stream), so the stream does not grow by copying itself again and again.
            if before < MigrationStream.headerSize, stream.count >= MigrationStream.headerSize,
               let size = MigrationStream.announcedRecordSize(stream.bytes) {
                stream.reserve(total: min(size, maximumStreamSize))
            }
        }
    }

    /// `writeData` for an array.
    @discardableResult
    public func writeData(_ bytes: [UInt8]) throws(VFIOError) -> Int {
        let result = bytes.withUnsafeBytes { raw -> Result<Int, VFIOError> in
            do throws(VFIOError) { return .success(try writeData(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    // MARK: Estimates

    /// `VFIO_MIG_GET_PRECOPY_INFO`: `initialBytes` is what is left to read of the initial
    /// data; `dirtyBytes` the bytes of delta that reads would return now (generated and
    /// unread, plus the changes since the last read).
    /// - Throws: `.invalidArgument` outside PRE_COPY / PRE_COPY_P2P (the kernel's EINVAL);
    ///   the model's error from `precopyState()`.
    public func precopyInfo() throws(VFIOError) -> PrecopyInfo {
        try state.withLock { (s: inout State) throws(VFIOError) -> PrecopyInfo in
            guard s.current == .preCopy || s.current == .preCopyP2P, let stream = s.saving else {
                throw .invalidArgument("VFIO_MIG_GET_PRECOPY_INFO", "the device is in \(s.current), not PRE_COPY or PRE_COPY_P2P")
            }
            let changed = MigrationStream.deltaRecordSize(from: stream.sentImage, to: try device.precopyState())
            return PrecopyInfo(initialBytes: UInt64(stream.initialRemaining),
                               dirtyBytes: UInt64(stream.unread - stream.initialRemaining + changed))
        }
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`: the estimated number of bytes a user still
    /// reads from now until the end of the stop-copy data, if it moved to STOP_COPY now:
    /// the unread bytes of an open saving stream plus the final record, or the whole
    /// state when none is open.
    /// - Throws: the model's error from `saveState()`.
    public func dataSize() throws(VFIOError) -> UInt64 {
        try state.withLock { (s: inout State) throws(VFIOError) -> UInt64 in
            if let stream = s.saving {
                if stream.finished { return UInt64(stream.unread) }
                let image = try device.saveState()
                let final = MigrationStream.delta(from: stream.sentImage, to: image) ?? MigrationStream.emptyDelta(length: image.count)
                return UInt64(stream.unread + MigrationStream.headerSize + final.count)
            }
            return UInt64(MigrationStream.headerSize + (try device.saveState()).count)
        }
    }
}
