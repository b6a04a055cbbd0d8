import CVFIO
import Glibc
import VFIO
import VFIOSystem
import VFIOUserWire

/// Where a caller wants the payload of its reply: the first `prefix.count` bytes in
/// `prefix`, the rest in `data`. Used only when the reply's payload has exactly that size
/// and no ERROR flag (then the reply comes back with `receivedDirectly` and an empty
/// payload); any other reply arrives as a whole message. The buffers' contents are
/// unspecified when the reply turns out to be bad.
struct DirectReply {
    var prefix: UnsafeMutableRawBufferPointer
    var data: UnsafeMutableRawBufferPointer
    /// A reply with less data than `data.count` is taken too (the count lands in the
    /// reply's `directDataCount`); otherwise the size must match exactly.
    var acceptsShorter = false
}

/// The reply `exchange` returns: a whole message, or, when the caller's `DirectReply`
/// fitted, the header alone with the payload already in the caller's buffers (no message
/// is built for it).
struct ExchangeReply {
    let header: VFIOUserHeader
    /// `nil` when the payload went into the caller's buffers.
    let message: VFIOUserMessage?
    /// With a direct reply: the bytes that went into the caller's data buffer.
    let directDataCount: Int

    init(_ message: VFIOUserMessage) {
        header = message.header
        self.message = message
        directDataCount = 0
    }

    init(direct header: VFIOUserHeader, dataCount: Int) {
        self.header = header
        message = nil
        directDataCount = dataCount
    }

    var receivedDirectly: Bool { message == nil }
    var payload: [UInt8] { message?.payload ?? [] }

    /// Throws the reply's error when it has the ERROR flag (errno 0 becomes `EIO`).
    func checkReply(_ operation: @autoclosure () -> String) throws(VFIOError) {
        if header.isError {
            let code = Int32(bitPattern: header.error)
            throw .errno(operation(), code == 0 ? EIO : code)
        }
    }
}

/// A request waiting for its reply. Its fields change with the client's monitor held
/// only; `id` and `deadline` are set when it is registered and read by its own caller.
final class ReplyWaiter: @unchecked Sendable {
    @exclusivity(unchecked) var id: UInt16 = 0
    /// When the caller stops waiting (see `ClientCore`, "A hostile server").
    @exclusivity(unchecked) var deadline = ClientDeadline(command: 0, id: 0, timeout: 0)
    /// The caller waits on `condition` for this reply (not still sending, nor reading
    /// itself): it may be handed the reading token.
    @exclusivity(unchecked) var awaiting = false
    @exclusivity(unchecked) var reply: VFIOUserMessage?
    /// The reading token was handed to this caller by the thread that held it.
    @exclusivity(unchecked) var handedToken = false
    /// Where it sits in its `WaiterTable` while in use.
    @exclusivity(unchecked) var slot = 0
    /// What the caller waits on.
    let condition = Condition()
}

/// The requests waiting for replies (guarded by the client's monitor): a collection of
/// the waiters in use, in no particular order. Waiters are made once and reused, and a
/// request's registration and retirement move no array element when it is the only one
/// (the lone caller's path): each waiter knows its slot.
struct WaiterTable: RandomAccessCollection {
    /// In use: all[0..<count]; the rest are kept for reuse.
    private var all: [ReplyWaiter] = []
    private(set) var count = 0

    var startIndex: Int { 0 }
    var endIndex: Int { count }
    subscript(position: Int) -> ReplyWaiter { all[position] }

    /// A waiter taken into use (fields as the last request left them).
    @inline(__always)
    mutating func take() -> ReplyWaiter {
        if count == all.count { all.append(ReplyWaiter()) }
        let waiter = all[count]
        waiter.slot = count
        count += 1
        return waiter
    }

