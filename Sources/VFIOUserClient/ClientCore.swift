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

/// A caller waiting for the reply to its request. Its fields change with the client's
/// monitor held only (see `UncheckedCell`).
final class ReplyWaiter: @unchecked Sendable {
    struct Fields {
        var id: UInt16 = 0
        /// The request is sent: this caller waits for (or reads) its reply, and may be
        /// handed the reading token.
        var awaiting = false
        var reply: VFIOUserMessage?
        /// The reading token was handed to this caller by the thread that held it.
        var handedToken = false
        /// When the caller stops waiting (see `ClientCore`, "A hostile server").
        var deadline: ClientDeadline?
    }

    let condition = Condition()
    private let cell = UncheckedCell(Fields())
    private var fields: UnsafeMutablePointer<Fields> { cell.pointer }

    var id: UInt16 { get { fields.pointee.id } set { fields.pointee.id = newValue } }
    var awaiting: Bool { get { fields.pointee.awaiting } set { fields.pointee.awaiting = newValue } }
    var reply: VFIOUserMessage? {
        get { fields.pointee.reply }
        set { fields.pointee.reply = newValue }
    }
    var handedToken: Bool { get { fields.pointee.handedToken } set { fields.pointee.handedToken = newValue } }
    var deadline: ClientDeadline? { get { fields.pointee.deadline } set { fields.pointee.deadline = newValue } }

}

