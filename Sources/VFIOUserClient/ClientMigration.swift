import Glibc
import Synchronization
import VFIO
import VFIOUserWire
import VFIOSystem

/// Migration v2 over vfio-user: `VFIO_USER_DEVICE_FEATURE` MIG_DEVICE_STATE moves the
/// device (no `data_fd`: the reply carries the state reached), the data travels as
/// `VFIO_USER_MIG_DATA_READ` / `WRITE` on the same socket (`VFIOUserMigrationStream`),
/// and dirty logging is DMA_LOGGING_* with the ranges and the bitmap inline.
extension VFIOUserClient {
    /// Whether `state` has a data stream, and which way it flows.
    private static func streamDirection(_ state: MigrationState) -> VFIOUserMigrationStream.Direction? {
        switch state {
        case .preCopy, .preCopyP2P, .stopCopy: return .saving
        case .resuming: return .resuming
        default: return nil
        }
    }

    /// SET MIG_DEVICE_STATE. The state before the move (read with a GET unless this
    /// client knows it from its last move or GET) tells
    /// whether the move opens a stream, as the kernel's non-negative `data_fd` does: it
    /// does when `state` has one (PRE_COPY, PRE_COPY_P2P, STOP_COPY, RESUMING) and the
    /// state before had none, or one flowing the other way. PRE_COPY -> STOP_COPY keeps
    /// the stream PRE_COPY opened (`nil` is returned: keep reading it).
    /// - Throws: the server's errno, the operation naming the target state and the state
    ///   the device is in afterwards, e.g.
    ///   `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET STOP (the device is now in ERROR)`.
    public func setMigrationState(_ state: MigrationState) throws(VFIOError) -> (any MigrationDataStream)? {
        try setMigrationStateReturningStream(state)
    }

    /// `setMigrationState(_:)` with the concrete stream type.
    public func setMigrationStateReturningStream(_ state: MigrationState) throws(VFIOError) -> VFIOUserMigrationStream? {
        let name = "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET \(state)"
        let before: MigrationState
        if let known = core.knownMigrationState { before = known } else { before = try migrationState() }
        let payload = DeviceFeature.set(.migrationDeviceState(MigrationStateFeature(deviceState: state))).encoded()
        core.knownMigrationState = nil
        do {
            let reply = try core.request(.deviceFeature, payload: payload)
            // The reply carries the state reached (vfio-user's MIG_DEVICE_STATE SET reply).
            if case .set(.migrationDeviceState(let reached))? = try? DeviceFeature(decoding: reply.payload, layout: .vfioUser),
               reached.deviceState == state {
                core.knownMigrationState = state
            }
        } catch {
            let now = (try? migrationState()).map { "the device is now in \($0)" } ?? "its state is unreadable"
            throw VFIOError("\(name) (\(now))", error.reason)
        }
        guard let direction = Self.streamDirection(state), before != state,
              Self.streamDirection(before) != direction else { return nil }
        return VFIOUserMigrationStream(client: self, direction: direction, openedBy: state)
    }

    /// SET DMA_LOGGING_START with the ranges inline. Returns the page size the server
    /// chose (its reply repeats the request with it).
    /// - Throws: `.invalidArgument` for no ranges (vfio-user's "log everything", which
    ///   this library does not ask for); the server's errno (`EINVAL` for unaligned or
    ///   overlapping ranges, `EBUSY` when logging is on already, `ENOTTY`).
    public func startDirtyLogging(ranges: [DMALoggingRange], pageSize: UInt64) throws(VFIOError) -> UInt64 {
        let name = "VFIO_DEVICE_FEATURE_DMA_LOGGING_START"
        guard !ranges.isEmpty else { throw .invalidArgument(name, "no ranges") }
        let control = VFIOUserDMALoggingControl(pageSize: pageSize, ranges: ranges)
        let request = DeviceFeature.set(.vfioUserDMALoggingStart(control)).encoded()
        guard request.count <= transferChunk else {
            throw .invalidArgument(name, "\(ranges.count) ranges do not fit one message (max_data_xfer_size \(transferChunk))")
        }
        let reply = try core.request(.deviceFeature, payload: request)
        guard case .set(.vfioUserDMALoggingStart(let chosen))? = try? DeviceFeature(decoding: reply.payload, layout: .vfioUser) else {
            // A server that answers with no data keeps the page size asked for.
            return pageSize
        }
        return chosen.pageSize
    }

    /// SET DMA_LOGGING_STOP.
    public func stopDirtyLogging() throws(VFIOError) {
        _ = try core.request(.deviceFeature, payload: DeviceFeature.set(.dmaLoggingStop).encoded())
    }