    /// Puts `waiter` back for reuse (nothing when it is not in use).
    @inline(__always)
    mutating func give(back waiter: ReplyWaiter) {
        let slot = waiter.slot
        guard slot < count, all[slot] === waiter else { return }
        let last = count - 1
        if slot != last {
            let moved = all[last]
            all.swapAt(slot, last)
            moved.slot = slot
            waiter.slot = last
        }
        count = last
    }
}

/// The connection of a `VFIOUserClient`: requests, replies and the threads that read.
///
/// Reading is leader/follower: one thread at a time holds the reading token and reads the
/// socket. A caller takes the token when it registers its request and finds it free,
/// or when it comes free or is handed to it while the caller waits for its reply; it
/// then reads until its reply comes, handing the replies of other callers to them
/// (each waits on a condition of its own, woken after the lock is released, so that it
/// does not wake only to wait for the lock) and server commands to the DMA thread; then
/// it hands the token to another waiting caller, if any. So a lone request costs its two
/// system calls and no thread hop, and with many callers one read brings every reply
/// that has come (`Inbox` reads up to 8 KiB at once) and each waiter wakes once.
///
/// Between requests the receive thread reads, but not at once: it takes the token only
/// once the connection has been quiet for `idleReadDelay` (it looks once per delay, so
/// it notices between one and two delays after the last reply; a caller's next request would
/// otherwise find the socket taken and its reply would need a hop through that thread).
/// A caller whose send finds the socket full reads while it waits for room when nobody
/// else does (the server may be blocked writing to us).
/// A message the server sends while no request is in flight is therefore read by the
/// next request, or within twice `idleReadDelay`; once the DMA thread has answered one,
/// the receive thread reads at once (server commands come in runs: a DMA transfer in
/// pieces).
///
/// Plain reads: a lone caller (the token free, no other request waiting) whose reply
/// carries no descriptors (a `DirectReply`: region and migration data) reads with `recv`,
/// which costs less than `recvmsg`; descriptors that come anyway are closed by the
/// kernel. Only replies to requests without a `DirectReply` may carry descriptors (region
/// info, I/O fds, raw requests), so such a request is not sent while a plain reader holds
/// the token: no byte of its reply can reach a plain read. Server commands (DMA_READ /
/// DMA_WRITE) carry none.
///
/// A hostile server: every request has a deadline (`ClientDeadline`, from the reply
/// timeouts of the configuration), taken with the clock under the lock the request takes
/// anyway. A caller that does not read waits on its condition until its deadline; a
/// sender polls for room until its deadline; a reader that meets other messages looks at
/// the clock after each. A caller blocked reading costs nothing more (no receive timeout
/// on the socket, whose timer would cost every blocking read): the receive thread, which
/// wakes once per `idleReadDelay` while a request is out, or at the first deadline, is the
/// watchdog (when it reads itself, every caller waits on its condition). When a deadline
/// passes, a reply comes for no request awaiting it, or the socket fails, the connection
/// fails: the first error is kept and thrown to every caller, and the socket is shut down
/// so that every thread blocked on it returns. Server commands wait for the DMA thread in
/// a queue of bounded memory (`maxQueuedServerCommandBytes`): a reader that fills it waits
/// for room (a caller until its deadline), and senders waiting for room do not read while
/// it is full; the DMA thread's replies have deadlines too, so it never blocks for good.
final class ClientCore: @unchecked Sendable {
    struct State {
        var nextID: UInt16 = 1
        /// Requests with an id and no reply taken yet (a handful at most: a list is
        /// quicker than hashing).
        var waiters = WaiterTable()
        var failure: VFIOError?
        var served = 0
        /// The migration state as last read or set through this client (`nil`: unknown).
        /// One client at a time talks to a server, and the server changes the state only
        /// when asked, so it stays right until the next request that may change it.
        var knownMigrationState: MigrationState?
        /// A thread holds the reading token: only it calls `socket.receive…`.
        var reading = false
        /// Counts requests sent and replies taken: the receive thread sees the connection
        /// quiet when it does not move for `idleReadDelay`.
        var activity: UInt64 = 0
        /// The token holder reads with `recv` (see "Plain reads" above): requests whose
        /// replies may carry descriptors wait on `plainReadEnded` before they are sent.
        var plainReading = false
        /// A request waits on `plainReadEnded`.
        var plainReadWaited = false
        /// The DMA thread has just answered a server command: the server is likely to send
        /// the next at once (a DMA transfer in pieces), so the receive thread reads without
        /// waiting for a quiet connection.
        var serverBusy = false
    }