/// The connection of a `VFIOUserClient`: requests, replies and the threads that read.
///
/// Reading is leader/follower: one thread at a time holds the reading token and reads the
/// socket. A caller waiting for its reply takes the token when it is free and reads until
/// its reply comes, handing the replies of other callers to them (each waits on a
/// condition of its own) and server commands to the DMA thread; then it hands the token
/// to another waiting caller, if any. So a lone request costs its two system calls and
/// no thread hop.
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
/// Plain reads: a lone caller whose reply carries no descriptors (a `DirectReply`: region
/// and migration data) reads with `recv`, which costs less than `recvmsg`; descriptors
/// that come anyway are closed by the kernel. Only replies to requests without a
/// `DirectReply` may carry descriptors (region info, I/O fds, raw requests), so such a
/// request is not sent while a plain reader holds the token: no byte of its reply can
/// reach a plain read. Server commands (DMA_READ / DMA_WRITE) carry none.
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
        /// Callers whose request has an id and no reply taken yet (a handful at most: a
        /// list is quicker than hashing).
        var waiters: [ReplyWaiter] = []
        var spareWaiters: [ReplyWaiter] = []
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
        /// The id of a request whose caller took the token before sending (no waiter).
        var soloID: UInt16?
        /// The solo request's deadline (the receive thread watches it).
        var soloDeadline: ClientDeadline?
        /// The solo caller reads with `recv` (see "Plain reads" above): requests whose
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
    private let receiveCondition = Condition()
    /// Requests whose replies may carry descriptors wait on this while a plain read may
    /// be under way.
    private let plainReadEnded = Condition()
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
    private let idleDelay: UInt64
    /// Nanoseconds a request waits for its reply (`replyTimeout`), and requests of the
    /// commands `slowReplyTimeout` names.
    let replyTimeout: UInt64
    private let slowReplyTimeout: UInt64
    /// `maxQueuedServerCommandBytes`.
    let maxQueuedBytes: Int
    /// Replies the token holder has read for other callers, not handed over yet (token
    /// holder only).
    private let undeliveredCell = UncheckedCell([VFIOUserMessage]())
    private var undelivered: UnsafeMutablePointer<[VFIOUserMessage]> { undeliveredCell.pointer }
    /// Larger payloads are dropped (E2BIG): what this client accepts, and room for headers.
    private let maxPayload: Int
    private let maxFDs: Int

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
    private func recordFailure(_ state: inout State, _ error: VFIOError) {
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
        switch VFIOUserCommand(rawValue: command) {
        case .deviceReset?, .deviceFeature?, .migDataRead?, .migDataWrite?: return slowReplyTimeout
        default: return replyTimeout
        }
    }

    // MARK: Requests

    /// Sends a command whose payload is `first` followed by `second` and returns its reply
    /// (the ERROR flag is not turned into an error: see `request`). With `direct`, a reply
    /// of the expected size lands in the caller's buffers.
    /// - Throws: the connection's failure: `ETIMEDOUT` naming the request when its reply
    ///   did not come within its timeout (the connection fails then).
    func exchange(_ command: UInt16, _ first: UnsafeRawBufferPointer,
                  _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                  fds: [Int32] = [], flags: VFIOUserMessageFlags = [], direct: DirectReply? = nil) throws(VFIOError) -> ExchangeReply {
        // Alone (nobody reads, nobody waits): take the token at once and read the reply
        // without registering a waiter.
        let solo = try monitor.withLock { (state: inout State) throws(VFIOError) -> ClientDeadline? in
            if let failure = state.failure { throw failure }
            guard !state.reading, state.waiters.isEmpty else { return nil }
            let id = state.nextID
            state.nextID = id &+ 1
            state.reading = true
            state.soloID = id
            let deadline = ClientDeadline(command: command, id: id, timeout: timeout(for: command))
            state.soloDeadline = deadline
            state.plainReading = direct != nil
            state.activity &+= 1
            return deadline
        }
        if let solo {
            return try soloExchange(solo.id, command, first, second, fds: fds, flags: flags, direct: direct, deadline: solo)
        }
        let waiter = try monitor.wait(on: plainReadEnded) { (state: inout State) throws(VFIOError) -> ReplyWaiter? in
            if let failure = state.failure { throw failure }
            if direct == nil && state.plainReading {
                state.plainReadWaited = true
                return nil
            }
            state.activity &+= 1
            return registerWaiter(&state, command: command)
        }!
        let deadline = waiter.deadline!
        do {
            try sendRequest(waiter.id, command, first, second, fds: fds, flags: flags, holdingToken: false, deadline: deadline)
        } catch {
            monitor.withLock { state in retire(waiter, &state) }
            throw error
        }
        return try awaitReply(waiter, direct: direct, deadline: deadline)
    }

    /// A waiter for a new `command` request (lock held): a free id (not the solo
    /// request's, nor a waiting one's), in the list of waiters, with its deadline.
    private func registerWaiter(_ state: inout State, command: UInt16) -> ReplyWaiter {
        var id = state.nextID
        while id == state.soloID || state.waiters.contains(where: { $0.id == id }) { id &+= 1 }
        state.nextID = id &+ 1
        let waiter = state.spareWaiters.popLast() ?? ReplyWaiter()
        waiter.id = id
        waiter.awaiting = false
        waiter.reply = nil
        waiter.handedToken = false
        waiter.deadline = ClientDeadline(command: command, id: id, timeout: timeout(for: command))
        state.waiters.append(waiter)
        return waiter
    }

    /// Sends request `id` (waiting for room as `waitForRoom(holdingToken:deadline:)` does;
    /// see `failingClosedConnection`).
    private func sendRequest(_ id: UInt16, _ command: UInt16, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer,
                             fds: [Int32], flags: VFIOUserMessageFlags, holdingToken: Bool, deadline: ClientDeadline) throws(VFIOError) {
        let header = VFIOUserHeader(messageID: id, command: command,
                                    messageSize: UInt32(VFIOUserHeader.size + first.count + second.count), flags: flags)
        try failingClosedConnection { () throws(VFIOError) in
            try socket.send(header, first, second, fds: fds,
                            whenFull: { () throws(VFIOError) in try waitForRoom(holdingToken: holdingToken, deadline: deadline) })
        }
    }

    /// Runs `send`; a server that closed the connection (`EPIPE`: before a reader saw it)
    /// fails the connection with `ECONNRESET`; the connection's failure is thrown.
    private func failingClosedConnection(_ send: () throws(VFIOError) -> Void) throws(VFIOError) {
        do {
            try send()
        } catch {
            guard error.errnoValue == EPIPE else { throw error }
            throw fail(.errno("vfio-user connection (the server closed it)", ECONNRESET))
        }
    }

    /// `exchange` for a caller that took the reading token before sending (see there).
    private func soloExchange(_ id: UInt16, _ command: UInt16, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer,
                              fds: [Int32], flags: VFIOUserMessageFlags, direct: DirectReply?,
                              deadline: ClientDeadline) throws(VFIOError) -> ExchangeReply {
        /// Hands over what was read, gives the token up and ends the solo request.
        func end(replied: Bool) {
            monitor.withLock { state in
                handOver(&state)
                state.soloID = nil
                state.soloDeadline = nil
                if replied { state.activity &+= 1 }
                endPlainReading(&state)
                releaseToken(&state)
            }
        }
        do {
            try sendRequest(id, command, first, second, fds: fds, flags: flags, holdingToken: true, deadline: deadline)
        } catch {
            end(replied: false)
            throw error
        }
        var mine: ExchangeReply?
        do throws(VFIOError) {
            while mine == nil {
                mine = try receiveOne(for: id, direct: direct, plain: direct != nil, deadline: deadline)
                if mine == nil {
                    if deadline.passed { throw deadline.noReply }
                    if !socket.hasBufferedMessage { try handOverPending() }
                }
            }
            while socket.hasBufferedMessage { _ = try receiveOne(for: nil, direct: nil, deadline: deadline) }
        } catch {
            end(replied: false)
            throw fail(error)
        }
        end(replied: true)
        return mine!
    }

    /// A send found the socket full: waits until it takes more, reading meanwhile when the
    /// server has sent something, nobody else reads and the DMA queue has room (the
    /// server may be blocked writing to us, and then it would never read what we write).
    /// - Throws: `deadline.notTaken` when it passes first (the connection fails: part of
    ///   a message may be out); what reading throws (the connection fails).
    private func waitForRoom(holdingToken: Bool, deadline: ClientDeadline) throws(VFIOError) {
        let fd = socket.fd
        while true {
            let mayRead = queueHasRoom()
            var p = pollfd(fd: fd, events: Int16(mayRead ? POLLOUT | POLLIN : POLLOUT), revents: 0)
            let ready = poll(&p, 1, deadline.pollMilliseconds)
            if ready < 0 {
                if errno == EINTR { continue }
                throw fail(.errno("poll", errno))
            }
            if ready == 0 {
                if deadline.passed { throw fail(deadline.notTaken) }
                continue
            }
            if p.revents & Int16(POLLOUT | POLLERR | POLLHUP | POLLNVAL) != 0 { return }
            if holdingToken {
                do {
                    try readAvailable(deadline: deadline)
                    try handOverPending()
                } catch {
                    throw fail(error)
                }
                continue
            }
            let mine = try monitor.withLock { (state: inout State) throws(VFIOError) -> Bool in
                if let failure = state.failure { throw failure }
                if state.reading { return false }
                state.reading = true
                return true
            }
            guard mine else {
                // Another thread reads: only room is missing.
                try waitForRoomOnly(deadline: deadline)
                return
            }
            // Another reader may have taken the input between the poll and the token: read
            // only what is there, or this sender would wait for a message while the server
            // waits for the rest of ours.
            if !socket.hasInput() {
                monitor.withLock { releaseToken(&$0) }
                continue
            }
            do {
                try readAvailable(deadline: deadline)
            } catch {
                monitor.withLock { state in
                    handOver(&state)
                    state.reading = false
                }
                throw fail(error)
            }
            monitor.withLock { state in
                handOver(&state)
                releaseToken(&state)
            }
        }
    }

    /// Reads (reading token held) one message and those already read ahead, while the DMA
    /// queue has room: a sender waiting for room must not wait for the DMA thread, which
    /// may itself wait to send.
    private func readAvailable(deadline: ClientDeadline) throws(VFIOError) {
        repeat {
            _ = try receiveOne(for: nil, direct: nil, deadline: deadline, waitsForQueueRoom: false)
        } while socket.hasBufferedMessage && queueHasRoom()
    }

    /// Waits until the socket takes more bytes (no reading).
    /// - Throws: `deadline.notTaken` when it passes first (the connection fails).
    func waitForRoomOnly(deadline: ClientDeadline) throws(VFIOError) {
        var p = pollfd(fd: socket.fd, events: Int16(POLLOUT), revents: 0)
        while true {
            let ready = poll(&p, 1, deadline.pollMilliseconds)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw fail(.errno("poll", errno)) }
            if ready == 0 && deadline.passed { throw fail(deadline.notTaken) }
        }
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
        try failingClosedConnection { () throws(VFIOError) in
            try socket.send(header, first, second, fds: fds,
                            whenFull: { () throws(VFIOError) in try waitForRoom(holdingToken: false, deadline: deadline) })
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

    /// Removes a waiter whose request is over (lock held) and keeps it for reuse.
    private func retire(_ waiter: ReplyWaiter, _ state: inout State) {
        if let i = state.waiters.firstIndex(where: { $0 === waiter }) { state.waiters.swapAt(i, state.waiters.count - 1) ; state.waiters.removeLast() }
        waiter.reply = nil
        waiter.awaiting = false
        waiter.handedToken = false
        waiter.deadline = nil
        if state.spareWaiters.count < 64 { state.spareWaiters.append(waiter) }
    }

    /// Gives the reading token (held by the caller of this function, lock held) to a caller
    /// waiting for its reply; returns false when there is none (the token is still held).
    private func handOffToken(_ state: inout State) -> Bool {
        for waiter in state.waiters where waiter.awaiting && waiter.reply == nil && !waiter.handedToken {
            waiter.handedToken = true
            waiter.condition.signal()
            return true
        }
        return false
    }

    /// Ends a solo caller's plain reads (lock held): requests held back meanwhile go out.
    private func endPlainReading(_ state: inout State) {
        state.plainReading = false
        if state.plainReadWaited {
            state.plainReadWaited = false
            plainReadEnded.broadcast()
        }
    }

    /// Gives the reading token up (lock held, token held by the caller): to a caller
    /// waiting for its reply, else to nobody, waking the receive thread when the server is
    /// in a run of commands.
    private func releaseToken(_ state: inout State) {
        if handOffToken(&state) { return }
        state.reading = false
        if state.serverBusy { receiveCondition.signal() }
    }

    /// Waits for the reply to `waiter`'s request, reading the socket itself whenever the
    /// token is free or handed to it, until `deadline` (then the connection fails).
    private func awaitReply(_ waiter: ReplyWaiter, direct: DirectReply?, deadline: ClientDeadline) throws(VFIOError) -> ExchangeReply {
        let outcome = monitor.wait(on: waiter.condition, wakingAt: deadline.at) { (state: inout State) -> Result<VFIOUserMessage?, VFIOError>? in
            waiter.awaiting = true
            if let reply = waiter.reply {
                state.activity &+= 1
                retire(waiter, &state)
                return .success(reply)
            }
            if waiter.handedToken {
                waiter.handedToken = false
                return .success(nil)
            }
            if state.failure == nil && deadline.passed { recordFailure(&state, deadline.noReply) }
            if let failure = state.failure {
                retire(waiter, &state)
                return .failure(failure)
            }
            if !state.reading {
                state.reading = true
                return .success(nil)
            }
            return nil
        }
        switch outcome {
        case .failure(let error): throw error
        case .success(let reply?): return ExchangeReply(reply)
        case .success(nil): break
        }
        // This thread holds the reading token until its reply has come.
        while true {
            let mine: ExchangeReply?
            do throws(VFIOError) {
                if deadline.passed { throw deadline.noReply }
                mine = try receiveOne(for: waiter.id, direct: direct, deadline: deadline)
                if mine != nil {
                    // Messages read ahead with the reply are handed on before the token
                    // goes: the next reader may be a while.
                    while socket.hasBufferedMessage { _ = try receiveOne(for: nil, direct: nil, deadline: deadline) }
                } else {
                    // About to block reading: the callers whose replies came go on meanwhile.
                    if !socket.hasBufferedMessage { try handOverPending() }
                }
            } catch {
                monitor.withLock { state in
                    retire(waiter, &state)
                    handOver(&state)
                    state.reading = false
                }
                throw fail(error)
            }
            if let mine {
                monitor.withLock { state in
                    // Retired first: a second reply to this request is refused by handOver.
                    retire(waiter, &state)
                    handOver(&state)
                    state.activity &+= 1
                    releaseToken(&state)
                }
                return mine
            }
        }
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
            try sendBatch(batch, ids: waiters.map(\.id), deadline: waiters[0].deadline!)
        } catch {
            monitor.withLock { state in for waiter in waiters { retire(waiter, &state) } }
            throw error
        }
        var replies: [ExchangeReply] = []
        replies.reserveCapacity(batch.count)
        for (i, waiter) in waiters.enumerated() {
            let deadline = waiter.deadline!
            do {
                replies.append(try awaitReply(waiter, direct: batch[i].direct, deadline: deadline))
            } catch {
                // The connection failed: the rest are retired as they see it.
                for rest in waiters[(i + 1)...] { _ = try? awaitReply(rest, direct: nil, deadline: deadline) }
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
                try sendRequest(ids[i], request.command, request.first, request.second, fds: [], flags: [], holdingToken: false,
                                deadline: deadline)
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
        try failingClosedConnection { () throws(VFIOError) in
            try socket.sendStream(UnsafeRawBufferPointer(buffer),
                                  whenFull: { () throws(VFIOError) in try waitForRoom(holdingToken: false, deadline: deadline) })
        }
    }

    // MARK: Reading

    /// Reads while the connection is quiet: messages the server sends while no request is
    /// in flight (DMA_READ / DMA_WRITE after a reply), and everything while a caller's send
    /// would block.
    private func receiveLoop() {
        let delay = idleDelay
        // The activity count last seen, and when it was seen to change.
        var seen: UInt64 = 0
        var changed = monotonicNanoseconds()
        while true {
            // Waking at least once per reply timeout, it sees a request made while it slept
            // before that request's deadline.
            let go = monitor.wait(on: receiveCondition,
                                  deadline: { state in min(changed &+ delay, earliestDeadline(state), monotonicNanoseconds() &+ replyTimeout) },
                                  until: { state -> Bool? in
                if state.failure != nil { return false }
                // The watchdog of callers blocked reading (see "A hostile server").
                if let expired = expiredRequest(state) {
                    recordFailure(&state, expired.noReply)
                    return false
                }
                if state.serverBusy && !state.reading {
                    // The server is sending commands (DMA): more are likely to follow now.
                    state.serverBusy = false
                    state.reading = true
                    return true
                }
                let now = monotonicNanoseconds()
                if state.activity != seen || state.reading {
                    if state.activity != seen { seen = state.activity; changed = now }
                    if now &- changed >= delay { changed = now }   // a long request: look again later
                    return nil
                }
                guard now &- changed >= delay else { return nil }
                state.reading = true
                return true
            })
            guard go == true else {
                if go == false { return }
                continue
            }
            // Read until callers are active again (then the token goes to one of them, or
            // is left for the next).
            while true {
                do {
                    _ = try receiveOne(for: nil, direct: nil, deadline: nil)
                } catch {
                    monitor.withLock { state in
                        handOver(&state)
                        state.reading = false
                    }
                    fail(error)
                    return
                }
                if socket.hasBufferedMessage { continue }
                let keep = monitor.withLock { state -> Bool in
                    handOver(&state)
                    if state.failure != nil {
                        state.reading = false
                        return false
                    }
                    if state.waiters.isEmpty && state.activity == seen { return true }
                    // Callers are active: one waiting for its reply reads for itself now.
                    releaseToken(&state)
                    return false
                }
                if !keep { break }
            }
        }
    }

    /// The earliest deadline of a request waiting for its reply (lock held), or never.
    private func earliestDeadline(_ state: State) -> UInt64 {
        var earliest = state.soloDeadline?.at ?? UInt64.max
        for waiter in state.waiters where waiter.reply == nil {
            if let at = waiter.deadline?.at, at < earliest { earliest = at }
        }
        return earliest
    }

    /// A request still waiting for its reply whose deadline has passed (lock held).
    private func expiredRequest(_ state: State) -> ClientDeadline? {
        guard earliestDeadline(state) <= monotonicNanoseconds() else { return nil }
        if let solo = state.soloDeadline, solo.passed { return solo }
        return state.waiters.lazy.filter { $0.reply == nil }.compactMap(\.deadline).first { $0.passed }
    }

    /// Reads one message (reading token held) and hands it on; returns it instead when it
    /// is the reply to `id`. With `plain`, reads ahead with `recv` (see "Plain reads").
    /// A server command fills the DMA queue: at its limit, this waits for room (until
    /// `deadline`, which then is thrown) when `waitsForQueueRoom`.
    /// - Throws: when the connection failed or ended, or a message stopped halfway.
    private func receiveOne(for id: UInt16?, direct: DirectReply?, plain: Bool = false, deadline: ClientDeadline?,
                            waitsForQueueRoom: Bool = true) throws(VFIOError) -> ExchangeReply? {
        guard let header = try socket.receiveHeader(maxFDs: maxFDs, plain: plain) else {
            throw .errno("vfio-user connection (the server closed it)", ECONNRESET)
        }
        if let direct, let id, header.isReply, header.messageID == id, !header.isError,
           header.messageSize >= UInt32(VFIOUserHeader.size),
           direct.acceptsShorter
               ? header.payloadSize >= direct.prefix.count && header.payloadSize - direct.prefix.count <= direct.data.count
               : header.payloadSize == direct.prefix.count + direct.data.count {
            let dataCount = header.payloadSize - direct.prefix.count
            try socket.receivePayload(into: direct.prefix, maxFDs: maxFDs)
            try socket.receivePayload(into: UnsafeMutableRawBufferPointer(rebasing: direct.data[0..<dataCount]), maxFDs: maxFDs)
            if socket.finishMessageWithoutDescriptors() { return ExchangeReply(direct: header, dataCount: dataCount) }
            switch socket.finishMessage(maxFDs: maxFDs, command: header.command) {
            case .success(let fds):
                if fds.isEmpty { return ExchangeReply(direct: header, dataCount: dataCount) }
                for f in fds { closeDescriptor(f) }
                return ExchangeReply(errorReply(header, VFIOError.errno("\(VFIOUserCommand.name(header.command)) reply carries descriptors", EINVAL)))
            case .failure(let error):
                return ExchangeReply(errorReply(header, error))
            }
        }
        switch try socket.receiveBody(header, maxPayload: maxPayload, maxFDs: maxFDs) {
        case .endOfStream:
            throw .errno("vfio-user connection (the server closed it)", ECONNRESET)
        case .rejected(let header, let error):
            if header.isReply {
                let reply = errorReply(header, error)
                if header.messageID == id { return ExchangeReply(reply) }
                deliver(reply)
            } else {
                try queueServerCommand(.refuse(header, error.errnoValue ?? EINVAL), deadline: deadline, waitsForRoom: waitsForQueueRoom)
            }
        case .message(let message):
            if message.header.isReply {
                if message.header.messageID == id { return ExchangeReply(message) }
                deliver(message)
            } else {
                try queueServerCommand(.serve(message), deadline: deadline, waitsForRoom: waitsForQueueRoom)
            }
        }
        return nil
    }

    /// An ERROR reply standing for a reply that could not be used.
    private func errorReply(_ header: VFIOUserHeader, _ error: VFIOError) -> VFIOUserMessage {
        VFIOUserMessage(header: VFIOUserHeader(messageID: header.messageID, command: header.command, messageSize: 16,
                                               flags: [.reply, .error], error: UInt32(bitPattern: error.errnoValue ?? EINVAL)),
                        payload: [])
    }

    /// Keeps a reply for the caller waiting for it; the reader hands them over in a batch
    /// (`handOver`) before it blocks or gives the token up.
    private func deliver(_ reply: VFIOUserMessage) {
        undelivered.pointee.append(reply)
    }

    /// Hands the replies read so far to their callers (lock held). A reply that no request
    /// awaits (an id never sent, sent with NO_REPLY, or answered already) is a protocol
    /// error: the connection fails (`EPROTO`).
    private func handOver(_ state: inout State) {
        guard !undelivered.pointee.isEmpty else { return }
        for reply in undelivered.pointee {
            let id = reply.header.messageID
            guard let waiter = state.waiters.first(where: { $0.id == id && $0.reply == nil }) else {
                recordFailure(&state, .errno("vfio-user connection (\(VFIOUserCommand.name(reply.header.command)) reply to message id \(id), "
                                             + "which no request awaits: never sent, sent with NO_REPLY, or answered already)", EPROTO))
                continue
            }
            waiter.reply = reply
            waiter.condition.signal()
        }
        undelivered.pointee.removeAll(keepingCapacity: true)
    }

    /// `handOver` with the lock taken, when there is something to hand over.
    /// - Throws: the connection's failure (a reply no request awaits fails it).
    private func handOverPending() throws(VFIOError) {
        guard !undelivered.pointee.isEmpty else { return }
        if let failure = monitor.withLock({ state -> VFIOError? in
            handOver(&state)
            return state.failure
        }) { throw failure }
    }

    // MARK: Server commands

    /// Queues a server command for the DMA thread (reading token held). When that fills the
    /// queue and `waitsForRoom`, waits until the DMA thread has made room.
    /// - Throws: `deadline.noReply` when it passes first (a reader without deadline waits
    ///   until room or failure); the connection's failure.
    private func queueServerCommand(_ command: ServerCommand, deadline: ClientDeadline?, waitsForRoom: Bool) throws(VFIOError) {
        let limit = maxQueuedBytes
        let full = dmaQueue.update { queue -> Bool in
            queue.append(command)
            return queue.bytes >= limit
        }
        guard full && waitsForRoom else { return }
        let outcome = dmaQueue.wait(on: queueRoom, wakingAt: deadline?.at ?? UInt64.max) { queue -> Bool? in
            if queue.closed { return false }
            if queue.bytes < limit { return true }
            if let deadline, deadline.passed { return false }
            queue.readerWaits = true
            return nil
        }
        if outcome { return }
        if let failure = monitor.withLock({ $0.failure }) { throw failure }
        throw fail(deadline!.noReply)
    }

    /// True when the DMA queue is below its limit (a reader may add to it).
    private func queueHasRoom() -> Bool {
        dmaQueue.withLock { $0.bytes < maxQueuedBytes }
    }
}
