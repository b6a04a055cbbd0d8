import CVFIO
import Glibc
import VFIO
import VFIOSystem
import VFIOUserWire

/// A vfio-user device seen from the client side: a `VFIODevice` whose every operation is a
/// message to a server over a UNIX socket.
///
/// - Connects to a path (`init(path:)`) or adopts a connected socket (`init(socket:)`,
///   for socket pairs), then negotiates `VFIO_USER_VERSION` (0.0, like QEMU).
/// - Incoming messages are read by one thread at a time (leader/follower): a caller waiting
///   for its reply reads the socket itself when nobody else does (no thread hop for a lone
///   request), handing replies to the callers waiting for them (several callers may wait
///   at once; requests are pipelined); a receive thread reads while no caller waits. The
///   server's `VFIO_USER_DMA_READ` / `DMA_WRITE` are served on a DMA thread against the
///   memory this client mapped with `mapDMA`, so server DMA works for memory without a
///   shareable descriptor.
/// - `mapRegion` maps the descriptor the server returns with the region info; `mapDMA`
///   passes the memory's `sharedDescriptor` with `DMA_MAP` (or none for anonymous memory);
///   `setIRQs` passes eventfds as SCM_RIGHTS, in chunks of the server's `max_msg_fds`.
///
/// Thread-safe. `close()` (or releasing the client) shuts the socket down.
public final class VFIOUserClient: VFIODevice, @unchecked Sendable {
    /// Client-side settings.
    public struct Configuration: Sendable {
        /// The capabilities this client states (what it accepts).
        public var capabilities: VFIOUserCapabilities
        /// The version proposed.
        public var major: UInt16
        public var minor: UInt16
        /// How long the connection must be quiet (no request sent, no reply taken) before
        /// the client's receive thread takes over reading the socket. A message the server
        /// sends while no request is in flight (DMA_READ / DMA_WRITE after a reply) is read
        /// by the next request or within twice this delay. Shorter makes such
        /// messages wait less; every request that comes while the receive thread reads
        /// costs a thread hop, and while requests keep coming the receive thread wakes
        /// about once per delay to look. Default 5 ms.
        public var idleReadDelay: Duration
        /// How long a request waits for its reply. When it passes, the caller gets
        /// `ETIMEDOUT` naming the request and the connection is failed: every other caller,
        /// and every later call, gets that error too (a late reply could not be told from
        /// the reply to a later request). A reply left half-sent counts as no reply; the
        /// same bound holds for a socket the server leaves full while this client has a
        /// request or a DMA reply to send. Default 5 s, QEMU's `x-msg-timeout`: servers
        /// written for QEMU answer within it. Not scaled by size: one message carries at
        /// most `max_data_xfer_size` (1 MiB by default), milliseconds of copying. At least
        /// 1 ms, at most 24 h.
        public var replyTimeout: Duration
        /// The reply timeout of requests whose server work may rightly take long:
        /// `VFIO_USER_DEVICE_RESET` (the specification warns that a reset may take
        /// arbitrarily long), `VFIO_USER_DEVICE_FEATURE` (migration state moves, which may
        /// save or load the whole device state, and dirty-page reports) and
        /// `VFIO_USER_MIG_DATA_READ` / `WRITE`. Default 60 s.
        public var slowReplyTimeout: Duration
        /// The most memory the server's commands (`VFIO_USER_DMA_READ` / `DMA_WRITE`) may hold
        /// while they wait for this client's DMA thread, each counted as its payload plus
        /// 256 bytes. At the limit the client stops reading the socket until the DMA thread
        /// has answered some (a server that sends commands without reading the replies is
        /// stopped by its own full socket; callers waiting meanwhile get the reply timeout).
        /// The command that reaches the limit is kept, so what is held stays below the limit
        /// plus one message (`max_data_xfer_size` + 4 KiB at most). Default 16 MiB.
        public var maxQueuedServerCommandBytes: Int

        public init(capabilities: VFIOUserCapabilities = VFIOUserCapabilities(maxMessageFDs: 16, maxDataTransferSize: 1 << 20),
                    major: UInt16 = VFIOUserVersion.major, minor: UInt16 = VFIOUserVersion.minor,
                    idleReadDelay: Duration = .milliseconds(5),
                    replyTimeout: Duration = .seconds(5), slowReplyTimeout: Duration = .seconds(60),
                    maxQueuedServerCommandBytes: Int = 16 << 20) {
            self.capabilities = capabilities
            self.major = major
            self.minor = minor
            self.idleReadDelay = idleReadDelay
            self.replyTimeout = replyTimeout
            self.slowReplyTimeout = slowReplyTimeout
            self.maxQueuedServerCommandBytes = maxQueuedServerCommandBytes
        }