    /// GET DMA_LOGGING_REPORT: the reply carries the bitmap inline (read-and-clear).
    /// - Throws: `.invalidArgument` for a page size that is not a power of two or a
    ///   bitmap larger than one message; the server's errno.
    public func reportDirtyPages(iova: UInt64, length: UInt64, pageSize: UInt64) throws(VFIOError) -> [UInt64] {
        let name = "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT"
        guard pageSize != 0, pageSize & (pageSize - 1) == 0,
              let words = DMALoggingReport.bitmapWordCount(length: length, pageSize: pageSize) else {
            throw .invalidArgument(name, "page size \(pageSize) is not a power of two")
        }
        guard words * 8 + UInt64(VFIOUserDMALoggingReport.fixedSize) <= UInt64(transferChunk) else {
            throw .invalidArgument(name, "a bitmap of \(words) words does not fit one message (max_data_xfer_size \(transferChunk)); report smaller ranges")
        }
        let reply = try feature(.get(.vfioUserDMALoggingReport(VFIOUserDMALoggingReport(iova: iova, length: length, pageSize: pageSize))))
        guard case .vfioUserDMALoggingReport(let report)? = reply, let bitmap = report.bitmap else {
            throw .malformed(name, "the reply carries no bitmap")
        }
        guard report.iova == iova, report.length == length, report.pageSize == pageSize, bitmap.count == Int(words) else {
            throw .malformed(name, "the reply describes another range or page size")
        }
        return bitmap
    }
}

extension VFIOUserClient {
    /// `VFIO_USER_MIG_DATA_READ`: up to `size` bytes of migration data.
    public func migrationDataRead(size: UInt32) throws(VFIOError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let count = try bytes.withMutableBytes { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int in
            try migrationDataRead(into: raw)
        }
        bytes.removeSubrange(count...)
        return bytes
    }