    let socket: VFIOUserSocket
    let configuration: VFIOUserClient.Configuration
    let monitor = Monitor(State())
    /// The receive thread waits on this while it does not read.
    let receiveCondition = Condition()
    /// Requests whose replies may carry descriptors wait on this while a plain read may
    /// be under way.
    let plainReadEnded = Condition()
    /// Server-initiated commands waiting for the DMA thread (a monitor of their own, so
    /// that the DMA thread is not woken by replies). Lock order: `monitor`, then this.
    let dmaQueue = Monitor(ServerCommandQueue())
    /// A reader that filled `dmaQueue` waits on this (with `dmaQueue`'s lock) for room.
    let queueRoom = Condition()
    /// The memory mapped with `mapDMA`, sorted by IOVA. Held while the DMA thread copies
    /// or sends from it, so an unmap waits for a transfer in progress (the memory stays
    /// valid until the transfer is over).
    let dmaTable = Monitor(IOVAMappingTable<ClientDMAMapping>())
    private var thread: WorkerThread?
    /// Serves the server's DMA_READ / DMA_WRITE, so that no reader ever waits to send (it
    /// must keep reading replies, or a large reply and a large request in flight at once
    /// could block both peers).
    private var dmaThread: WorkerThread?
    let idleDelay: UInt64
    /// Nanoseconds a request waits for its reply (`replyTimeout`), and requests of the
    /// commands `slowReplyTimeout` names.
    let replyTimeout: UInt64
    private let slowReplyTimeout: UInt64
    /// `maxQueuedServerCommandBytes`.
    let maxQueuedBytes: Int
    /// Larger payloads are dropped (E2BIG): what this client accepts, and room for headers.
    let maxPayload: Int
    let maxFDs: Int

    init(socket: VFIOUserSocket, configuration: VFIOUserClient.Configuration) {
        self.socket = socket
        self.configuration = configuration
        idleDelay = configuration.idleReadDelayNanoseconds
        replyTimeout = configuration.replyTimeoutNanoseconds
        slowReplyTimeout = configuration.slowReplyTimeoutNanoseconds
        maxPayload = Int(configuration.capabilities.maxDataTransferSize) + 4096
        maxFDs = Int(configuration.capabilities.maxMessageFDs)
        maxQueuedBytes = max(configuration.maxQueuedServerCommandBytes, 1)
    }

    func start() {
        thread = WorkerThread(name: "vfio-user-client") { [self] in receiveLoop() }
        dmaThread = WorkerThread(name: "vfio-user-dma") { [self] in dmaLoop() }
    }

    var isConnected: Bool { monitor.withLock { $0.failure == nil } }

    var servedDMAMessages: Int { monitor.withLock { $0.served } }

    /// The most memory server commands held while waiting for the DMA thread (as
    /// `maxQueuedServerCommandBytes` counts it).
    var peakQueuedServerCommandBytes: Int { dmaQueue.withLock { $0.peakBytes } }

    var knownMigrationState: MigrationState? {
        get { monitor.withLock { $0.knownMigrationState } }
        set { monitor.withLock { $0.knownMigrationState = newValue } }
    }

    func close() {
        fail(.errno("vfio-user connection", ECONNRESET))
        if let thread, !thread.isCurrent { thread.join() }
        if let dmaThread, !dmaThread.isCurrent { dmaThread.join() }
        socket.close()
    }

    /// The DMA thread answered a server command: let the receive thread read now.
    func serverCommandAnswered() {
        monitor.withLock { state in
            state.serverBusy = true
            if !state.reading { receiveCondition.signal() }
        }
    }

