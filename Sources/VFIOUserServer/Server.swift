import CVFIO
import Glibc
import Logging
import Synchronization
import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserWire

/// Serves a `DeviceModel` to vfio-user clients (QEMU's `vfio-user-pci`, `VFIOUserClient`).
///
/// - `listen(path:)`: a UNIX socket created with mode 0600 (a stale socket file left by a
///   dead server is removed; a live one is refused with `EADDRINUSE`); clients are served
///   one at a time, each until it disconnects, then the next.
/// - `serve(connection:)`: serves one already-connected socket (a socket pair).
/// - One serving thread reads every message, handles it and replies; messages are handled
///   in the order they arrive (so pipelined and NO_REPLY commands work). Malformed
///   messages get an error reply and the connection stays up.
/// - The model's `afterReply` work runs on the serving thread after the reply is sent.
///   DMA through memfds the client passed with DMA_MAP sealed against shrinking
///   (F_SEAL_SHRINK: QEMU's `memory-backend-memfd`, `DMABuffer`) is a `memcpy`; DMA to
///   mappings without a descriptor, or with one the client could shrink or free under
///   a mapping (any other file, a hugetlbfs memfd: the copy would die of SIGBUS),
///   becomes DMA_READ / DMA_WRITE messages, which wait until no client request is
///   outstanding (QEMU holds its global lock while waiting for a reply) and are refused
///   with `EDEADLK` from inside a request handler. DMA_MAPs of one memfd share one
///   mapping of the whole file.
/// - When a client leaves, its DMA mappings and eventfds are dropped and its dirty
///   logging stops; the device keeps its state for the next client, except its migration
///   state: a device left in any state but RUNNING (a client that died mid-migration, or
///   a finished migration's source left in STOP) is reset to RUNNING, its data streams
///   dropped, so that the next client finds a usable device (the kernel keeps the state
///   across a close of the device fd; a server that serves one client after another
///   cannot know the next client means to carry on). A source device whose migration
///   completed therefore runs again once the migrating client disconnects: stop serving
///   it if it must not.
/// - Migration (`VFIO_USER_DEVICE_FEATURE`, `MIG_DATA_READ` / `WRITE`) and DMA dirty
///   logging go to the `AttachedDevice` (see `ServerMigration.swift`).
/// - A client that stalls inside a message, or stops reading what the server sends, is
///   dropped once `Configuration.partialMessageTimeout` / `sendTimeout` passes, and the
///   next client is served; a client that idles between messages is never dropped.
///
/// `stop()` ends serving (from any thread); `wait()` blocks until then.
public final class VFIOUserServer: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// The capabilities this server states (what it accepts).
        public var capabilities: VFIOUserCapabilities
        /// How long a message may take to arrive once it has begun: from the server's first
        /// wait for more of it to its last byte. A client that sends part of a message and
        /// then stalls (or trickles it) is dropped when this passes (a warning names it,
        /// the timeout and the limit), and the next client is served. A client between
        /// messages is never dropped, however long it idles (QEMU idles for minutes).
        /// `nil`: no limit (a client that stops inside a message holds the server until it
        /// disconnects). Default 10 s; positive, at most a day.
        public var partialMessageTimeout: Duration?
        /// How long a message the server sends (a reply, a DMA request) may wait for the
        /// client to take any of it while the socket is full because the client does not
        /// read: the client is then dropped, as for `partialMessageTimeout`. A reply larger
        /// than the socket's buffers that the client stops reading partway through may wait
        /// up to twice this (the kernel restarts the wait once some of it went out). `nil`:
        /// no limit. Default 10 s; positive, at most a day.
        public var sendTimeout: Duration?
        /// The most bytes of a client's files the server maps at once (address space, not
        /// memory): DMA_MAPs that would pass it are refused with `ENOMEM`. 64 TiB by
        /// default, half of x86-64's user address space.
        public var maxMappedDMABytes: UInt64

        public init(capabilities: VFIOUserCapabilities = VFIOUserCapabilities(
                        maxMessageFDs: 16, maxDataTransferSize: 1 << 20, maxDMAMaps: 65535,
                        pageSizes: UInt64(SystemCall.pageSize), writeMultiple: true),
                    partialMessageTimeout: Duration? = .seconds(10), sendTimeout: Duration? = .seconds(10),
                    maxMappedDMABytes: UInt64 = 1 << 46) {
            self.capabilities = capabilities
            self.partialMessageTimeout = partialMessageTimeout
            self.sendTimeout = sendTimeout
            self.maxMappedDMABytes = maxMappedDMABytes
        }
    }

    public let model: any DeviceModel
    public let configuration: Configuration
    /// `configuration`'s timeouts in nanoseconds (0: none).
    private let partialMessageLimit: UInt64
    private let sendLimit: UInt64
    let logger: Logger
    let monitor = Monitor(ServerState())
    private let wake: OwnedDescriptor
    private var regionFiles: [UInt32: RegionMemoryFile] = [:]
    private var listener: OwnedDescriptor?
    private var socketPath: String?
    private var thread: WorkerThread?
    /// Runs `afterReply` work queued from other threads (guarded by `monitor`).
    private var workThread: WorkerThread?
    /// `stop()` was called (read without the monitor on every message).
    private let stopRequested = Atomic(false)
    /// A client request is being handled.
    let requestGate = RequestGate()
    /// The current client has negotiated VERSION.
    let negotiated = Atomic(false)
    /// `afterReply` work queued on the serving thread (only that thread touches it).
    private var servingThreadWork: [@Sendable () -> Void] = []
    /// Held while a message is handled or queued work runs: model callbacks and queued
    /// work never run at the same time.
    let servingLock = PlainLock()
    private(set) var context: ServerDeviceContext!
    /// How REGION_READ / REGION_WRITE reach each region, by region index (made once:
    /// regions do not change).
    let regionRoutes: [DeviceAccess.Route]
    /// Room for region data a model reads or writes through callbacks (serving thread only).
    var scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// The model as the kit hosts it: attached to a `TrackingContext` around the server's
    /// context, with its `MigrationDriver` when it migrates.
    public private(set) var device: AttachedDevice!

    /// Prepares `model` (memory for its memory-backed regions; `AttachedDevice` attaches
    /// it). Serve it with `listen(path:)` or `serve(connection:)`.
    /// - Throws: `.invalidArgument` for a migratable model whose features lack STOP_COPY,
    ///   or for a timeout that is not positive or longer than a day.
    public init(model: any DeviceModel, configuration: Configuration = Configuration(), logger: Logger? = nil) throws(VFIOError) {
        self.model = model
        self.configuration = configuration
        func limit(_ timeout: Duration?, _ name: String) throws(VFIOError) -> UInt64 {
            guard let timeout else { return 0 }
            guard let nanoseconds = timeoutNanoseconds(timeout) else {
                throw .invalidArgument("VFIOUserServer", "\(name) \(timeout) must be positive and at most a day (nil: no limit)")
            }
            return nanoseconds
        }
        partialMessageLimit = try limit(configuration.partialMessageTimeout, "partialMessageTimeout")
        sendLimit = try limit(configuration.sendTimeout, "sendTimeout")
        var quiet = Logger(label: "vfio-user-server")
        quiet.logLevel = .warning
        self.logger = logger ?? quiet
        wake = OwnedDescriptor(try SystemCall.retrying("eventfd") { cvfio_eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) })
        for region in model.regions where region.isMemoryBacked && region.size > 0 {
            guard region.size <= UInt64(Int.max / 2) else { throw .invalidArgument("VFIOUserServer", "region \(region.index) is too large") }
            regionFiles[region.index] = try RegionMemoryFile(index: region.index, size: Int(region.size))
        }
        // By index; the first of a model's regions with an index wins, as in `region(_:)`.
        let highest = model.regions.map(\.index).max()
        guard (highest ?? 0) < 4096 else { throw .invalidArgument("VFIOUserServer", "region index \(highest ?? 0) is above 4095") }
        var routes = Array(repeating: DeviceAccess.Route.absent, count: highest.map { Int($0) + 1 } ?? 0)
        for region in model.regions.reversed() {
            routes[Int(region.index)] = DeviceAccess.Route(region, memory: regionFiles[region.index]?.memory)
        }
        regionRoutes = routes
        context = ServerDeviceContext(server: self)
        device = try AttachedDevice(model: model, context: context, bufferAllocator: MappedBufferAllocator())
    }

    deinit {
        stop()
        scratch.deallocate()
    }

    /// The number of client connections served so far.
    public var connectionCount: Int { monitor.withLock { $0.connections } }

    // MARK: Starting and stopping

    /// Listens at `path` (mode 0600) and serves clients one after another on a thread.
    public func listen(path: String) throws(VFIOError) {
        guard thread == nil else { throw .errno("VFIOUserServer.listen: already serving", EBUSY) }
        let fd = try Self.makeListener(path: path)
        listener = OwnedDescriptor(fd)
        socketPath = path
        logger.info("listening", metadata: ["socket": "\(path)"])
        thread = WorkerThread(name: "vfio-user-server") { [self] in acceptLoop(fd) }
    }

    /// Serves one connected socket on a thread, until the client closes it or `stop()`.
    public func serve(connection socket: VFIOUserSocket) {
        precondition(thread == nil, "VFIOUserServer serves one listener or one connection")
        thread = WorkerThread(name: "vfio-user-server") { [self] in
            monitor.withLock { $0.servingThread = pthread_self() }
            serveConnection(socket)
        }
    }

    /// Serves one connected socket on the calling thread, until the client closes it or
    /// `stop()` is called from another thread; then returns. For a process whose thread
    /// has nothing else to do (a device server's main thread): no thread is started, and
    /// a process that stays single-threaded makes its system calls a little cheaper.
    public func run(connection socket: VFIOUserSocket) {
        precondition(thread == nil, "VFIOUserServer serves one listener or one connection")
        monitor.withLock { $0.servingThread = pthread_self() }
        serveConnection(socket)
    }

    /// Stops serving: the current connection is shut down, the listening socket closed and
    /// its file removed. Returns once the serving thread has ended.
    public func stop() {
        let socket = monitor.update { state -> VFIOUserSocket? in
            state.stopping = true
            stopRequested.store(true, ordering: .releasing)
            return state.session.socket
        }
        signalWake()
        socket?.shutdown()
        if let thread, !thread.isCurrent { thread.join() }
        let work = monitor.withLock { _ in workThread }
        if let work, !work.isCurrent { work.join() }
        if let listener {
            listener.close()
            if let socketPath { unlink(socketPath) }
        }
    }

    /// Blocks until the serving thread ends (after `stop()`, or when the connection given
    /// to `serve(connection:)` closes).
    public func wait() {
        thread?.join()
    }

    private func signalWake() {
        var one: UInt64 = 1
        let fd = wake.raw
        if fd >= 0 { _ = Glibc.write(fd, &one, 8) }
    }

    private func consumeWake() {
        var value: UInt64 = 0
        _ = Glibc.read(wake.raw, &value, 8)
    }

    static func makeListener(path: String) throws(VFIOError) -> Int32 {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw .errno("bind(\(path)): a file that is not a socket is in the way", EEXIST)
            }
            // A socket file: stale when nobody accepts on it.
            if let probe = try? VFIOUserSocket.connect(path: path) {
                probe.close()
                throw .errno("bind(\(path)): a server is already listening there", EADDRINUSE)
            }
            unlink(path)
        }
        let fd = try SystemCall.retrying("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do throws(VFIOError) {
            _ = try withUnixAddress(path, "bind") { (address: UnsafePointer<sockaddr>, length: socklen_t) throws(VFIOError) in
                try SystemCall.retrying("bind(\(path))") { bind(fd, address, length) }
            }
            // Before listen() no connection can be made, so the mode is set before anyone
            // can use the socket.
            try SystemCall.retrying("chmod(\(path))") { chmod(path, 0o600) }
            try SystemCall.retrying("listen") { Glibc.listen(fd, 4) }
        } catch {
            closeDescriptor(fd)
            unlink(path)
            throw error
        }
        return fd
    }

    // MARK: Serving loops

    private func acceptLoop(_ listenFD: Int32) {
        monitor.withLock { $0.servingThread = pthread_self() }
        while !monitor.withLock({ $0.stopping }) {
            runDeferredWork()
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake.raw, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, -1)
            if n < 0 { if errno == EINTR { continue }; break }
            if fds[1].revents != 0 { consumeWake() }
            if fds[0].revents & Int16(POLLIN) != 0 {
                let client = accept(listenFD, nil, nil)
                if client < 0 { continue }
                _ = cvfio_ioctl_int(client, 0x5451 /* FIOCLEX */, 0)
                serveConnection(VFIOUserSocket(adopting: client))
            } else if fds[0].revents != 0 {
                break
            }
        }
    }

    private func serveConnection(_ socket: VFIOUserSocket) {
        negotiated.store(false, ordering: .releasing)
        let number = monitor.update { state -> Int in
            state.session = SessionState()
            state.session.socket = socket
            state.connections += 1
            return state.connections
        }
        var client: Logger.Metadata = ["connection": "\(number)"]
        if let pid = socket.peerProcessID { client["pid"] = "\(pid)" }
        logger.info("client connected", metadata: client)
        var reason = "the client closed the connection"
        // The thread blocks in recvmsg (the protocol's minimum of system calls): stop()
        // shuts the socket down to end it. The send timeout is a socket option, set once.
        do throws(VFIOError) {
            try socket.setTimeouts(partialMessage: partialMessageLimit, send: sendLimit)
            while !stopRequested.load(ordering: .acquiring) {
                runDeferredWork()
                if try !pumpOne(socket, takingServingLock: true) { break }
            }
        } catch {
            reason = "\(error)"
        }
        if monitor.withLock({ $0.stopping }) {
            reason = "the server stopped"
        } else if let timeout = socket.timeoutFired {
            var metadata = client
            metadata["timeout"] = "\(timeout.name)"
            metadata["limit"] = "\(describeNanoseconds(timeout == .send ? sendLimit : partialMessageLimit))"
            logger.warning(timeout == .send ? "client dropped: it read none of a message for the send timeout"
                                            : "client dropped: a message it began did not arrive whole within the partial message timeout",
                           metadata: metadata)
        }
        endSession(socket)
        client["reason"] = "\(reason)"
        logger.info("client disconnected", metadata: client)
    }

    /// Drops a session's descriptors and mappings; the device keeps its state.
    private func endSession(_ socket: VFIOUserSocket) {
        negotiated.store(false, ordering: .releasing)
        let (mappings, indices) = monitor.update { state -> (IOVAMappingTable<ServerDMAMapping>, [UInt32]) in
            let session = state.session
            state.session = SessionState()
            state.session.connectionFailed = true
            return (session.mappings, session.triggers.filter { !$0.value.isEmpty }.map(\.key))
        }
        socket.close()
        for index in indices.sorted() { model.irqsConfigured(index: index, enabledVectors: 0) }
        for mapping in mappings { model.dmaUnmapped(mapping.range) }
        device.tracker.stopDMALogging()
        if let migration = device.migration, migration.currentState != .running {
            let state = migration.currentState
            do {
                try migration.reset()
                logger.info("client left the device in \(state): reset to RUNNING")
            } catch {
                logger.warning("client left the device in \(state); reset to RUNNING failed: \(error)")
            }
        }
    }

    /// Runs queued `afterReply` work (top level of the serving thread only), with the
    /// serving lock held.
    func runDeferredWork() {
        guard !servingThreadWork.isEmpty else { return }
        servingLock.lock()
        defer { servingLock.unlock() }
        while !servingThreadWork.isEmpty {
            let work = servingThreadWork.removeFirst()
            work()
        }
    }

    /// Queues `afterReply` work: from the serving thread it runs after the current
    /// message; from any other thread it runs on a work thread of the server (started when
    /// work comes, ended when none is left) with the serving lock held, so never
    /// concurrently with a model callback.
    func enqueueDeferred(_ work: @escaping @Sendable () -> Void) {
        monitor.withLock { state in
            if state.isServingThread() {
                servingThreadWork.append(work)
                return
            }
            state.offThreadWork.append(work)
            if !state.workThreadRunning {
                state.workThreadRunning = true
                // A previous work thread has left its loop and takes no lock any more.
                workThread?.join()
                workThread = WorkerThread(name: "vfio-user-server-work") { [self] in workLoop() }
            }
        }
    }

    /// Runs work queued from outside the serving thread, one item at a time with the
    /// serving lock held (released while it waits for a DMA message's reply).
    private func workLoop() {
        monitor.withLock { $0.workThread = pthread_self() }
        while true {
            let next = monitor.withLock { state -> (@Sendable () -> Void)? in
                if state.offThreadWork.isEmpty {
                    state.workThreadRunning = false
                    state.workThread = nil
                    return nil
                }
                return state.offThreadWork.removeFirst()
            }
            guard let next else { return }
            servingLock.lock()
            next()
            servingLock.unlock()
        }
    }

    /// Reads and handles one message. Returns false at end of stream. With
    /// `takingServingLock`, the serving lock is taken once the header has come (the top
    /// level of the serving loop; nested calls already hold it).
    @discardableResult
    func pumpOne(_ socket: VFIOUserSocket, takingServingLock: Bool = false) throws(VFIOError) -> Bool {
        let maxPayload = Int(configuration.capabilities.maxDataTransferSize) + 4096
        let maxFDs = Int(configuration.capabilities.maxMessageFDs)
        guard let header = try socket.receiveHeader(maxFDs: maxFDs) else { return false }
        if takingServingLock { servingLock.lock() }
        defer { if takingServingLock { servingLock.unlock() } }
        if header.isCommand && header.messageSize >= UInt32(VFIOUserHeader.size)
            && (header.command == VFIOUserCommand.regionRead.rawValue || header.command == VFIOUserCommand.regionWrite.rawValue) {
            try serveRegionAccess(header, socket)
            return true
        }
        // Migration data goes between the socket and the migration driver without arrays.
        if try serveMigrationData(header, socket, maxPayload: maxPayload) { return true }
        let received = try socket.receiveBody(header, maxPayload: maxPayload, maxFDs: maxFDs)
        switch received {
        case .endOfStream:
            return false
        case .rejected(let header, let error):
            logger.debug("rejected message", metadata: ["header": "\(header)", "error": "\(error)"])
            if header.isReply {
                deliverReply(VFIOUserMessage(header: VFIOUserHeader(messageID: header.messageID, command: header.command, messageSize: 16,
                                                                    flags: [.reply, .error], error: UInt32(replyErrno(error))), payload: []))
            } else if header.wantsReply {
                try socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(replyErrno(error)))
            }
        case .message(let message):
            if message.header.isReply {
                deliverReply(message)
            } else {
                try handleCommand(message, socket)
            }
        }
        return true
    }

    private func deliverReply(_ message: VFIOUserMessage) {
        monitor.update { state in
            if state.session.waiting.contains(message.header.messageID) {
                state.session.replies[message.header.messageID] = message
            } else {
                logger.debug("unexpected reply", metadata: ["header": "\(message.header)"])
            }
        }
    }

    private func handleCommand(_ message: VFIOUserMessage, _ socket: VFIOUserSocket) throws(VFIOError) {
        let header = message.header
        requestGate.enter()
        let outcome: Result<([UInt8], [Int32]), VFIOError>
        do throws(VFIOError) {
            outcome = .success(try handle(message))
        } catch {
            outcome = .failure(error)
        }
        message.closeDescriptors()   // whatever the handler did not take
        defer { requestGate.leave(monitor) }
        switch outcome {
        case .success(let (payload, fds)):
            logger.trace("handled", metadata: ["header": "\(header)"])
            if header.wantsReply {
                try socket.send(id: header.messageID, command: header.command, flags: .reply, payload: payload, fds: fds)
            }
        case .failure(let error):
            logger.debug("command failed", metadata: ["header": "\(header)", "error": "\(error)"])
            if header.wantsReply {
                try socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(replyErrno(error)))
            }
        }
    }

    // MARK: Commands

    /// Handles a command; returns the reply payload and descriptors (borrowed).
    private func handle(_ message: VFIOUserMessage) throws(VFIOError) -> ([UInt8], [Int32]) {
        let header = message.header
        guard let command = VFIOUserCommand(rawValue: header.command) else {
            throw .errno("command \(header.command)", ENOSYS)
        }
        if command != .version && !negotiated.load(ordering: .acquiring) {
            throw .errno("\(command.cName) before VFIO_USER_VERSION", EINVAL)
        }
        if !message.fds.isEmpty && command != .dmaMap && command != .deviceSetIRQs {
            throw .errno("\(command.cName) carries no descriptors", EINVAL)
        }
        let payload = message.payload
        switch command {
        case .version:
            return (try handleVersion(payload), [])
        case .dmaMap:
            try handleDMAMap(payload, message.takeDescriptors())
            return ([], [])
        case .dmaUnmap:
            return (try handleDMAUnmap(payload), [])
        case .deviceGetInfo:
            _ = try VFIOUserDeviceInfo(decoding: payload)   // argsz at least 16
            let reply = VFIOUserDeviceInfo(flags: model.deviceFlags.subtracting(.caps),
                                           numRegions: UInt32(model.regions.count), numIRQs: UInt32(model.irqs.count))
            return (reply.encoded, [])
        case .deviceGetRegionInfo:
            return try handleRegionInfo(payload)
        case .deviceGetRegionIOFDs:
            let request = try VFIOUserRegionIOFDs(decoding: payload)
            guard request.flags == 0, request.count == 0 else { throw .errno("\(command.cName): flags and count must be 0", EINVAL) }
            guard let region = model.region(request.index), region.size > 0 else {
                throw .errno("\(command.cName): no region \(request.index)", EINVAL)
            }
            // No sub-region of this server is backed by an ioeventfd: an empty list.
            return (VFIOUserRegionIOFDs(argsz: UInt32(VFIOUserRegionIOFDs.fixedSize), index: region.index).encoded, [])
        case .deviceGetIRQInfo:
            let request = try IRQInfo(decoding: payload)
            guard let irq = model.irq(request.index) else { throw .errno("\(command.cName): no IRQ index \(request.index)", EINVAL) }
            return (irq.irqInfo.encoded(), [])
        case .deviceSetIRQs:
            try handleSetIRQs(payload, message.takeDescriptors())
            return ([], [])
        case .dmaRead, .dmaWrite:
            throw .errno("\(command.cName) goes from server to client", EINVAL)
        case .deviceReset:
            guard payload.isEmpty else { throw .errno("\(command.cName) has no payload", EINVAL) }
            guard model.deviceFlags.contains(.reset) else { throw .errno("\(command.cName): the device cannot be reset", EINVAL) }
            try device.reset()
            return ([], [])
        case .dirtyPages:
            _ = try VFIOUserDirtyPages(decoding: payload)
            throw .errno("\(command.cName) is deprecated; dirty tracking is a device feature", EOPNOTSUPP)
        case .regionWriteMulti:
            guard configuration.capabilities.writeMultiple else { throw .errno(command.cName, ENOSYS) }
            let request = try VFIOUserWriteMulti(decoding: payload)
            for write in request.writes {
                try write.data.withBytes { (raw: UnsafeRawBufferPointer) throws(VFIOError) in
                    if let memory = try regionTarget(write.region, offset: write.offset, count: raw.count, writing: true) {
                        memory.copyMemory(from: raw)
                    } else {
                        try model.write(region: write.region, offset: write.offset, from: raw)
                    }
                }
            }
            return (VFIOUserWriteMultiReply(completed: UInt64(request.writes.count)).encoded, [])
        case .deviceFeature:
            return (try handleFeature(payload), [])
        case .regionRead, .regionWrite, .migDataRead, .migDataWrite:
            // `pumpOne` serves these from the header on (serveRegionAccess, serveMigrationData).
            preconditionFailure("\(command.cName) reached the general path")
        }
    }

    private func handleVersion(_ payload: [UInt8]) throws(VFIOError) -> [UInt8] {
        let proposal = try VFIOUserVersion(decoding: payload)
        if negotiated.load(ordering: .acquiring) { throw .errno("VFIO_USER_VERSION sent twice", EINVAL) }
        guard proposal.major == VFIOUserVersion.major else {
            throw .errno("VFIO_USER_VERSION \(proposal.major).\(proposal.minor): only major 0 is spoken", ENOTSUP)
        }
        let minor = min(proposal.minor, VFIOUserVersion.minor)
        monitor.withLock { state in
            state.session.clientCapabilities = proposal.capabilities
        }
        negotiated.store(true, ordering: .releasing)
        logger.debug("version negotiated", metadata: ["client": "\(proposal.major).\(proposal.minor) \(proposal.capabilities.json)"])
        return VFIOUserVersion(major: VFIOUserVersion.major, minor: minor, capabilities: configuration.capabilities).encoded
    }

    private func handleRegionInfo(_ payload: [UInt8]) throws(VFIOError) -> ([UInt8], [Int32]) {
        var reader = ByteReader(payload, context: RegionInfo.cName)
        let argsz = try reader.argsz(fixedSize: RegionInfo.fixedSize)
        _ = try reader.u32()  // flags
        let index = try reader.u32()
        guard payload.count >= RegionInfo.fixedSize else {
            throw .malformed(RegionInfo.cName, "request of \(payload.count) bytes, 32 needed")
        }
        guard let region = model.region(index) else { throw .errno("VFIO_USER_DEVICE_GET_REGION_INFO: no region \(index)", EINVAL) }
        let info = region.regionInfo(offset: 0)
        let full = info.encoded()
        if full.count > Int(argsz) {
            // Too small for the chain: the fixed part, CAPS set, argsz the size needed.
            var writer = ByteWriter()
            RegionInfo(flags: info.flags, index: info.index, size: info.size, offset: info.offset).encode(into: &writer)
            var bytes = writer.bytes
            let flags = info.flags.union(info.capabilities.isEmpty ? [] : .caps).rawValue
            withUnsafeBytes(of: UInt32(full.count).littleEndian) { for i in 0..<4 { bytes[i] = $0[i] } }
            withUnsafeBytes(of: flags.littleEndian) { for i in 0..<4 { bytes[4 + i] = $0[i] } }
            return (bytes, [])
        }
        if info.flags.contains(.mmap), let file = regionFiles[index] {
            return (full, [file.descriptor.raw])
        }
        return (full, [])
    }

    private func handleDMAMap(_ payload: [UInt8], _ fds: [Int32]) throws(VFIOError) {
        let owned = fds.map { OwnedDescriptor($0) }
        defer { for fd in owned { fd.close() } }
        let request = try VFIOUserDMAMap(decoding: payload)
        guard owned.count <= 1 else { throw .errno("VFIO_USER_DMA_MAP: \(owned.count) descriptors, at most 1", EINVAL) }
        let page = UInt64(SystemCall.pageSize)
        // Mapped memory must be whole pages; message-only memory may be any range.
        guard owned.isEmpty || (request.address % page == 0 && request.size % page == 0) else {
            throw .errno("VFIO_USER_DMA_MAP: address 0x\(String(request.address, radix: 16)) and size 0x\(String(request.size, radix: 16)) must be page-aligned", EINVAL)
        }
        let range = try IOVARange.covering(request.address, request.size)
        try monitor.withLock { (state: inout ServerState) throws(VFIOError) in try checkRoom(for: range, in: state.session) }
        var mapping = ServerDMAMapping(flags: request.flags, base: nil, file: nil)
        if let fd = owned.first {
            guard request.offset % page == 0 else { throw .errno("VFIO_USER_DMA_MAP: offset must be page-aligned", EINVAL) }
            guard request.size <= UInt64(Int.max), request.offset <= UInt64(Int64.max) - request.size else {
                throw .errno("VFIO_USER_DMA_MAP: offset + size too large", EINVAL)
            }
            switch try DMADescriptorAccess.inspect(fd.raw, offset: request.offset, size: request.size, flags: request.flags) {
            case .direct(let key, let fileSize):
                // Only this thread adds mappings: what it finds here is still there below.
                let (file, base) = try monitor.withLock { (state: inout ServerState) throws(VFIOError) in
                    try state.session.fileMapping(fd.raw, key: key, fileSize: fileSize, offset: request.offset, size: request.size,
                                                  limit: configuration.maxMappedDMABytes)
                }
                mapping = ServerDMAMapping(flags: request.flags, base: base, file: file)
            case .messages(let reason):
                let first = monitor.withLock { state in
                    defer { state.session.reportedMessageOnlyDescriptor = true }
                    return !state.session.reportedMessageOnlyDescriptor
                }
                if first {
                    logger.notice("DMA_MAP \(range): the descriptor is \(reason); DMA to such mappings goes through DMA_READ / DMA_WRITE messages")
                }
            }
        }
        // While all mapped memory is logged, the new mapping joins the log before DMA can
        // reach it (a mapping the log cannot take is refused; a file mapping made for it
        // alone goes with `mapping`).
        try device.tracker.dmaMapped(range)
        try monitor.withLock { (state: inout ServerState) throws(VFIOError) in
            try checkRoom(for: range, in: state.session)
            state.session.mappings.insert(range, mapping)
            if let file = mapping.file { state.session.retain(file) }
        }
        model.dmaMapped(range)
    }

    /// Refuses a DMA_MAP of `range` when the table is full (`ENOSPC`) or `range` overlaps
    /// a mapping (`EEXIST`).
    private func checkRoom(for range: IOVARange, in session: SessionState) throws(VFIOError) {
        if session.mappings.count >= Int(configuration.capabilities.maxDMAMaps) {
            throw .errno("VFIO_USER_DMA_MAP: max_dma_maps (\(configuration.capabilities.maxDMAMaps)) reached", ENOSPC)
        }
        if let existing = session.mappings.firstOverlap(with: range) {
            throw .errno("VFIO_USER_DMA_MAP: \(range) overlaps the mapping \(existing.range)", EEXIST)
        }
    }

    private func handleDMAUnmap(_ payload: [UInt8]) throws(VFIOError) -> [UInt8] {
        let request = try VFIOUserDMAUnmap(decoding: payload)
        if request.flags.contains(.getDirtyBitmap) {
            throw .errno("VFIO_USER_DMA_UNMAP: GET_DIRTY_BITMAP is not supported (no dirty tracking is running)", EOPNOTSUPP)
        }
        // Released (and the files unmapped) after the lock, once the notices are out.
        let removed: [IOVAMappingTable<ServerDMAMapping>.Entry]
        if request.flags.contains(.all) {
            removed = monitor.withLock { state in
                let all = state.session.mappings.removeAll()
                for entry in all { if let file = entry.value.file { state.session.release(file) } }
                return all
            }
        } else {
            let range = try IOVARange.covering(request.address, request.size)
            removed = try monitor.withLock { (state: inout ServerState) throws(VFIOError) -> [IOVAMappingTable<ServerDMAMapping>.Entry] in
                let touched = state.session.mappings.entries(overlapping: range)
                if touched.isEmpty { throw .errno("VFIO_USER_DMA_UNMAP: nothing is mapped in \(range)", ENOENT) }
                if let cut = touched.first(where: { $0.range.start < range.start || $0.range.last > range.last }) {
                    throw .errno("VFIO_USER_DMA_UNMAP: \(range) cuts through the mapping \(cut.range)", EINVAL)
                }
                for entry in touched {
                    state.session.mappings.remove(startingAt: entry.range.start)
                    if let file = entry.value.file { state.session.release(file) }
                }
                return touched
            }
        }
        for entry in removed { model.dmaUnmapped(entry.range) }
        return VFIOUserDMAUnmap(argsz: UInt32(VFIOUserDMAUnmap.size), flags: request.flags, address: request.address, size: request.size).encoded
    }

    private func handleSetIRQs(_ payload: [UInt8], _ fds: [Int32]) throws(VFIOError) {
        var owned = fds.map { OwnedDescriptor($0) }
        defer { for fd in owned { fd.close() } }
        var reader = ByteReader(payload, context: IRQSet.cName)
        var header = try IRQSetHeader(from: &reader)
        let dataPresent = reader.remaining
        let irqCount = model.irq(header.index)?.count ?? 0
        let isEventfd = header.flags.intersection(.dataTypeMask) == .dataEventfd
        var eventfdData: [Int32]?
        if isEventfd {
            // Descriptors travel as SCM_RIGHTS; the payload may (libvfio-user style) or may
            // not (QEMU) also carry the count × s32 array.
            let needed = UInt64(header.count) * 4
            if UInt64(dataPresent) >= needed && dataPresent > 0 {
                var values: [Int32] = []
                for _ in 0..<header.count { values.append(try reader.i32()) }
                eventfdData = values
            } else if needed + UInt64(IRQSetHeader.fixedSize) <= UInt64(UInt32.max) {
                header.argsz = max(header.argsz, UInt32(IRQSetHeader.fixedSize) + UInt32(needed))
            }
        }
        _ = try IRQSetValidation.validateAndPrepare(header, irqCount: irqCount, indexCount: UInt32(model.irqs.count),
                                                    dataBytesPresent: isEventfd ? Int(header.count) &* 4 : dataPresent)
        let action = header.flags.intersection(.actionTypeMask)
        let index = header.index
        switch header.flags.intersection(.dataTypeMask) {
        case .dataEventfd:
            guard action == .actionTrigger else {
                throw .errno("VFIO_USER_DEVICE_SET_IRQS: eventfds for MASK/UNMASK are not supported", EOPNOTSUPP)
            }
            // Which vectors get which descriptor (nil: unbind).
            var assignment: [OwnedDescriptor?] = []
            if let values = eventfdData {
                let wanted = values.filter { $0 >= 0 }.count
                guard wanted == owned.count else {
                    throw .errno("VFIO_USER_DEVICE_SET_IRQS: \(wanted) eventfd(s) named, \(owned.count) passed", EINVAL)
                }
                var next = 0
                for value in values {
                    if value >= 0 { assignment.append(owned[next]); next += 1 } else { assignment.append(nil) }
                }
            } else if owned.isEmpty {
                assignment = Array(repeating: nil, count: Int(header.count))
            } else {
                guard owned.count == Int(header.count) else {
                    throw .errno("VFIO_USER_DEVICE_SET_IRQS: count \(header.count) but \(owned.count) eventfd(s) passed", EINVAL)
                }
                assignment = owned
            }
            for fd in assignment.compactMap({ $0 }) where !isEventFD(fd.raw) {
                throw .errno("VFIO_USER_DEVICE_SET_IRQS: descriptor is not an eventfd", EBADF)
            }
            let enabled = monitor.withLock { state -> UInt32 in
                var vectors = state.session.triggers[index] ?? [:]
                if header.count == 0 { vectors.removeAll() }
                for (i, fd) in assignment.enumerated() {
                    let vector = header.start + UInt32(i)
                    if let fd { vectors[vector] = fd } else { vectors.removeValue(forKey: vector) }
                }
                state.session.triggers[index] = vectors
                return (vectors.keys.max().map { $0 + 1 }) ?? 0
            }
            owned = []
            model.irqsConfigured(index: index, enabledVectors: enabled)
        case .dataNone where action == .actionTrigger && header.count == 0:
            monitor.withLock { $0.session.triggers[index] = [:] }
            model.irqsConfigured(index: index, enabledVectors: 0)
        default:
            var selected: [UInt32] = []
            if header.flags.contains(.dataBool) {
                let bools = try reader.bytes(Int(header.count))
                for (i, b) in bools.enumerated() where b != 0 { selected.append(header.start + UInt32(i)) }
            } else {
                selected = (0..<header.count).map { header.start + $0 }
            }
            switch action {
            case .actionTrigger:
                for vector in selected { signal(index: index, vector: vector) }
            case .actionMask, .actionUnmask:
                guard model.irq(index)?.flags.contains(.maskable) == true else {
                    throw .errno("VFIO_USER_DEVICE_SET_IRQS: IRQ index \(index) is not maskable", EINVAL)
                }
                for vector in selected { model.irqMaskChanged(index: index, vector: vector, masked: action == .actionMask) }
            default:
                break
            }
        }
    }

    // MARK: Device context services

    /// Writes 1 to the eventfd of (index, vector), if the client gave one.
    func signal(index: UInt32, vector: UInt32) {
        monitor.withLock { state in
            guard let fd = state.session.triggers[index]?[vector] else { return }
            var one: UInt64 = 1
            _ = Glibc.write(fd.raw, &one, 8)
        }
    }

    func regionMemory(_ index: UInt32) -> RegionMemory? {
        regionFiles[index]?.memory
    }

    /// One piece of a DMA transfer.
    private enum Piece {
        case direct(UnsafeMutableRawPointer, at: Int, length: Int)
        case message(iova: UInt64, at: Int, length: Int)
    }

    /// Resolves `[iova, iova + count)` into pieces (lock held), or nil when a byte is not
    /// mapped with the access.
    private static func resolve(_ mappings: IOVAMappingTable<ServerDMAMapping>, iova: UInt64, count: Int, write: Bool) -> [Piece]? {
        var pieces: [Piece] = []
        var allowed = true
        let needed: VFIOUserDMAMapFlags = write ? .write : .read
        let covered = mappings.forEachPiece(of: iova, length: UInt64(count)) { entry, address, length, offset in
            guard entry.value.flags.contains(needed) else {
                allowed = false
                return
            }
            if let base = entry.value.base {
                pieces.append(.direct(base + Int(address - entry.range.start), at: Int(offset), length: Int(length)))
            } else {
                pieces.append(.message(iova: address, at: Int(offset), length: Int(length)))
            }
        }
        return covered && allowed ? pieces : nil
    }

    func dma(iova: UInt64, buffer: UnsafeMutableRawBufferPointer, write: Bool) throws(VFIOError) {
        let operation = write ? "DMA write" : "DMA read"
        guard buffer.count > 0 else { return }
        // Direct pieces are copied with the lock held (an unmap waits for them); message
        // pieces are sent afterwards, without it.
        let pending = try monitor.withLock { (state: inout ServerState) throws(VFIOError) -> [Piece] in
            guard let pieces = Self.resolve(state.session.mappings, iova: iova, count: buffer.count, write: write) else {
                throw .errno("\(operation) at 0x\(String(iova, radix: 16)) (+\(buffer.count)): not mapped", EFAULT)
            }
            var messages: [Piece] = []
            for piece in pieces {
                switch piece {
                case .direct(let pointer, let at, let length):
                    if write {
                        pointer.copyMemory(from: buffer.baseAddress! + at, byteCount: length)
                    } else {
                        (buffer.baseAddress! + at).copyMemory(from: pointer, byteCount: length)
                    }
                case .message:
                    messages.append(piece)
                }
            }
            return messages
        }
        for piece in pending {
            guard case .message(let address, let at, let length) = piece else { continue }
            try messageDMA(iova: address, buffer: UnsafeMutableRawBufferPointer(rebasing: buffer[at..<at + length]), write: write)
        }
    }

    /// DMA through DMA_READ / DMA_WRITE messages, in chunks of the client's
    /// `max_data_xfer_size`, sent only while no client request is outstanding.
    private func messageDMA(iova: UInt64, buffer: UnsafeMutableRawBufferPointer, write: Bool) throws(VFIOError) {
        let command: VFIOUserCommand = write ? .dmaWrite : .dmaRead
        let onServingThread = monitor.withLock { $0.isServingThread() }
        if onServingThread && requestGate.isBusy {
            throw .errno("\(command.cName) from inside a request handler (the client waits for the reply): queue it with afterReply", EDEADLK)
        }
        let chunk = Int(monitor.withLock { $0.session.clientCapabilities.maxDataTransferSize })
        var done = 0
        while done < buffer.count {
            let length = min(chunk, buffer.count - done)
            let address = iova + UInt64(done)
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + length])
            // struct vfio_user_dma_region_access, then (DMA_WRITE) the data from where it lies.
            var prefix = (address.littleEndian, UInt64(length).littleEndian)
            let reply = try withUnsafeBytes(of: &prefix) { (head: UnsafeRawBufferPointer) throws(VFIOError) -> VFIOUserMessage in
                try serverRequest(command, head, write ? UnsafeRawBufferPointer(piece) : UnsafeRawBufferPointer(start: nil, count: 0),
                                  onServingThread: onServingThread)
            }
            try reply.checkReply(command.cName)
            if !write {
                let payload = reply.payload
                guard payload.count == VFIOUserDMAAccess.headerSize + length else {
                    throw .malformed(command.cName, "asked for \(length) byte(s), the reply has \(max(0, payload.count - VFIOUserDMAAccess.headerSize))")
                }
                payload.withUnsafeBytes { piece.baseAddress!.copyMemory(from: $0.baseAddress! + VFIOUserDMAAccess.headerSize, byteCount: length) }
            }
            done += length
        }
    }

    /// Sends a server-initiated command and waits for its reply.
    private func serverRequest(_ command: VFIOUserCommand, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer,
                               onServingThread: Bool) throws(VFIOError) -> VFIOUserMessage {
        // Wait until no client request is being handled, then claim an id.
        let (socket, id) = try requestGate.whileWaiting { () throws(VFIOError) -> (VFIOUserSocket, UInt16) in
            try monitor.wait(recheckingEvery: RequestGate.recheckInterval) { (state: inout ServerState) throws(VFIOError) -> (VFIOUserSocket, UInt16)? in
                guard let socket = state.session.socket, !state.session.connectionFailed else {
                    throw .errno("\(command.cName): no client is connected", EFAULT)
                }
                if requestGate.isBusy && !onServingThread { return nil }
                var id = state.session.nextID
                while state.session.waiting.contains(id) { id &+= 1 }
                state.session.nextID = id &+ 1
                state.session.waiting.insert(id)
                return (socket, id)
            }
        }
        defer { monitor.withLock { state in
            state.session.waiting.remove(id)
            state.session.replies.removeValue(forKey: id)
        } }
        if onServingThread {
            // Answer whatever the client has already sent first: it may be waiting for
            // that reply before it looks at ours.
            while socket.hasInput() {
                guard try pumpOne(socket) else { throw .errno("\(command.cName): the client closed the connection", ECONNRESET) }
            }
        }
        try socket.send(VFIOUserHeader(messageID: id, command: command.rawValue,
                                       messageSize: UInt32(VFIOUserHeader.size + first.count + second.count), flags: []),
                        first, second)
        if onServingThread {
            // Keep serving the client's requests meanwhile (their own deferred work waits).
            while true {
                if let reply = monitor.withLock({ $0.session.replies.removeValue(forKey: id) }) { return reply }
                guard try pumpOne(socket) else { throw .errno("\(command.cName): the client closed the connection", ECONNRESET) }
            }
        }
        // The work thread lets the serving thread handle requests meanwhile.
        let onWorkThread = monitor.withLock { $0.isWorkThread() }
        if onWorkThread { servingLock.unlock() }
        defer { if onWorkThread { servingLock.lock() } }
        return try monitor.wait { (state: inout ServerState) throws(VFIOError) -> VFIOUserMessage? in
            if let reply = state.session.replies.removeValue(forKey: id) { return reply }
            if state.session.socket !== socket || state.session.connectionFailed {
                throw .errno("\(command.cName): the client went away", ECONNRESET)
            }
            return nil
        }
    }
}

/// True when `fd` is an eventfd (its /proc/self/fd link reads `anon_inode:[eventfd]`).
func isEventFD(_ fd: Int32) -> Bool {
    var buffer = [CChar](repeating: 0, count: 64)
    let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
    guard n > 0 else { return false }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "anon_inode:[eventfd]"
}

/// The `DeviceContext` the server gives its model.
final class ServerDeviceContext: DeviceContext, @unchecked Sendable {
    private weak var server: VFIOUserServer?

    init(server: VFIOUserServer) { self.server = server }

    func triggerIRQ(index: UInt32, vector: UInt32) {
        server?.signal(index: index, vector: vector)
    }

    func dmaRead(iova: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        guard let server else { throw .errno("DMA read", EFAULT) }
        try server.dma(iova: iova, buffer: buffer, write: false)
    }

    func dmaWrite(iova: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        guard let server else { throw .errno("DMA write", EFAULT) }
        try server.dma(iova: iova, buffer: UnsafeMutableRawBufferPointer(mutating: buffer), write: true)
    }

    func memory(forRegion index: UInt32) -> RegionMemory? {
        server?.regionMemory(index)
    }

    func afterReply(_ work: @escaping @Sendable () -> Void) {
        server?.enqueueDeferred(work)
    }
}