        var idleReadDelayNanoseconds: UInt64 { nanoseconds(idleReadDelay, atMost: 3600 * 1_000_000_000) }
        var replyTimeoutNanoseconds: UInt64 { max(nanoseconds(replyTimeout, atMost: Self.longestTimeout), 1_000_000) }
        var slowReplyTimeoutNanoseconds: UInt64 { max(nanoseconds(slowReplyTimeout, atMost: Self.longestTimeout), 1_000_000) }

        private static let longestTimeout: UInt64 = 24 * 3600 * 1_000_000_000
    }

    public let name: String
    /// What the server answered to VERSION.
    public let serverVersion: VFIOUserVersion
    public let configuration: Configuration
    let core: ClientCore
    /// Runs after the connection is shut down (`close()`, release): an in-process server's
    /// `wait`.
    private let afterClose: (@Sendable () -> Void)?

    /// The server's capabilities (defaults for what it did not state).
    public var serverCapabilities: VFIOUserCapabilities { serverVersion.capabilities }

    /// Connects to the server listening at `path` and negotiates the version.
    public convenience init(path: String, name: String? = nil, configuration: Configuration = Configuration()) throws(VFIOError) {
        let socket = try VFIOUserSocket.connect(path: path)
        try self.init(socket: socket, name: name ?? "unix:\(path)", configuration: configuration)
    }

    /// Takes a connected socket and negotiates the version. `afterClose` runs after the
    /// connection is shut down (by `close()` or when the client is released; it must
    /// tolerate running twice): `VFIOUserServer.wait` of a server serving the other end in
    /// this process.
    public init(socket: VFIOUserSocket, name: String, configuration: Configuration = Configuration(),
                afterClose: (@Sendable () -> Void)? = nil) throws(VFIOError) {
        self.name = name
        self.afterClose = afterClose
        self.configuration = configuration
        core = ClientCore(socket: socket, configuration: configuration)
        core.start()
        do throws(VFIOError) {
            let proposal = VFIOUserVersion(major: configuration.major, minor: configuration.minor, capabilities: configuration.capabilities)
            let reply = try core.request(.version, payload: proposal.encoded)
            let version = try VFIOUserVersion(decoding: reply.payload)
            guard version.major == configuration.major, version.minor <= configuration.minor else {
                throw VFIOError.unsupported("VFIO_USER_VERSION", "server answered version \(version.major).\(version.minor) to \(configuration.major).\(configuration.minor)")
            }
            serverVersion = version
            transferChunk = Int(min(version.capabilities.maxDataTransferSize, configuration.capabilities.maxDataTransferSize))
        } catch {
            core.close()
            afterClose?()
            throw error
        }
    }

    deinit {
        core.close()
        afterClose?()
    }

    /// Shuts the connection down; later calls fail with `ECONNRESET`.
    public func close() {
        core.close()
        afterClose?()
    }

    /// Whether the connection is still up.
    public var isConnected: Bool { core.isConnected }

    // MARK: Raw messages

    /// Sends a command with any payload and descriptors (borrowed) and returns the reply
    /// (`nil` with `.noReply`). The reply's ERROR flag is not turned into an error: look at
    /// `header.isError`. For tests and protocol extensions.
    public func rawRequest(command: UInt16, payload: [UInt8], fds: [Int32] = [], flags: VFIOUserMessageFlags = []) throws(VFIOError) -> VFIOUserMessage? {
        core.knownMigrationState = nil
        return try core.rawRequest(command: command, payload: payload, fds: fds, flags: flags)
    }

    // MARK: VFIODevice

    /// The most region indexes and IRQ indexes a server's device info may state: a PCI
    /// device has 9 regions and 5 IRQ indexes, plus a few device-specific ones; 64 leaves
    /// room for any real device while a caller that asks about each index (as `vfio info`
    /// does) makes a bounded number of requests.
    public static let maxRegions: UInt32 = 64
    public static let maxIRQIndexes: UInt32 = 64