    /// Fails the connection with `error` unless it failed already; returns the failure
    /// kept (the first), which is what callers are told.
    @discardableResult
    func fail(_ error: VFIOError) -> VFIOError {
        monitor.withLock { state in
            recordFailure(&state, error)
            return state.failure!
        }
    }

    /// Records the first failure (lock held): wakes every thread that waits, closes the
    /// DMA queue, and shuts the socket down so that every thread blocked on it returns
    /// (the descriptor stays open until `close`).
    func recordFailure(_ state: inout State, _ error: VFIOError) {
        guard state.failure == nil else { return }
        state.failure = error
        for waiter in state.waiters { waiter.condition.signal() }
        receiveCondition.signal()
        plainReadEnded.broadcast()
        socket.shutdown()
        dmaQueue.update { queue in
            queue.closed = true
            queueRoom.broadcast()
        }
    }

    /// The reply timeout of `command` (see `Configuration.slowReplyTimeout`).
    private func timeout(for command: UInt16) -> UInt64 {
        switch command {
        case VFIOUserCommand.deviceReset.rawValue, VFIOUserCommand.deviceFeature.rawValue,
             VFIOUserCommand.migDataRead.rawValue, VFIOUserCommand.migDataWrite.rawValue:
            return slowReplyTimeout
        default:
            return replyTimeout
        }
    }

    // MARK: Requests

    /// Sends a command whose payload is `first` followed by `second` and returns its reply
    /// (the ERROR flag is not turned into an error: see `request`). With `direct`, a reply
    /// of the expected size lands in the caller's buffers.
    ///
    /// One lock step registers the request and takes the reading token when it is free;
    /// the request goes out; then the caller reads its reply itself (`readReply`) or
    /// waits for it (`awaitReply`). A caller holding the token never waits for another
    /// thread's send: that may be the DMA thread waiting for room while the server, its
    /// socket full, waits for us to read; so when the send lock is busy the token is
    /// given up first.
    /// - Throws: the connection's failure: `ETIMEDOUT` naming the request when its reply
    ///   did not come within its timeout (the connection fails then).
    func exchange(_ command: UInt16, _ first: UnsafeRawBufferPointer,
                  _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                  fds: [Int32] = [], flags: VFIOUserMessageFlags = [], direct: DirectReply? = nil) throws(VFIOError) -> ExchangeReply {
        // `reads`: whether this caller took the token and reads plainly; nil without it.
        let (waiter, reads) = try monitor.wait(on: plainReadEnded) { (state: inout State) throws(VFIOError) -> (ReplyWaiter, Bool?)? in
            if let failure = state.failure { throw failure }
            if direct == nil && state.plainReading {
                state.plainReadWaited = true
                return nil
            }
            state.activity &+= 1
            let waiter = registerWaiter(&state, command: command)
            guard !state.reading else { return (waiter, nil) }
            state.reading = true
            // Alone: no other reply can be read, so this one (without descriptors) may be read plainly.
            state.plainReading = direct != nil && state.waiters.count == 1
            return (waiter, state.plainReading)
        }!
        var holdsToken = reads != nil
        let header = VFIOUserHeader(messageID: waiter.id, command: command,
                                    messageSize: UInt32(VFIOUserHeader.size + first.count + second.count), flags: flags)
        do {
            try socket.transmit(header, first, second, fds: fds, dontWait: true, whenSendLockBusy: {
                guard holdsToken else { return }
                holdsToken = false
                var wake: [ReplyWaiter] = []
                monitor.withLock { releaseToken(&$0, wake: &wake) }
                signal(wake)
            }, whenFull: { () throws(VFIOError) in
                try waitForRoom(holdingToken: holdsToken, deadline: waiter.deadline)
            })
        } catch {
            var wake: [ReplyWaiter] = []
            monitor.withLock { state in
                retire(waiter, &state)
                if holdsToken { releaseToken(&state, wake: &wake) }
            }
            signal(wake)
            throw closedConnection(error)
        }
        if holdsToken, let plain = reads { return try readReply(waiter, direct: direct, plain: plain) }
        return try awaitReply(waiter, direct: direct)
    }

