import CVFIO
import Glibc
import VFIO
import VFIOSystem

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

        public init(capabilities: VFIOUserCapabilities = VFIOUserCapabilities(maxMessageFDs: 16, maxDataTransferSize: 1 << 20),
                    major: UInt16 = VFIOUserVersion.major, minor: UInt16 = VFIOUserVersion.minor) {
            self.capabilities = capabilities
            self.major = major
            self.minor = minor
        }
    }

    public let name: String
    /// What the server answered to VERSION.
    public let serverVersion: VFIOUserVersion
    public let configuration: Configuration
    let core: ClientCore
    /// The server of `serving(_:name:)`, kept alive with the client.
    var inProcessServer: VFIOUserServer?

    /// The server's capabilities (defaults for what it did not state).
    public var serverCapabilities: VFIOUserCapabilities { serverVersion.capabilities }

    /// Connects to the server listening at `path` and negotiates the version.
    public convenience init(path: String, name: String? = nil, configuration: Configuration = Configuration()) throws(VFIOError) {
        let socket = try VFIOUserSocket.connect(path: path)
        try self.init(socket: socket, name: name ?? "unix:\(path)", configuration: configuration)
    }

    /// Takes a connected socket and negotiates the version.
    public init(socket: VFIOUserSocket, name: String, configuration: Configuration = Configuration()) throws(VFIOError) {
        self.name = name
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
            core.serverCapabilities = version.capabilities
        } catch {
            core.close()
            throw error
        }
    }

    deinit {
        core.close()
        inProcessServer?.wait()
    }

    /// Shuts the connection down; later calls fail with `ECONNRESET`.
    public func close() {
        core.close()
        inProcessServer?.wait()
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

    public func deviceInfo() throws(VFIOError) -> DeviceInfo {
        let reply = try core.request(.deviceGetInfo, payload: VFIOUserDeviceInfo.request.encoded)
        return try VFIOUserDeviceInfo(decoding: reply.payload).deviceInfo
    }

    public func regionInfo(_ index: UInt32) throws(VFIOError) -> RegionInfo {
        let (info, fd) = try regionInfoWithDescriptor(index)
        fd?.close()
        return info
    }

    /// The region info and the descriptor the server sent with it (for mmap), asking again
    /// with a larger `argsz` when the capability chain did not fit.
    public func regionInfoWithDescriptor(_ index: UInt32) throws(VFIOError) -> (RegionInfo, OwnedDescriptor?) {
        var capacity = 256
        while true {
            let reply = try core.request(.deviceGetRegionInfo, payload: RegionInfo.query(index: index, capacity: capacity).prefix(RegionInfo.fixedSize).map { $0 })
            let fds = reply.takeDescriptors()
            var owned = fds.map { OwnedDescriptor($0) }
            let needed = try ByteReader(reply.payload, context: RegionInfo.cName).peekU32(at: 0)
            if Int(needed) > capacity && capacity < 65536 && reply.payload.count < Int(needed) {
                capacity = Int(needed)
                continue
            }
            let info = try RegionInfo(decoding: reply.payload)
            guard info.index == index else {
                throw .malformed("VFIO_USER_DEVICE_GET_REGION_INFO", "asked for region \(index), the reply describes \(info.index)")
            }
            let fd = owned.isEmpty ? nil : owned.removeFirst()
            for extra in owned { extra.close() }
            return (info, fd)
        }
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
    var transferChunk: Int {
        Int(min(serverCapabilities.maxDataTransferSize, configuration.capabilities.maxDataTransferSize))
    }

    public func read(region index: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        guard buffer.count > 0 else { return }
        var done = 0
        let chunk = transferChunk
        repeat {
            let count = min(chunk, buffer.count - done)
            let (at, overflow) = offset.addingReportingOverflow(UInt64(done))
            if overflow { throw .invalidArgument("VFIO_USER_REGION_READ", "offset + count wraps") }
            let request = VFIOUserRegionAccess(offset: at, region: index, count: UInt32(count))
            let reply = try core.request(.regionRead, payload: request.encoded)
            let answer = try VFIOUserRegionAccess(decoding: reply.payload)
            guard answer.count == UInt32(count), answer.data.count == count else {
                throw .malformed("VFIO_USER_REGION_READ", "asked for \(count) byte(s), the reply has \(answer.data.count)")
            }
            if count > 0 {
                answer.data.withUnsafeBytes { (buffer.baseAddress! + done).copyMemory(from: $0.baseAddress!, byteCount: count) }
            }
            done += count
        } while done < buffer.count
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
        var done = 0
        let chunk = transferChunk
        repeat {
            let count = min(chunk, buffer.count - done)
            let (at, overflow) = offset.addingReportingOverflow(UInt64(done))
            if overflow { throw .invalidArgument("VFIO_USER_REGION_WRITE", "offset + count wraps") }
            let data = count > 0 ? Array(UnsafeRawBufferPointer(rebasing: buffer[done..<done + count])) : []
            let request = VFIOUserRegionAccess(offset: at, region: index, count: UInt32(count), data: data)
            if noReply {
                try core.post(.regionWrite, payload: request.encoded)
            } else {
                let reply = try core.request(.regionWrite, payload: request.encoded)
                let answer = try VFIOUserRegionAccess(decoding: reply.payload)
                guard answer.count == UInt32(count) else {
                    throw .malformed("VFIO_USER_REGION_WRITE", "wrote \(count) byte(s), the reply says \(answer.count)")
                }
            }
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
    /// descriptors they index (owned by the caller).
    public func regionIOFDs(_ index: UInt32) throws(VFIOError) -> (VFIOUserRegionIOFDs, [OwnedDescriptor]) {
        var capacity = 16 + 40 * 8
        while true {
            let request = VFIOUserRegionIOFDs(argsz: UInt32(capacity), index: index)
            let reply = try core.request(.deviceGetRegionIOFDs, payload: request.encoded)
            let fds = reply.takeDescriptors().map { OwnedDescriptor($0) }
            let answer = try VFIOUserRegionIOFDs(decoding: reply.payload)
            if Int(answer.argsz) > capacity, answer.subRegions.count < Int(answer.count), capacity < 1 << 20 {
                capacity = Int(answer.argsz)
                continue
            }
            for sub in answer.subRegions where Int(sub.fdIndex) >= fds.count {
                throw .malformed("VFIO_USER_DEVICE_GET_REGION_IO_FDS", "sub-region names descriptor \(sub.fdIndex), \(fds.count) came")
            }
            return (answer, fds)
        }
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
        core.addMapping(ClientDMAMapping(range: try IOVARange.covering(iova, UInt64(size)),
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

    /// `VFIO_USER_MIG_DATA_READ`: up to `size` bytes of migration data.
    public func migrationDataRead(size: UInt32) throws(VFIOError) -> [UInt8] {
        let request = VFIOUserMigData(argsz: UInt32(VFIOUserMigData.fixedSize) + size, size: size)
        let reply = try core.request(.migDataRead, payload: request.encoded)
        let answer = try VFIOUserMigData(decoding: reply.payload)
        guard answer.size <= size else { throw .malformed("VFIO_USER_MIG_DATA_READ", "asked for \(size) byte(s), got \(answer.size)") }
        return answer.data
    }

    /// `VFIO_USER_MIG_DATA_WRITE`.
    public func migrationDataWrite(_ data: [UInt8]) throws(VFIOError) {
        let request = VFIOUserMigData(argsz: UInt32(VFIOUserMigData.fixedSize), size: UInt32(data.count), data: data)
        _ = try core.request(.migDataWrite, payload: request.encoded)
    }

    /// Server-initiated DMA messages this client served (for tests and statistics).
    public var servedDMAMessages: Int { core.servedDMAMessages }
}

/// Memory this client mapped for DMA, kept for serving the server's DMA messages.
struct ClientDMAMapping: @unchecked Sendable {
    var range: IOVARange
    var base: UnsafeMutableRawPointer
    var memory: any DMAMemory
    var access: DMAAccess
}

/// The state shared by a client and its receive thread.
final class ClientCore: @unchecked Sendable {
    struct State {
        var nextID: UInt16 = 1
        var waiting: Set<UInt16> = []
        var replies: [UInt16: VFIOUserMessage] = [:]
        var failure: VFIOError?
        var mappings: [ClientDMAMapping] = []
        var served = 0
        /// The migration state as last read or set through this client (`nil`: unknown).
        /// One client at a time talks to a server, and the server changes the state only
        /// when asked, so it stays right until the next request that may change it.
        var knownMigrationState: MigrationState?
        /// A thread is reading the socket (a caller waiting for its reply, or the receive
        /// thread): only the holder of this token calls `socket.receive`.
        var reading = false
        /// Callers that have sent their request and wait for (or read) its reply. While
        /// there are none, the receive thread reads; callers still sending do not count, so
        /// that a server message is read while a large request is being written (else both
        /// peers could block writing).
        var awaiting = 0
    }

    let socket: VFIOUserSocket
    let configuration: VFIOUserClient.Configuration
    let monitor = Monitor(State())
    /// Server-initiated commands waiting for the DMA thread (a monitor of their own, so
    /// that the DMA thread is not woken by every reply).
    private let dmaQueue = Monitor(DMAQueue())
    struct DMAQueue {
        var messages: [VFIOUserMessage] = []
        var closed = false
    }
    private var thread: WorkerThread?
    /// Serves the server's DMA_READ / DMA_WRITE, so that the receive thread never waits
    /// to send (it must keep reading replies, or a large reply and a large request in
    /// flight at once could block both peers).
    private var dmaThread: WorkerThread?
    /// Set once after VERSION; read by the receive thread only afterwards.
    var serverCapabilities = VFIOUserCapabilities.defaults

    init(socket: VFIOUserSocket, configuration: VFIOUserClient.Configuration) {
        self.socket = socket
        self.configuration = configuration
    }

    func start() {
        thread = WorkerThread(name: "vfio-user-client") { [self] in receiveLoop() }
        dmaThread = WorkerThread(name: "vfio-user-dma") { [self] in dmaLoop() }
    }

    private func dmaLoop() {
        while true {
            let next = dmaQueue.wait { queue -> VFIOUserMessage?? in
                if !queue.messages.isEmpty { return .some(queue.messages.removeFirst()) }
                if queue.closed { return .some(nil) }
                return nil
            }
            guard let message = next else { return }
            serve(message)
        }
    }

    var isConnected: Bool { monitor.withLock { $0.failure == nil } }

    var servedDMAMessages: Int { monitor.withLock { $0.served } }

    var knownMigrationState: MigrationState? {
        get { monitor.withLock { $0.knownMigrationState } }
        set { monitor.withLock { $0.knownMigrationState = newValue } }
    }

    func close() {
        fail(.errno("vfio-user connection", ECONNRESET))
        socket.shutdown()
        if let thread, !thread.isCurrent { thread.join() }
        if let dmaThread, !dmaThread.isCurrent { dmaThread.join() }
        socket.close()
    }

    private func fail(_ error: VFIOError) {
        monitor.update { state in
            if state.failure == nil { state.failure = error }
        }
        dmaQueue.update { $0.closed = true }
    }

    // MARK: Requests

    /// Claims an id, and counts the caller as awaiting its reply from now on (see `send`).
    private func allocateID() throws(VFIOError) -> UInt16 {
        try monitor.withLock { (state: inout State) throws(VFIOError) -> UInt16 in
            if let failure = state.failure { throw failure }
            state.awaiting += 1
            var id = state.nextID
            while state.waiting.contains(id) { id &+= 1 }
            state.nextID = id &+ 1
            state.waiting.insert(id)
            return id
        }
    }

    func rawRequest(command: UInt16, payload: [UInt8], fds: [Int32], flags: VFIOUserMessageFlags) throws(VFIOError) -> VFIOUserMessage? {
        if flags.contains(.noReply) {
            let id = monitor.withLock { state -> UInt16 in
                defer { state.nextID &+= 1 }
                return state.nextID
            }
            try socket.send(id: id, command: command, flags: flags, payload: payload, fds: fds)
            return nil
        }
        let id = try allocateID()
        // The caller counts as awaiting while it sends, so that the receive thread leaves
        // the reply to it; but when the send would block it stops counting, and the receive
        // thread reads meanwhile (else a server blocked writing to us could block us).
        var counted = true
        do {
            try socket.send(id: id, command: command, flags: flags, payload: payload, fds: fds, wouldBlock: {
                counted = false
                self.monitor.update { $0.awaiting -= 1 }
            })
        } catch {
            monitor.update { state in
                state.waiting.remove(id)
                if counted { state.awaiting -= 1 }
            }
            // The server closed the connection before the receive thread saw it.
            if error.errnoValue == EPIPE {
                let closed = VFIOError.errno("vfio-user connection (the server closed it)", ECONNRESET)
                fail(closed)
                throw closed
            }
            throw error
        }
        return try awaitReply(id, counted: counted)
    }

    /// Waits for the reply to `id`. Leader/follower: when no thread is reading the socket,
    /// the caller reads it itself (handing on replies for others and server commands) until
    /// its own reply comes, so a lone request costs no thread hop; otherwise it waits for
    /// the reader to deliver its reply or to give the socket up.
    private func awaitReply(_ id: UInt16, counted alreadyCounted: Bool) throws(VFIOError) -> VFIOUserMessage {
        var counted = alreadyCounted
        let lead = try monitor.wait { (state: inout State) throws(VFIOError) -> VFIOUserMessage?? in
            if !counted {
                state.awaiting += 1
                counted = true
            }
            if let reply = state.replies.removeValue(forKey: id) {
                state.waiting.remove(id)
                state.awaiting -= 1
                return .some(reply)
            }
            if let failure = state.failure {
                state.waiting.remove(id)
                state.awaiting -= 1
                throw failure
            }
            if !state.reading {
                state.reading = true
                return .some(nil)
            }
            return nil
        }
        if let reply = lead { return reply }
        // This thread holds the reading token until its reply has come.
        while true {
            let mine: VFIOUserMessage?
            do {
                mine = try receiveOne(for: id)
                // Messages read ahead with the reply: the socket will not poll readable for
                // them, so hand them on before giving the socket up.
                if mine != nil { while socket.hasBufferedMessage { _ = try receiveOne(for: nil) } }
            } catch {
                monitor.update { state in
                    state.reading = false
                    state.awaiting -= 1
                    state.waiting.remove(id)
                    state.replies.removeValue(forKey: id)
                }
                fail(error)
                throw error
            }
            if let mine {
                monitor.update { state in
                    state.reading = false
                    state.awaiting -= 1
                    state.waiting.remove(id)
                }
                return mine
            }
        }
    }

    /// Sends a command and returns its reply, or throws the errno of an error reply.
    func request(_ command: VFIOUserCommand, payload: [UInt8], fds: [Int32] = []) throws(VFIOError) -> VFIOUserMessage {
        let reply = try rawRequest(command: command.rawValue, payload: payload, fds: fds, flags: [])!
        try reply.checkReply(command.cName)
        return reply
    }

    /// Sends a command with NO_REPLY.
    func post(_ command: VFIOUserCommand, payload: [UInt8]) throws(VFIOError) {
        _ = try rawRequest(command: command.rawValue, payload: payload, fds: [], flags: .noReply)
    }

    // MARK: DMA table

    func addMapping(_ mapping: ClientDMAMapping) {
        monitor.withLock { state in
            state.mappings.append(mapping)
            state.mappings.sort { $0.range.start < $1.range.start }
        }
    }

    func removeMappings(inside range: IOVARange) {
        monitor.withLock { state in
            state.mappings.removeAll { $0.range.start >= range.start && $0.range.last <= range.last }
        }
    }

    func removeAllMappings() {
        monitor.withLock { $0.mappings.removeAll() }
    }

    /// Copies between client memory and `buffer` for a server DMA message; every byte must
    /// be mapped with `access`.
    private func copyDMA(address: UInt64, count: Int, access: DMAAccess, _ body: (UnsafeMutableRawPointer, Int, Int) -> Void) -> Bool {
        monitor.withLock { state in
            var pieces: [(UnsafeMutableRawPointer, Int, Int)] = []
            var at = address
            var done = 0
            while done < count {
                guard let m = state.mappings.first(where: { $0.range.contains(at) }), m.access.contains(access) else { return false }
                let available = (m.range.last - at) &+ 1
                let length = available == 0 ? count - done : Int(min(available, UInt64(count - done)))
                pieces.append((m.base + Int(at - m.range.start), done, length))
                done += length
                at &+= UInt64(length)
            }
            for piece in pieces { body(piece.0, piece.1, piece.2) }
            return true
        }
    }

    // MARK: Receive thread

    /// Reads while no caller does: messages that come when no caller waits for a reply
    /// (the server's DMA_READ / DMA_WRITE after a reply, or while a request is being
    /// written). It polls without the reading token and takes it only when input is there
    /// and nobody waits for a reply (a waiting caller reads for itself).
    private func receiveLoop() {
        while true {
            let go = monitor.wait { state -> Bool? in
                if state.failure != nil { return false }
                return !state.reading && state.awaiting == 0 ? true : nil
            }
            if !go { return }
            var p = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, -1)
            if n < 0 {
                if errno == EINTR { continue }
                fail(.errno("poll", errno))
                return
            }
            let mine = monitor.withLock { state -> Bool in
                guard state.failure == nil, !state.reading, state.awaiting == 0 else { return false }
                state.reading = true
                return true
            }
            guard mine else { continue }
            var failure: VFIOError?
            // A caller may have read the input between the poll and the token.
            if socket.hasInput() {
                do {
                    _ = try receiveOne(for: nil)
                    while socket.hasBufferedMessage { _ = try receiveOne(for: nil) }
                } catch { failure = error }
            }
            monitor.update { state in
                state.reading = false
            }
            if let failure { fail(failure) }
            if failure != nil { return }
        }
    }

    /// Reads one message (reading token held) and hands it on; returns it instead when it
    /// is the reply to `id`.
    /// - Throws: when the connection failed or ended.
    private func receiveOne(for id: UInt16?) throws(VFIOError) -> VFIOUserMessage? {
        let maxPayload = Int(configuration.capabilities.maxDataTransferSize) + 4096
        let maxFDs = Int(configuration.capabilities.maxMessageFDs)
        switch try socket.receive(maxPayload: maxPayload, maxFDs: maxFDs) {
        case .endOfStream:
            throw .errno("vfio-user connection (the server closed it)", ECONNRESET)
        case .rejected(let header, let error):
            if header.isReply {
                let reply = VFIOUserMessage(header: VFIOUserHeader(messageID: header.messageID, command: header.command,
                                                                   messageSize: 16, flags: [.reply, .error],
                                                                   error: UInt32(bitPattern: error.errnoValue ?? EINVAL)), payload: [])
                if header.messageID == id { return reply }
                deliver(reply)
            } else if header.wantsReply {
                try? socket.send(id: header.messageID, command: header.command, flags: [.reply, .error],
                                 error: UInt32(bitPattern: error.errnoValue ?? EINVAL))
            }
        case .message(let message):
            if message.header.isReply {
                if message.header.messageID == id { return message }
                deliver(message)
            } else {
                dmaQueue.update { $0.messages.append(message) }
            }
        }
        return nil
    }

    private func deliver(_ reply: VFIOUserMessage) {
        monitor.update { state in
            if state.waiting.contains(reply.header.messageID) {
                state.replies[reply.header.messageID] = reply
            }
        }
    }

    /// Serves a server-initiated command: DMA_READ and DMA_WRITE; anything else gets ENOSYS.
    private func serve(_ message: VFIOUserMessage) {
        let header = message.header
        message.closeDescriptors()
        func answer(_ payload: [UInt8]) {
            guard header.wantsReply else { return }
            try? socket.send(id: header.messageID, command: header.command, flags: .reply, payload: payload)
        }
        func refuse(_ code: Int32) {
            guard header.wantsReply else { return }
            try? socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(code))
        }
        let limit = UInt64(configuration.capabilities.maxDataTransferSize)
        switch VFIOUserCommand(rawValue: header.command) {
        case .dmaRead:
            guard let request = try? VFIOUserDMAAccess(decoding: message.payload), request.data.isEmpty else { return refuse(EINVAL) }
            guard request.count <= limit else { return refuse(E2BIG) }
            var data = [UInt8](repeating: 0, count: Int(request.count))
            let ok = data.withUnsafeMutableBytes { raw in
                copyDMA(address: request.address, count: Int(request.count), access: .read) { pointer, at, length in
                    (raw.baseAddress! + at).copyMemory(from: pointer, byteCount: length)
                }
            }
            guard ok else { return refuse(EFAULT) }
            monitor.withLock { $0.served += 1 }
            answer(VFIOUserDMAAccess(address: request.address, count: request.count, data: data).encoded)
        case .dmaWrite:
            guard let request = try? VFIOUserDMAAccess(decoding: message.payload),
                  UInt64(request.data.count) == request.count else { return refuse(EINVAL) }
            guard request.count <= limit else { return refuse(E2BIG) }
            let ok = request.data.withUnsafeBytes { raw in
                copyDMA(address: request.address, count: Int(request.count), access: .write) { pointer, at, length in
                    pointer.copyMemory(from: raw.baseAddress! + at, byteCount: length)
                }
            }
            guard ok else { return refuse(EFAULT) }
            monitor.withLock { $0.served += 1 }
            answer(VFIOUserDMAAccess(address: request.address, count: request.count).encoded)
        default:
            refuse(ENOSYS)
        }
    }
}