    /// `VFIO_USER_DEVICE_GET_INFO`.
    /// - Throws: `.malformed` when the server states more than `maxRegions` regions or
    ///   `maxIRQIndexes` IRQ indexes; the server's errno.
    public func deviceInfo() throws(VFIOError) -> DeviceInfo {
        let reply = try core.request(.deviceGetInfo, payload: VFIOUserDeviceInfo.request.encoded)
        let info = try VFIOUserDeviceInfo(decoding: reply.payload).deviceInfo
        guard info.numRegions <= Self.maxRegions else {
            throw .malformed("VFIO_USER_DEVICE_GET_INFO", "num_regions \(info.numRegions) is above the \(Self.maxRegions) this client accepts")
        }
        guard info.numIRQs <= Self.maxIRQIndexes else {
            throw .malformed("VFIO_USER_DEVICE_GET_INFO", "num_irqs \(info.numIRQs) is above the \(Self.maxIRQIndexes) this client accepts")
        }
        return info
    }

    public func regionInfo(_ index: UInt32) throws(VFIOError) -> RegionInfo {
        let (info, fd) = try regionInfoWithDescriptor(index)
        fd?.close()
        return info
    }

    /// The region info and the descriptor the server sent with it (for mmap), asking once
    /// more with the `argsz` the reply states when the capability chain did not fit.
    /// - Throws: `.malformed` when the reply asks for more than `ArgszRetry.maximumSize`
    ///   (16 MiB), or still does not fit after the second request; the server's errno.
    public func regionInfoWithDescriptor(_ index: UInt32) throws(VFIOError) -> (RegionInfo, OwnedDescriptor?) {
        try withArgszRetry("VFIO_USER_DEVICE_GET_REGION_INFO", region: index, capacity: 256) { (capacity: Int) throws(VFIOError) in
            // The request is the fixed part alone; its argsz states the room for the reply.
            var query = RegionInfo.query(index: index, capacity: RegionInfo.fixedSize)
            withUnsafeBytes(of: UInt32(capacity).littleEndian) { for i in 0..<4 { query[i] = $0[i] } }
            let reply = try core.request(.deviceGetRegionInfo, payload: query)
            var owned = reply.takeDescriptors().map { OwnedDescriptor($0) }
            let needed = Int(try ByteReader(reply.payload, context: RegionInfo.cName).peekU32(at: 0))
            if needed > capacity && reply.payload.count < needed { return (nil, needed) }
            let info = try RegionInfo(decoding: reply.payload)
            guard info.index == index else {
                throw .malformed("VFIO_USER_DEVICE_GET_REGION_INFO", "asked for region \(index), the reply describes \(info.index)")
            }
            let fd = owned.isEmpty ? nil : owned.removeFirst()
            for extra in owned { extra.close() }
            return ((info, fd), needed)
        }
    }

    /// Runs `attempt` with room for `capacity` bytes and, when it reports that the reply
    /// needs more (a nil result and the `argsz` the reply states), once more with that
    /// room: the `argsz` retry of a vfio-user query for region `index`.
    /// - Throws: `.malformed` when the reply asks for more than `ArgszRetry.maximumSize`
    ///   (16 MiB), or for more again after the retry; what `attempt` throws.
    private func withArgszRetry<T>(_ name: String, region index: UInt32, capacity: Int,
                                   _ attempt: (Int) throws(VFIOError) -> (result: T?, needed: Int)) throws(VFIOError) -> T {
        let first = try attempt(capacity)
        if let result = first.result { return result }
        guard first.needed <= ArgszRetry.maximumSize else {
            throw .malformed(name, "region \(index): the reply asks for \(first.needed) bytes, above the \(ArgszRetry.maximumSize)-byte limit")
        }
        let second = try attempt(first.needed)
        if let result = second.result { return result }
        throw .malformed(name, "region \(index): the reply asked for \(first.needed) bytes, then for \(second.needed) after the retry")
    }

    public func irqInfo(_ index: UInt32) throws(VFIOError) -> IRQInfo {
        let reply = try core.request(.deviceGetIRQInfo, payload: IRQInfo.query(index: index))
        let info = try IRQInfo(decoding: reply.payload)
        guard info.index == index else {
            throw .malformed("VFIO_USER_DEVICE_GET_IRQ_INFO", "asked for index \(index), the reply describes \(info.index)")
        }
        return info
    }