    /// A waiter for a new `command` request (lock held): a free id (not a waiting
    /// request's), in the list of waiters, with its deadline.
    @inline(__always)
    private func registerWaiter(_ state: inout State, command: UInt16) -> ReplyWaiter {
        var id = state.nextID
        while state.waiters.contains(where: { $0.id == id }) { id &+= 1 }
        state.nextID = id &+ 1
        let waiter = state.waiters.take()
        waiter.id = id
        waiter.awaiting = false
        if waiter.reply != nil { waiter.reply = nil }   // (`retire` left it nil: no release to pay)
        waiter.handedToken = false
        waiter.deadline = ClientDeadline(command: command, id: id, timeout: timeout(for: command))
        return waiter
    }

    /// Removes a waiter whose request is over (lock held) and keeps it for reuse.
    func retire(_ waiter: ReplyWaiter, _ state: inout State) {
        state.waiters.give(back: waiter)
        if waiter.reply != nil { waiter.reply = nil }   // (a direct reply never set it: no release to pay)
        waiter.awaiting = false
        waiter.handedToken = false
    }

    /// A send's error as callers see it: a server that closed the connection (`EPIPE`:
    /// before a reader saw it) fails the connection with `ECONNRESET`, which is thrown.
    func closedConnection(_ error: VFIOError) -> VFIOError {
        guard error.errnoValue == EPIPE else { return error }
        return fail(.errno("vfio-user connection (the server closed it)", ECONNRESET))
    }

    /// Sends a command with NO_REPLY.
    func post(_ command: UInt16, _ first: UnsafeRawBufferPointer,
              _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
              fds: [Int32] = [], flags: VFIOUserMessageFlags = .noReply) throws(VFIOError) {
        let id = try monitor.withLock { (state: inout State) throws(VFIOError) -> UInt16 in
            if let failure = state.failure { throw failure }
            defer { state.nextID &+= 1 }
            return state.nextID
        }
        let deadline = ClientDeadline(command: command, id: id, timeout: replyTimeout)
        let header = VFIOUserHeader(messageID: id, command: command,
                                    messageSize: UInt32(VFIOUserHeader.size + first.count + second.count), flags: flags)
        do {
            try socket.transmit(header, first, second, fds: fds, dontWait: true, whenFull: { () throws(VFIOError) in
                try waitForRoom(holdingToken: false, deadline: deadline)
            })
        } catch {
            throw closedConnection(error)
        }
    }

    func rawRequest(command: UInt16, payload: [UInt8], fds: [Int32], flags: VFIOUserMessageFlags) throws(VFIOError) -> VFIOUserMessage? {
        try payload.withBytes { (bytes: UnsafeRawBufferPointer) throws(VFIOError) -> VFIOUserMessage? in
            if flags.contains(.noReply) {
                try post(command, bytes, fds: fds, flags: flags)
                return nil
            }
            return try exchange(command, bytes, fds: fds, flags: flags).message
        }
    }

    /// Sends a command and returns its reply, or throws the errno of an error reply.
    func request(_ command: VFIOUserCommand, payload: [UInt8], fds: [Int32] = []) throws(VFIOError) -> VFIOUserMessage {
        let reply = try payload.withBytes { (bytes: UnsafeRawBufferPointer) throws(VFIOError) -> VFIOUserMessage in
            try exchange(command.rawValue, bytes, fds: fds).message!
        }
        try reply.checkReply(command.cName)
        return reply
    }

    /// Sends a command with NO_REPLY.
    func post(_ command: VFIOUserCommand, payload: [UInt8]) throws(VFIOError) {
        try payload.withBytes { (bytes: UnsafeRawBufferPointer) throws(VFIOError) in try post(command.rawValue, bytes) }
    }

