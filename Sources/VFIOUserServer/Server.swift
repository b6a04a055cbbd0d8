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
/// - `serve(connection:)`: serves one already-connected socket (a socket pair);
///   `run(connection:)` does so on the calling thread.
/// - Threads and locks. One serving thread reads every message and handles it, in the
///   order messages arrive (so pipelined and NO_REPLY commands work); malformed messages
///   get an error reply and the connection stays up. `monitor` is the device lock: the
///   serving thread holds it while it handles a command (model callbacks and the reply),
///   and every send on the socket happens with it held. One work thread (started with the
///   first work) runs the model's `afterReply` work, each item with the device lock held,
///   so that model callbacks and queued work never run at once; work a command queued,
///   and the rest of an item whose DMA reply came, runs before the next command is
///   handled (as if it ran on the serving thread). `resources` (a `Monitor`, no condition used) guards what a
///   model reaches from any thread without the device lock: the DMA mappings and
///   interrupt eventfds; `threads` (a `Monitor`, no condition used) the threads and the
///   work queue; `watches` (a `Monitor`) the eventfds the work thread reads for the client.
///   `serveOneMessage` is the whole of the serving thread's work for one message
///   (ServerRegionAccess.swift for region accesses, ServerMigrationData.swift for
///   migration data, ServerCommands.swift for the rest).
/// - DMA (ServerDeviceContext.swift). Through memfds the client passed with DMA_MAP sealed
///   against shrinking (F_SEAL_SHRINK: QEMU's `memory-backend-memfd`, `DMABuffer`) it is a
///   `memcpy`; DMA_MAPs of one memfd share one mapping of the whole file. DMA to mappings
///   without a descriptor, or with one the client could shrink or free under a mapping
///   (any other file, a hugetlbfs memfd: the copy would die of SIGBUS), becomes
///   DMA_READ / DMA_WRITE messages: the sender takes the device lock (the work thread
///   already holds it), sends, and waits for the reply releasing the lock, so the serving
///   thread keeps handling the client's commands meanwhile and no such message goes out
///   while a command is being handled (QEMU holds its global lock while it waits for a
///   reply). From the serving thread (inside a command) such DMA fails with `EDEADLK`:
///   only that thread could read the reply. A waiter whose client goes away gets
///   `ECONNRESET`.
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
///   logging go to the `AttachedDevice` (see `ServerMigration.swift`); other feature
///   numbers the model declares (`deviceFeatures`) go to the model.
/// - Eventfds the server reads for the client (ServerEventWatches.swift): the ioeventfds
///   of the model's `IOEventArea`s (`GET_REGION_IO_FDS`) and the client's MASK / UNMASK
///   eventfds, polled by the work thread and delivered with the device lock held.
///   `requestRelease()` signals the client's REQ eventfd.
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
    /// The device lock (see the type's comment) and what it guards.
    let monitor = Monitor(ServerState())
    /// What the serving thread signals when a reply to a server-initiated message came
    /// or the connection ended (used with `monitor`).
    let replyArrived = Condition()
    /// What the work thread signals when it starts work a command queued, or begins or
    /// ends a wait for a DMA reply (used with `monitor`; `yieldToWork` waits on it).
    let workStarted = Condition()
    /// The DMA mappings and interrupt eventfds (model threads reach them).
    let resources = Monitor(ClientResources())
    /// The server's threads and the `afterReply` queue. A `Monitor` (a pthread mutex):
    /// the serving and the work thread contend for it, and a contended
    /// `Synchronization.Mutex` hands over inside the kernel (a PI futex), where
    /// ThreadSanitizer sees no release and acquire.
    let threads = Monitor(ServerThreads())
    /// The eventfds the work thread watches for the client (ServerEventWatches.swift).
    let watches = Monitor(EventWatches())
    /// Wakes the accept loop (`stop()`).
    private let acceptWake: EventFD
    /// Wakes the work thread when it waits for work.
    let workWake: EventFD
    private(set) var regionFiles: [UInt32: RegionMemoryFile] = [:]
    private var listener: OwnedDescriptor?
    private var socketPath: String?
    private var thread: WorkerThread?
    /// The device lock as the work thread holds it while it runs an item (work thread only).
    var workThreadHold: DeviceLockHold?
    /// The work thread may have something to do that the messages read so far allowed:
    /// work a command queued, or the rest of an item whose DMA reply came (serving thread
    /// only; set by `enqueueDeferred` and `deliverReply`, cleared by `yieldToWork`).
    var workMayRun = false
    private(set) var context: ServerDeviceContext!
    /// How REGION_READ / REGION_WRITE reach each region, by region index (made once:
    /// regions do not change).
    /// (Unsafe storage: an access reads its route in place, without reference counting.)
    let regionRoutes: UnsafeMutableBufferPointer<DeviceAccess.Route>
    /// The model as the kit hosts it: attached to a `TrackingContext` around the server's
    /// context, with its `MigrationDriver` when it migrates.
    public private(set) var device: AttachedDevice!

    /// The limits of one message: payloads past `maxPayload` (`max_data_xfer_size` +
    /// 4096) are read and dropped (E2BIG); `maxFDs` is `max_msg_fds`.
    let maxPayload: Int
    let maxFDs: Int
    /// The features the model serves itself, by number (`DeviceModel.deviceFeatures`).
    let modelFeatures: [UInt32: ModelFeature]

    /// Prepares `model` (memory for its memory-backed regions; `AttachedDevice` attaches
    /// it). Serve it with `listen(path:)` or `serve(connection:)`.
    /// - Throws: `.invalidArgument` for a migratable model whose features lack STOP_COPY,
    ///   for a region index above 4095, for ioeventfd areas `IOEventArea.validate` refuses,
    ///   for device features `ModelFeature.validate` refuses, or for a timeout that is not
    ///   positive or longer than a day.
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
        maxPayload = Int(configuration.capabilities.maxDataTransferSize) + 4096
        maxFDs = Int(configuration.capabilities.maxMessageFDs)
        partialMessageLimit = try limit(configuration.partialMessageTimeout, "partialMessageTimeout")
        sendLimit = try limit(configuration.sendTimeout, "sendTimeout")
        var quiet = Logger(label: "vfio-user-server")
        quiet.logLevel = .warning
        self.logger = logger ?? quiet
        for region in model.regions { try IOEventArea.validate(region) }
        let features = model.deviceFeatures
        try ModelFeature.validate(features)
        modelFeatures = Dictionary(uniqueKeysWithValues: features.map { ($0.id, $0) })
        acceptWake = try EventFD()
        workWake = try EventFD()
        for region in model.regions where region.isMemoryBacked && region.size > 0 {
            guard region.size <= UInt64(Int.max / 2) else { throw .invalidArgument("VFIOUserServer", "region \(region.index) is too large") }
            regionFiles[region.index] = try RegionMemoryFile(index: region.index, size: Int(region.size))
        }
        // By index; the first of a model's regions with an index wins, as in `region(_:)`.
        let highest = model.regions.map(\.index).max()
        guard (highest ?? 0) < 4096 else { throw .invalidArgument("VFIOUserServer", "region index \(highest ?? 0) is above 4095") }
        regionRoutes = .allocate(capacity: highest.map { Int($0) + 1 } ?? 0)
        regionRoutes.initialize(repeating: .absent)
        for region in model.regions.reversed() {
            regionRoutes[Int(region.index)] = DeviceAccess.Route(region, memory: regionFiles[region.index]?.memory)
        }
        context = ServerDeviceContext(server: self)
        device = try AttachedDevice(model: model, context: context, bufferAllocator: MappedBufferAllocator())
    }

    deinit {
        stop()
        monitor.withLock { $0.scratch.deallocate() }
        regionRoutes.deinitialize()
        regionRoutes.deallocate()
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
        // Taken here, before anyone can connect: `acceptLoop` owns it from now on.
        let spare = Self.openSpareDescriptor()
        thread = WorkerThread(name: "vfio-user-server") { [self] in serving { acceptLoop(fd, spare: spare) } }
    }

    /// Serves one connected socket on a thread, until the client closes it or `stop()`.
    public func serve(connection socket: VFIOUserSocket) {
        precondition(thread == nil, "VFIOUserServer serves one listener or one connection")
        thread = WorkerThread(name: "vfio-user-server") { [self] in serving { serveConnection(socket) } }
    }

    /// Serves one connected socket on the calling thread, until the client closes it or
    /// `stop()` is called from another thread; then returns. For a process whose thread
    /// has nothing else to do (a device server's main thread): no serving thread is
    /// started, nor a work thread until the model queues `afterReply` work, and a process
    /// that stays single-threaded makes its system calls a little cheaper.
    public func run(connection socket: VFIOUserSocket) {
        precondition(thread == nil, "VFIOUserServer serves one listener or one connection")
        serving { serveConnection(socket) }
    }

    /// Stops serving: the current connection is shut down, the listening socket closed and
    /// its file removed. Returns once the serving thread has ended (at once when called
    /// from the server's own threads: a model callback or `afterReply` work).
    public func stop() {
        let (socket, role) = threads.withLock { threads -> (VFIOUserSocket?, ServerThreads.Role) in
            threads.stopping = true
            return (threads.socket, threads.role(of: pthread_self()))
        }
        try? acceptWake.signal()
        socket?.shutdown()
        if let thread, !thread.isCurrent, role == .other { thread.join() }
        if let listener {
            listener.close()
            if let socketPath { Self.removeFile(socketPath) }
        }
    }

    /// Blocks until the serving thread ends (after `stop()`, or when the connection given
    /// to `serve(connection:)` closes).
    public func wait() {
        thread?.join()
    }

    /// `unlink(path)`; a failure (the file already gone) changes nothing.
    private static func removeFile(_ path: String) {
        _ = try? SystemCall.retrying("unlink(\(path))") { unlink(path) }
    }

    static func makeListener(path: String) throws(VFIOError) -> Int32 {
        var info = stat()
        if (try? SystemCall.retrying("lstat(\(path))", { lstat(path, &info) })) != nil {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw .errno("bind(\(path)): a file that is not a socket is in the way", EEXIST)
            }
            // A socket file: stale when nobody accepts on it.
            if let probe = try? VFIOUserSocket.connect(path: path) {
                probe.close()
                throw .errno("bind(\(path)): a server is already listening there", EADDRINUSE)
            }
            removeFile(path)
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
            removeFile(path)
            throw error
        }
        return fd
    }

    // MARK: Serving

    /// Runs `body` (the serving thread's loop); the work thread, started with the first
    /// work queued meanwhile, ends with it (work still queued then is dropped).
    private func serving(_ body: () -> Void) {
        threads.withLock { threads in
            threads.serving = pthread_self()
            threads.workEnds = false
            threads.workAllowed = true
            if !threads.queue.isEmpty { startWorkThread(&threads) }
        }
        body()
        let work = threads.withLock { threads -> WorkerThread? in
            threads.workAllowed = false
            threads.workEnds = true
            return threads.workThread
        }
        try? workWake.signal()
        work?.join()
        threads.withLock { threads in
            threads.serving = nil
            threads.workThread = nil
        }
    }

    /// Accepts and serves clients one after another until `stop()`. `spare` is a
    /// descriptor held in reserve (closed here at the end) for when the process has none
    /// left (EMFILE, ENFILE): the listening socket then stays readable, and without a
    /// descriptor to accept with, the loop would spin on it while the client waits in the
    /// backlog (`refuseForLackOfDescriptors`).
    private func acceptLoop(_ listenFD: Int32, spare initialSpare: Int32) {
        var spare = initialSpare
        defer { if spare >= 0 { closeDescriptor(spare) } }
        while !threads.withLock({ $0.stopping }) {
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: acceptWake.fd, events: Int16(POLLIN), revents: 0)]
            do throws(VFIOError) {
                try SystemCall.retrying("poll") { poll(&fds, 2, -1) }
            } catch {
                logger.error("accept loop ends", metadata: ["error": "\(error)"])
                return
            }
            if fds[1].revents != 0 { _ = try? acceptWake.consume() }
            if fds[0].revents & Int16(POLLIN) != 0 {
                do throws(VFIOError) {
                    let client = try SystemCall.retrying("accept4") { cvfio_accept_cloexec(listenFD) }
                    serveConnection(VFIOUserSocket(adopting: client))
                } catch let error where error.errnoValue == EMFILE || error.errnoValue == ENFILE {
                    refuseForLackOfDescriptors(listenFD, error, spare: &spare)
                } catch {
                    // ECONNABORTED (the client left first): the next one, then.
                    logger.warning("accept failed", metadata: ["error": "\(error)"])
                }
            } else if fds[0].revents != 0 {
                break
            }
        }
    }

    /// `accept` found no descriptor left (`error`: EMFILE or ENFILE). With the spare
    /// descriptor: gives it up, accepts the waiting client and closes its connection at
    /// once (the client sees it closed, not a server that never answers), then takes the
    /// spare back. Without one (the spare could not be taken back): waits up to a second
    /// for `stop()` before the loop looks again, so that it does not spin meanwhile.
    private func refuseForLackOfDescriptors(_ listenFD: Int32, _ error: VFIOError, spare: inout Int32) {
        if spare >= 0 {
            closeDescriptor(spare)
            spare = -1
            let client = cvfio_accept_cloexec(listenFD)
            if client >= 0 { closeDescriptor(client) }
            spare = Self.openSpareDescriptor()
            logger.warning("refused a client: the process has no descriptor left for it", metadata: ["error": "\(error)"])
        } else {
            logger.warning("accept failed: no descriptor left; looking again in 1 s", metadata: ["error": "\(error)"])
            var wake = pollfd(fd: acceptWake.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&wake, 1, 1000)
            spare = Self.openSpareDescriptor()
        }
    }

    /// A descriptor on /dev/null, held for `refuseForLackOfDescriptors` (-1 when none can
    /// be had).
    private static func openSpareDescriptor() -> Int32 {
        open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    private func serveConnection(_ socket: VFIOUserSocket) {
        guard let number = beginSession(socket) else {
            socket.close()
            return
        }
        var client: Logger.Metadata = ["connection": "\(number)"]
        if let pid = socket.peerProcessID { client["pid"] = "\(pid)" }
        logger.info("client connected", metadata: client)
        var reason = "the client closed the connection"
        // The thread blocks in recvmsg (the protocol's minimum of system calls): stop()
        // shuts the socket down to end it. The send timeout is a socket option, set once.
        do throws(VFIOError) {
            try socket.setTimeouts(partialMessage: partialMessageLimit, send: sendLimit)
            while try serveOneMessage(socket) {}
        } catch {
            reason = "\(error)"
        }
        if threads.withLock({ $0.stopping }) {
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

    /// Makes `socket` the current connection; returns its number, or nil once `stop()`
    /// was called.
    func beginSession(_ socket: VFIOUserSocket) -> Int? {
        let accepted = threads.withLock { threads -> Bool in
            guard !threads.stopping else { return false }
            threads.socket = socket
            return true
        }
        guard accepted else { return nil }
        return monitor.withLock { state in
            state.session = SessionState()
            state.session.socket = socket
            state.connections += 1
            model.sessionOpened()
            return state.connections
        }
    }

    /// Ends the current connection: closes `socket`, fails the message DMA waiting for a
    /// reply (`ECONNRESET`), drops the client's DMA mappings and eventfds (telling the
    /// model) and the eventfds watched for it, stops dirty logging, takes a migrating
    /// device back to RUNNING and then tells the model (`sessionClosed`). The device
    /// keeps the rest of its state.
    func endSession(_ socket: VFIOUserSocket) {
        threads.withLock { $0.socket = nil }
        // Unmapped first (a copy in progress ends before), released after the notices.
        let (mappings, triggered) = resources.withLock { resources -> ([IOVAMappingTable<ServerDMAMapping>.Entry], [UInt32]) in
            let triggered = resources.triggers.filter { !$0.value.isEmpty }.map(\.key)
            let mappings = resources.mappings.removeAll()
            resources = ClientResources()
            return (mappings, triggered)
        }
        monitor.withLock { state in
            state.session = SessionState()
            removeAllWatches()
            replyArrived.broadcast()
            socket.close()
            for index in triggered.sorted() { model.irqsConfigured(index: index, enabledVectors: 0) }
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
            model.sessionClosed()
        }
    }

    /// Reads one message from `socket` and serves it: a command is handled with the device
    /// lock held and answered (an error reply for a malformed or refused one; none with
    /// NO_REPLY), a reply goes to the message DMA waiting for it. Returns false at the end
    /// of the stream.
    /// - Throws: only the socket's errors (the connection is then unusable).
    func serveOneMessage(_ socket: VFIOUserSocket) throws(VFIOError) -> Bool {
        guard let header = try socket.receiveHeader(maxFDs: maxFDs) else { return false }
        if workMayRun && header.isCommand {
            // Work that earlier messages allowed runs before this command (`yieldToWork`).
            monitor.withLockedWait { (state: inout ServerState, wait: DeviceLockHold.Wait) in yieldToWork(&state, wait) }
        }
        // Each command, its reply included, is handled with the device lock held.
        if header.isCommand && header.messageSize >= UInt32(VFIOUserHeader.size) {
            switch header.command {
            case VFIOUserCommand.regionRead.rawValue, VFIOUserCommand.regionWrite.rawValue:
                try monitor.withLock { (state: inout ServerState) throws(VFIOError) in try serveRegionAccess(header, socket, &state) }
                return true
            case VFIOUserCommand.migDataRead.rawValue, VFIOUserCommand.migDataWrite.rawValue:
                // Migration data goes between the socket and the migration driver without arrays.
                try monitor.withLock { (state: inout ServerState) throws(VFIOError) in try serveMigrationData(header, socket, state.session) }
                return true
            default:
                break
            }
        }
        switch try socket.receiveBody(header, maxPayload: maxPayload, maxFDs: maxFDs) {
        case .endOfStream:
            return false
        case .rejected(let header, let error):
            logger.debug("rejected message", metadata: ["header": "\(header)", "error": "\(error)"])
            if header.isReply {
                deliverReply(VFIOUserMessage(header: VFIOUserHeader(messageID: header.messageID, command: header.command, messageSize: 16,
                                                                    flags: [.reply, .error], error: UInt32(replyErrno(error))), payload: []))
            } else if header.wantsReply {
                try monitor.withLock { (_: inout ServerState) throws(VFIOError) in
                    try socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(replyErrno(error)))
                }
            }
        case .message(let message):
            if message.header.isReply {
                deliverReply(message)
            } else {
                try monitor.withLock { (state: inout ServerState) throws(VFIOError) in try serveCommand(message, socket, &state) }
            }
        }
        return true
    }

    /// Hands a reply to the message DMA waiting for it. (One the work thread waits for
    /// lets it run before the next command: `workMayRun`.)
    private func deliverReply(_ message: VFIOUserMessage) {
        let delivered = monitor.withLock { state -> Bool in
            let id = message.header.messageID
            guard let waiting = state.session.replies[id], waiting == nil else { return false }
            state.session.replies[id] = message
            if state.workAwaitsReply == id { workMayRun = true }
            return true
        }
        guard delivered else {
            logger.debug("unexpected reply", metadata: ["header": "\(message.header)"])
            return
        }
        // After the lock is let go (POSIX allows it; the waiter looks at the state with the
        // lock held, so it cannot miss this): a waiter woken with the lock still held
        // would run only to block on it again.
        replyArrived.broadcast()
    }
}