    /// The largest data count one REGION/DMA message may carry in each direction.
    let transferChunk: Int

    public func read(region index: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        guard buffer.count > 0 else { return }
        if buffer.count <= transferChunk {
            return try regionAccess(.regionRead, region: index, offset: offset, count: buffer.count, replyData: buffer)
        }
        var done = 0
        let chunk = transferChunk
        repeat {
            let count = min(chunk, buffer.count - done)
            let (at, overflow) = offset.addingReportingOverflow(UInt64(done))
            if overflow { throw .invalidArgument("VFIO_USER_REGION_READ", "offset + count wraps") }
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + count])
            try regionAccess(.regionRead, region: index, offset: at, count: count, replyData: piece)
            done += count
        } while done < buffer.count
    }

    /// One REGION_READ or REGION_WRITE of `count` bytes: the request's
    /// `struct vfio_user_region_access` and data (`writeData`) go out gathered, the reply's
    /// data lands in `replyData` (reads); both checked against the request.
    private func regionAccess(_ command: VFIOUserCommand, region index: UInt32, offset: UInt64, count: Int,
                              writeData: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                              replyData: UnsafeMutableRawBufferPointer = UnsafeMutableRawBufferPointer(start: nil, count: 0),
                              noReply: Bool = false) throws(VFIOError) {
        var request = Self.regionAccessHead(region: index, offset: offset, count: count)
        var answer = (UInt64(0), UInt64(0))
        let reply = try withUnsafeBytes(of: &request) { (head: UnsafeRawBufferPointer) throws(VFIOError) -> ExchangeReply? in
            if noReply {
                try core.post(command.rawValue, head, writeData)
                return nil
            }
            return try withUnsafeMutableBytes(of: &answer) { (prefix: UnsafeMutableRawBufferPointer) throws(VFIOError) -> ExchangeReply in
                try core.exchange(command.rawValue, head, writeData, direct: DirectReply(prefix: prefix, data: replyData))
            }
        }
        guard let reply else { return }
        try checkRegionReply(reply, command, count: count, answer: answer, replyData: replyData)
    }

    /// `struct vfio_user_region_access` (offset, region, count; little-endian) as two words.
    static func regionAccessHead(region: UInt32, offset: UInt64, count: Int) -> (UInt64, UInt64) {
        (offset.littleEndian, (UInt64(UInt32(count)) << 32 | UInt64(region)).littleEndian)
    }

    /// Checks a REGION_READ / REGION_WRITE reply against its request of `count` bytes:
    /// not an error, the echoed count the same; a read's data in `replyData` (copied there
    /// when the reply did not land directly). `answer` holds the echoed
    /// `struct vfio_user_region_access` of a direct reply.
    func checkRegionReply(_ reply: ExchangeReply, _ command: VFIOUserCommand, count: Int, answer: (UInt64, UInt64),
                          replyData: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        try reply.checkReply(command.cName)
        let echoedCount: UInt32
        if reply.receivedDirectly {
            echoedCount = UInt32(truncatingIfNeeded: UInt64(littleEndian: answer.1) >> 32)
        } else {
            let echoed = try VFIOUserRegionAccess(decoding: reply.payload)
            if command == .regionRead {
                guard echoed.data.count == count else {
                    throw .malformed(command.cName, "asked for \(count) byte(s), the reply has \(echoed.data.count)")
                }
                echoed.data.withUnsafeBytes { replyData.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: count) }
            }
            echoedCount = echoed.count
        }
        guard echoedCount == UInt32(count) else {
            throw .malformed(command.cName, "\(command == .regionRead ? "asked for" : "wrote") \(count) byte(s), the reply says \(echoedCount)")
        }
    }

    public func write(region index: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        try write(region: index, offset: offset, from: buffer, noReply: false)
    }

    /// A posted write: REGION_WRITE with NO_REPLY (in chunks). The server handles messages
    /// in order, so a later read sees it; a failure is not reported.
    public func postWrite(region index: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        try write(region: index, offset: offset, from: buffer, noReply: true)
    }

    private func write(region index: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer, noReply: Bool) throws(VFIOError) {
        guard buffer.count > 0 else { return }
        if buffer.count <= transferChunk {
            return try regionAccess(.regionWrite, region: index, offset: offset, count: buffer.count, writeData: buffer, noReply: noReply)
        }
        var done = 0
        let chunk = transferChunk
        repeat {
            let count = min(chunk, buffer.count - done)
            let (at, overflow) = offset.addingReportingOverflow(UInt64(done))
            if overflow { throw .invalidArgument("VFIO_USER_REGION_WRITE", "offset + count wraps") }
            try regionAccess(.regionWrite, region: index, offset: at, count: count,
                             writeData: UnsafeRawBufferPointer(rebasing: buffer[done..<done + count]), noReply: noReply)
            done += count
        } while done < buffer.count
    }

    /// `VFIO_USER_REGION_WRITE_MULTI`: up to 200 writes of 1...8 bytes in one message.
    /// Returns the number of writes the server completed (`nil` with `noReply`).
    /// - Throws: `.unsupported` when the server did not offer `write_multiple`.
    @discardableResult
    public func writeMultiple(_ writes: [VFIOUserWriteOne], noReply: Bool = false) throws(VFIOError) -> UInt64? {
        guard serverCapabilities.writeMultiple else {
            throw .unsupported("VFIO_USER_REGION_WRITE_MULTI", "the server did not offer write_multiple")
        }
        guard writes.count <= VFIOUserWriteMulti.maxWrites, writes.allSatisfy({ (1...8).contains($0.data.count) }) else {
            throw .invalidArgument("VFIO_USER_REGION_WRITE_MULTI", "at most 200 writes of 1...8 bytes")
        }
        let payload = VFIOUserWriteMulti(writes: writes).encoded
        if noReply {
            try core.post(.regionWriteMulti, payload: payload)
            return nil
        }
        let reply = try core.request(.regionWriteMulti, payload: payload)
        return try VFIOUserWriteMultiReply(decoding: reply.payload).completed
    }

    /// `VFIO_USER_DEVICE_GET_REGION_IO_FDS` for region `index`: the sub-regions and the
    /// descriptors they index (owned by the caller). Asks once more with the `argsz` the
    /// reply states when the sub-regions did not fit.
    /// - Throws: `.malformed` when the reply asks for more than `ArgszRetry.maximumSize`
    ///   (16 MiB), or still does not fit after the second request; the server's errno.
    public func regionIOFDs(_ index: UInt32) throws(VFIOError) -> (VFIOUserRegionIOFDs, [OwnedDescriptor]) {
        try withArgszRetry("VFIO_USER_DEVICE_GET_REGION_IO_FDS", region: index, capacity: 16 + 40 * 8) { (capacity: Int) throws(VFIOError) in
            let request = VFIOUserRegionIOFDs(argsz: UInt32(capacity), index: index)
            let reply = try core.request(.deviceGetRegionIOFDs, payload: request.encoded)
            let fds = reply.takeDescriptors().map { OwnedDescriptor($0) }
            let answer = try VFIOUserRegionIOFDs(decoding: reply.payload)
            let needed = Int(answer.argsz)
            if needed > capacity, answer.subRegions.count < Int(answer.count) { return (nil, needed) }
            for sub in answer.subRegions where Int(sub.fdIndex) >= fds.count {
                throw .malformed("VFIO_USER_DEVICE_GET_REGION_IO_FDS", "sub-region names descriptor \(sub.fdIndex), \(fds.count) came")
            }
            return ((answer, fds), needed)
        }
    }

    /// One ioeventfd a server handed out for a register (`regionIOEventFDs`): `signal()`
    /// on `event` stands for a write of `width` bytes (0: any width) at `offset` of the
    /// region, of the value `dataMatch` when it is set. That is what KVM does for a
    /// guest's store once a VMM registers the eventfd with `KVM_IOEVENTFD`; a Swift
    /// driver signals it itself. Areas may share one `event`.
    public struct RegionIOEventFD: Sendable {
        public let offset: UInt64
        public let width: UInt64
        public let dataMatch: UInt64?
        public let event: EventFD
    }

    /// The ioeventfds of region `index` (`regionIOFDs`, keeping only what a Swift caller
    /// can use): an empty list when the server offers none.
    /// - Throws: `.unsupported` when a sub-region is not an ioeventfd (an ioregionfd) or
    ///   has flags other than `KVM_IOEVENTFD_FLAG_DATAMATCH` (PIO, virtio-ccw notify);
    ///   `regionIOFDs`' errors.
    public func regionIOEventFDs(_ index: UInt32) throws(VFIOError) -> [RegionIOEventFD] {
        let (answer, fds) = try regionIOFDs(index)
        let events = fds.map { EventFD(adopting: $0) }
        let dataMatch: UInt32 = 1   // KVM_IOEVENTFD_FLAG_DATAMATCH
        var result: [RegionIOEventFD] = []
        for sub in answer.subRegions {
            guard sub.type == VFIOUserIOFDType.ioeventfd.rawValue, sub.flags & ~dataMatch == 0 else {
                throw .unsupported("VFIO_USER_DEVICE_GET_REGION_IO_FDS", "region \(index) sub-region at 0x\(String(sub.offset, radix: 16)) is of type \(sub.type) with flags 0x\(String(sub.flags, radix: 16)); only plain ioeventfds are usable here")
            }
            result.append(RegionIOEventFD(offset: sub.offset, width: sub.size, dataMatch: sub.flags & dataMatch != 0 ? sub.data : nil,
                                          event: events[Int(sub.fdIndex)]))
        }
        return result
    }

    public func mapRegion(_ index: UInt32, offset: UInt64, size: Int) throws(VFIOError) -> any MappedRegion {
        let (info, descriptor) = try regionInfoWithDescriptor(index)
        defer { descriptor?.close() }
        guard info.flags.contains(.mmap) else {
            throw .unsupported("mmap", "region \(index) has no VFIO_REGION_INFO_FLAG_MMAP")
        }
        guard let descriptor else {
            throw .malformed("VFIO_USER_DEVICE_GET_REGION_INFO", "region \(index) is mmap-able but no descriptor came with its info")
        }
        let page = UInt64(SystemCall.pageSize)
        guard size > 0, offset % page == 0, UInt64(size) % page == 0 else {
            throw .errno("mmap (region \(index) offset 0x\(String(offset, radix: 16)) size 0x\(String(size, radix: 16)) must be page-aligned)", EINVAL)
        }
        let end = offset.addingReportingOverflow(UInt64(size))
        guard !end.overflow, end.partialValue <= info.size else {
            throw .errno("mmap (range outside region \(index))", EINVAL)
        }
        if let areas = info.sparseMmapAreas {
            guard areas.contains(where: { offset >= $0.offset && end.partialValue <= $0.offset + $0.size }) else {
                throw .errno("mmap (range not inside a sparse-mmap area of region \(index))", EINVAL)
            }
        }
        return try DeviceMapping(fd: try descriptor.requireOpen("mmap"), fileOffset: info.offset + offset, size: size,
                                 regionOffset: offset, readable: info.flags.contains(.read), writable: info.flags.contains(.write))
    }

    public func setIRQs(_ set: IRQSet) throws(VFIOError) {
        guard case .eventfds(let fds) = set.data, !fds.isEmpty else {
            _ = try core.request(.deviceSetIRQs, payload: set.encoded())
            return
        }
        // As QEMU does: the descriptors travel as SCM_RIGHTS, not in the payload; a run of
        // -1 goes without descriptors (which unbinds those vectors).
        let maxFDs = Int(serverCapabilities.maxMessageFDs)
        guard maxFDs > 0 else { throw .unsupported("VFIO_USER_DEVICE_SET_IRQS", "the server accepts no descriptors (max_msg_fds 0)") }
        var i = 0
        while i < fds.count {
            let valid = fds[i] >= 0
            var n = 1
            while i + n < fds.count, (fds[i + n] >= 0) == valid, !valid || n < maxFDs { n += 1 }
            let header = IRQSetHeader(argsz: UInt32(IRQSetHeader.fixedSize), flags: set.flags, index: set.index,
                                      start: set.start + UInt32(i), count: UInt32(n))
            _ = try core.request(.deviceSetIRQs, payload: header.encoded(), fds: valid ? Array(fds[i..<i + n]) : [])
            i += n
        }
    }

    public func reset() throws(VFIOError) {
        core.knownMigrationState = nil
        _ = try core.request(.deviceReset, payload: [])
        core.knownMigrationState = .running
    }

    public func feature(_ request: DeviceFeature) throws(VFIOError) -> DeviceFeaturePayload? {
        var payload: [UInt8]
        switch request {
        case .get(let data):
            // A GET states the reply room in argsz; only DMA_LOGGING_REPORT sends data.
            var writer = ByteWriter()
            var room = data.encoded().count
            var body: [UInt8] = []
            if case .vfioUserDMALoggingReport(let report) = data {
                var r = report
                r.bitmap = nil
                body = r.encoded()
                let words = DMALoggingReport.bitmapWordCount(length: report.length, pageSize: report.pageSize) ?? 0
                room = VFIOUserDMALoggingReport.fixedSize + Int(words) * 8
            }
            writer.u32(UInt32(DeviceFeature.fixedSize + room))
            writer.u32(request.flags.rawValue)
            writer.append(contentsOf: body)
            payload = writer.bytes
        case .set, .probe:
            payload = request.encoded()
        }
        let tracksState = request.feature == DeviceFeatureID.migrationDeviceState.rawValue
        if tracksState { core.knownMigrationState = nil }
        let reply = try core.request(.deviceFeature, payload: payload)
        guard case .get = request else { return nil }
        let answer = try DeviceFeature(decoding: reply.payload, layout: .vfioUser).payload
        if tracksState, case .migrationDeviceState(let state)? = answer { core.knownMigrationState = state.deviceState }
        return answer
    }

    public func validIOVARanges() throws(VFIOError) -> [IOVARange] {
        [try IOVARange(start: 0, last: UInt64.max)]
    }

    public func mapDMA(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError) {
        guard offset >= 0, size > 0, offset <= memory.size, size <= memory.size - offset else {
            throw .invalidArgument("VFIO_USER_DMA_MAP", "offset \(offset) size \(size) do not fit the \(memory.size)-byte memory")
        }
        guard !iova.addingReportingOverflow(UInt64(size) - 1).overflow else {
            throw .invalidArgument("VFIO_USER_DMA_MAP", "iova + size wraps")
        }
        var flags: VFIOUserDMAMapFlags = []
        if access.contains(.read) { flags.insert(.read) }
        if access.contains(.write) { flags.insert(.write) }
        var fds: [Int32] = []
        var fileOffset: UInt64 = 0
        if let shared = memory.sharedDescriptor {
            fds = [shared.fd]
            fileOffset = UInt64(shared.offset) + UInt64(offset)
        }
        let map = VFIOUserDMAMap(flags: flags, offset: fileOffset, address: iova, size: UInt64(size))
        _ = try core.request(.dmaMap, payload: map.encoded, fds: fds)
        try core.addMapping(ClientDMAMapping(range: try IOVARange.covering(iova, UInt64(size)),
                                         base: memory.baseAddress + offset, memory: memory, access: access))
    }

    public func unmapDMA(iova: UInt64, size: UInt64) throws(VFIOError) {
        let unmap = VFIOUserDMAUnmap(address: iova, size: size)
        _ = try core.request(.dmaUnmap, payload: unmap.encoded)
        if size > 0, let range = try? IOVARange.covering(iova, size) { core.removeMappings(inside: range) }
    }

    /// `VFIO_USER_DMA_UNMAP` with `VFIO_DMA_UNMAP_FLAG_ALL`.
    public func unmapAllDMA() throws(VFIOError) {
        _ = try core.request(.dmaUnmap, payload: VFIOUserDMAUnmap(flags: .all, address: 0, size: 0).encoded)
        core.removeAllMappings()
    }

    public func hotResetInfo() throws(VFIOError) -> PCIHotResetInfo {
        throw .unsupported("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", "vfio-user has no hot reset")
    }

    public func setIOEventfd(_ ioeventfd: IOEventfd) throws(VFIOError) {
        throw .unsupported("VFIO_DEVICE_IOEVENTFD", "vfio-user has no ioeventfds (see VFIO_USER_DEVICE_GET_REGION_IO_FDS)")
    }

    /// Server-initiated DMA messages this client served (for tests and statistics).
    public var servedDMAMessages: Int { core.servedDMAMessages }

    /// The most memory the server's commands held at once while waiting for the DMA thread
    /// (as `Configuration.maxQueuedServerCommandBytes` counts it).
    var peakQueuedServerCommandBytes: Int { core.peakQueuedServerCommandBytes }
}

/// Memory this client mapped for DMA, kept for serving the server's DMA messages.
struct ClientDMAMapping: @unchecked Sendable {
    var range: IOVARange
    var base: UnsafeMutableRawPointer
    var memory: any DMAMemory
    var access: DMAAccess
}