    // MARK: Batches

    /// One request of `exchangeBatch`: its payload is `first` followed by `second`.
    struct BatchRequest {
        var command: UInt16
        var first: UnsafeRawBufferPointer
        var second: UnsafeRawBufferPointer
        var direct: DirectReply?
    }

    /// Sends every request of `batch` before waiting for any reply (in one `send` while
    /// the messages fit a 64 KiB buffer, else one after the other), then returns their
    /// replies in order: `batch.count` requests in flight from one thread. Each reply is
    /// as `exchange` gives it, and each has its reply timeout from the moment the batch
    /// is sent.
    /// - Throws: the connection's failure (no reply is returned then).
    func exchangeBatch(_ batch: [BatchRequest]) throws(VFIOError) -> [ExchangeReply] {
        guard !batch.isEmpty else { return [] }
        let mayCarryDescriptors = batch.contains { $0.direct == nil }
        let waiters = try monitor.wait(on: plainReadEnded) { (state: inout State) throws(VFIOError) -> [ReplyWaiter]? in
            if let failure = state.failure { throw failure }
            if mayCarryDescriptors && state.plainReading {
                state.plainReadWaited = true
                return nil
            }
            var registered: [ReplyWaiter] = []
            registered.reserveCapacity(batch.count)
            for request in batch { registered.append(registerWaiter(&state, command: request.command)) }
            state.activity &+= 1
            return registered
        }!
        do {
            try sendBatch(batch, ids: waiters.map(\.id), deadline: waiters[0].deadline)
        } catch {
            monitor.withLock { state in for waiter in waiters { retire(waiter, &state) } }
            throw closedConnection(error)
        }
        var replies: [ExchangeReply] = []
        replies.reserveCapacity(batch.count)
        for (i, waiter) in waiters.enumerated() {
            do {
                replies.append(try awaitReply(waiter, direct: batch[i].direct))
            } catch {
                // The connection failed: the rest are retired as they see it.
                for rest in waiters[(i + 1)...] { _ = try? awaitReply(rest, direct: nil) }
                throw error
            }
        }
        return replies
    }

    /// The messages of a batch, in order: copied into one buffer and sent together while
    /// they fit 64 KiB, else one `send` each. Sends wait for room as `exchange`'s do.
    private func sendBatch(_ batch: [BatchRequest], ids: [UInt16], deadline: ClientDeadline) throws(VFIOError) {
        let total = batch.reduce(0) { $0 + VFIOUserHeader.size + $1.first.count + $1.second.count }
        guard total <= 64 << 10 else {
            for (i, request) in batch.enumerated() {
                let header = VFIOUserHeader(messageID: ids[i], command: request.command,
                                            messageSize: UInt32(VFIOUserHeader.size + request.first.count + request.second.count), flags: [])
                try socket.transmit(header, request.first, request.second, fds: [], dontWait: true, whenFull: { () throws(VFIOError) in
                    try waitForRoom(holdingToken: false, deadline: deadline)
                })
            }
            return
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 16)
        defer { buffer.deallocate() }
        var at = 0
        for (i, request) in batch.enumerated() {
            let size = VFIOUserHeader.size + request.first.count + request.second.count
            VFIOUserHeader(messageID: ids[i], command: request.command, messageSize: UInt32(size), flags: [])
                .store(into: UnsafeMutableRawBufferPointer(rebasing: buffer[at..<(at + VFIOUserHeader.size)]))
            at += VFIOUserHeader.size
            for piece in [request.first, request.second] where !piece.isEmpty {
                (buffer.baseAddress! + at).copyMemory(from: piece.baseAddress!, byteCount: piece.count)
                at += piece.count
            }
        }
        try socket.sendStream(UnsafeRawBufferPointer(buffer), whenFull: { () throws(VFIOError) in
            try waitForRoom(holdingToken: false, deadline: deadline)
        })
    }
}