    /// `VFIO_USER_MIG_DATA_READ` of up to `buffer.count` bytes (at most
    /// `max_data_xfer_size`) straight into `buffer`; returns the bytes read, the reply's
    /// `size` (fewer when the stream has no more for now, 0 at its end).
    ///
    /// Sends `argsz` 8 + `buffer.count` and `size` `buffer.count`. A reply whose data is
    /// longer than its `size` is taken and its first `size` bytes used (libvfio-user pads
    /// every reply to 8 + the size asked for).
    /// - Throws: `.invalidArgument` past `max_data_xfer_size`; `.malformed` when the reply's
    ///   `size` is larger than asked for or than the data it carries; the server's errno.
    public func migrationDataRead(into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int {
        let name = "VFIO_USER_MIG_DATA_READ"
        guard buffer.count <= transferChunk, buffer.count <= Int(UInt32.max) - VFIOUserMigData.fixedSize else {
            throw .invalidArgument(name, "\(buffer.count) bytes exceed max_data_xfer_size \(transferChunk)")
        }
        // struct vfio_user_mig_data: argsz, size.
        let size = UInt32(buffer.count)
        var request = ((UInt32(VFIOUserMigData.fixedSize) + size).littleEndian, size.littleEndian)
        var answer = (UInt32(0), UInt32(0))
        let reply = try withUnsafeBytes(of: &request) { (head: UnsafeRawBufferPointer) throws(VFIOError) -> ExchangeReply in
            try withUnsafeMutableBytes(of: &answer) { (prefix: UnsafeMutableRawBufferPointer) throws(VFIOError) -> ExchangeReply in
                try core.exchange(VFIOUserCommand.migDataRead.rawValue, head,
                                  direct: DirectReply(prefix: prefix, data: buffer, acceptsShorter: true))
            }
        }
        try reply.checkReply(name)
        if reply.receivedDirectly {
            let stated = UInt32(littleEndian: answer.1)
            guard stated <= UInt32(reply.directDataCount) else {
                throw .malformed(name, "the reply says \(stated) byte(s) and carries \(reply.directDataCount)")
            }
            return Int(stated)
        }
        let data = try VFIOUserMigData.readReplyData(reply.payload, requested: size)
        data.withUnsafeBytes { if $0.count > 0 { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        return data.count
    }

    /// `VFIO_USER_MIG_DATA_WRITE`.
    public func migrationDataWrite(_ data: [UInt8]) throws(VFIOError) {
        try data.withBytes { (raw: UnsafeRawBufferPointer) throws(VFIOError) in try migrationDataWrite(from: raw) }
    }

    /// `VFIO_USER_MIG_DATA_WRITE` of `buffer` (at most `max_data_xfer_size` bytes), sent
    /// from where it lies, with `argsz` 8 + `buffer.count` (the whole structure: the spec
    /// allows it, and libvfio-user refuses a smaller one with EINVAL).
    /// - Throws: `.invalidArgument` past `max_data_xfer_size`; the server's errno.
    public func migrationDataWrite(from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        let name = "VFIO_USER_MIG_DATA_WRITE"
        guard buffer.count <= transferChunk, buffer.count <= Int(UInt32.max) - VFIOUserMigData.fixedSize else {
            throw .invalidArgument(name, "\(buffer.count) bytes exceed max_data_xfer_size \(transferChunk)")
        }
        let size = UInt32(buffer.count)
        var request = ((UInt32(VFIOUserMigData.fixedSize) + size).littleEndian, size.littleEndian)
        let reply = try withUnsafeBytes(of: &request) { (head: UnsafeRawBufferPointer) throws(VFIOError) -> ExchangeReply in
            try core.exchange(VFIOUserCommand.migDataWrite.rawValue, head, buffer)
        }
        try reply.checkReply(name)
    }
}

/// The migration data stream of a `VFIOUserClient`: reads are `VFIO_USER_MIG_DATA_READ`,
/// writes `VFIO_USER_MIG_DATA_WRITE`, in pieces of at most `max_data_xfer_size` (the
/// smaller of the two peers').
///
/// vfio-user has no `VFIO_MIG_GET_PRECOPY_INFO`: `precopyInfo()` throws `.unsupported`;
/// estimate what is left with the device's `migrationDataSize()` (MIG_DATA_SIZE) instead.
/// `close()` only stops this object from being used: the server ends the stream on the
/// arc that ends it (as the kernel ends a session on the arc, not on the fd's close).
public final class VFIOUserMigrationStream: MigrationDataStream {
    public enum Direction: Sendable, Hashable {
        case saving
        case resuming
    }

    public let client: VFIOUserClient
    public let direction: Direction
    /// The state whose move opened the stream.
    public let openedBy: MigrationState
    private let closed = Atomic<Bool>(false)

    init(client: VFIOUserClient, direction: Direction, openedBy: MigrationState) {
        self.client = client
        self.direction = direction
        self.openedBy = openedBy
    }

    private func requireOpen(_ name: String) throws(VFIOError) {
        if closed.load(ordering: .acquiring) { throw .errno("\(name) (the stream is closed)", EBADF) }
    }

    /// Reads up to `buffer.count` bytes: MIG_DATA_READ of up to `max_data_xfer_size` at a
    /// time, until the buffer is full or a reply is short (nothing more for now). Returns
    /// 0 when nothing is left: in STOP_COPY the end of the stream, in PRE_COPY the
    /// temporary end (more may come).
    /// - Throws: `EBADF` once closed or on a resuming stream; the server's errno
    ///   (`EINVAL` when no saving stream is open).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int {
        let name = "VFIO_USER_MIG_DATA_READ"
        try requireOpen(name)
        guard direction == .saving else { throw .errno("\(name) on a resuming stream", EBADF) }
        let chunk = client.transferChunk
        var done = 0
        while done < buffer.count {
            let want = min(chunk, buffer.count - done)
            let got = try client.migrationDataRead(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + want]))
            done += got
            if got < want { break }
        }
        return done
    }

    /// Writes all of `buffer`: MIG_DATA_WRITE of up to `max_data_xfer_size` at a time.
    /// - Throws: `EBADF` once closed or on a saving stream; the server's errno (`EINVAL`
    ///   when the device is not RESUMING, `ENOSPC` past its limit), naming the bytes
    ///   written so far.
    public func write(from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        let name = "VFIO_USER_MIG_DATA_WRITE"
        try requireOpen(name)
        guard direction == .resuming else { throw .errno("\(name) on a saving stream", EBADF) }
        let chunk = client.transferChunk
        var done = 0
        while done < buffer.count {
            let count = min(chunk, buffer.count - done)
            do {
                try client.migrationDataWrite(from: UnsafeRawBufferPointer(rebasing: buffer[done..<done + count]))
            } catch {
                throw VFIOError("\(name) (after \(done) of \(buffer.count) bytes)", error.reason)
            }
            done += count
        }
    }

    /// vfio-user has no `VFIO_MIG_GET_PRECOPY_INFO`.
    /// - Throws: `.unsupported` always; use `client.migrationDataSize()` for an estimate.
    public func precopyInfo() throws(VFIOError) -> PrecopyInfo {
        throw .unsupported("VFIO_MIG_GET_PRECOPY_INFO", "vfio-user has no pre-copy info command; estimate with VFIO_DEVICE_FEATURE_MIG_DATA_SIZE")
    }

    public func close() { closed.store(true, ordering: .releasing) }
}
