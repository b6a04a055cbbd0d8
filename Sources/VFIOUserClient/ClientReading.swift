import CVFIO
import Glibc
import VFIO
import VFIOSystem
import VFIOUserWire

/// The reading token of a `ClientCore` (see there): the caller that holds it reads its
/// reply and hands the others theirs; callers without it wait; the receive thread reads
/// while the connection is quiet; a sender blocked on a full socket reads meanwhile.
///
/// A reader keeps the replies it read for other callers in a list of its own (`pending`)
/// and hands them over in one lock step before it blocks or gives the token up; the
/// callers it hands replies (or the token) to are woken after that lock step.
extension ClientCore {
    // MARK: Callers

    /// Reads (reading token held) until the reply to `waiter`'s request comes, then hands
    /// the token on. With `plain`, reads with `recv` (see "Plain reads").
    /// - Throws: the connection's failure (a reader's error fails it).
    func readReply(_ waiter: ReplyWaiter, direct: DirectReply?, plain: Bool) throws(VFIOError) -> ExchangeReply {
        let id = waiter.id
        let deadline = waiter.deadline
        var pending: [VFIOUserMessage] = []
        var wake: [ReplyWaiter] = []
        do throws(VFIOError) {
            while true {
                if let mine = try receiveOne(for: id, direct: direct, plain: plain, deadline: deadline, pending: &pending) {
                    // Messages read ahead with the reply are handed on before the token
                    // goes: the next reader may be a while.
                    while socket.hasBufferedMessage { _ = try receiveOne(for: nil, direct: nil, deadline: deadline, pending: &pending) }
                    monitor.withLock { state in
                        // Retired first: a second reply to this request is refused by handOver.
                        retire(waiter, &state)
                        if !pending.isEmpty { handOver(&state, &pending, wake: &wake) }
                        state.activity &+= 1
                        releaseToken(&state, wake: &wake)
                    }
                    if !wake.isEmpty { signal(wake) }
                    return mine
                }
                if deadline.passed { throw deadline.noReply }
                // About to block reading: the callers whose replies came go on meanwhile.
                if !pending.isEmpty && !socket.hasBufferedMessage {
                    let failure = monitor.withLock { state in
                        handOver(&state, &pending, wake: &wake)
                        return state.failure
                    }
                    signal(wake)
                    wake.removeAll(keepingCapacity: true)
                    if let failure { throw failure }
                }
            }
        } catch {
            monitor.withLock { state in
                retire(waiter, &state)
                handOver(&state, &pending, wake: &wake)
                state.reading = false
                state.plainReading = false
            }
            signal(wake)
            throw fail(error)
        }
    }

    /// Waits for the reply to `waiter`'s request (sent), reading the socket itself
    /// (`readReply`) when the token comes free or is handed to it, until its deadline
    /// (then the connection fails). A caller that finds the token free while its request
    /// is the only one waiting, and expects a `direct` reply, reads plainly.
    func awaitReply(_ waiter: ReplyWaiter, direct: DirectReply?) throws(VFIOError) -> ExchangeReply {
        enum Outcome {
            case reply(VFIOUserMessage)
            case read(plain: Bool)
            case failed(VFIOError)
        }
        let deadline = waiter.deadline
        let outcome = monitor.wait(on: waiter.condition, wakingAt: deadline.at) { (state: inout State) -> Outcome? in
            if let reply = waiter.reply {
                state.activity &+= 1
                retire(waiter, &state)
                return .reply(reply)
            }
            if waiter.handedToken {
                waiter.handedToken = false
                waiter.awaiting = false
                return .read(plain: false)
            }
            if state.failure == nil && !state.reading {
                // A caller blocked reading is watched by the receive thread (its deadline
                // is not looked at here: the clock is read only by those that wait).
                state.reading = true
                state.plainReading = direct != nil && state.waiters.count == 1
                waiter.awaiting = false
                return .read(plain: state.plainReading)
            }
            if state.failure == nil && deadline.passed { recordFailure(&state, deadline.noReply) }
            if let failure = state.failure {
                retire(waiter, &state)
                return .failed(failure)
            }
            waiter.awaiting = true
            return nil
        }
        switch outcome {
        case .reply(let reply): return ExchangeReply(reply)
        case .read(let plain): return try readReply(waiter, direct: direct, plain: plain)
        case .failed(let error): throw error
        }
    }

    /// Gives the reading token up (lock held, token held by the caller): to a caller
    /// waiting for its reply (added to `wake`), else to nobody, waking the receive thread
    /// when the server is in a run of commands. Ends plain reading: requests held back
    /// meanwhile go out.
    func releaseToken(_ state: inout State, wake: inout [ReplyWaiter]) {
        state.plainReading = false
        if state.plainReadWaited {
            state.plainReadWaited = false
            plainReadEnded.broadcast()
        }
        for waiter in state.waiters where waiter.awaiting && waiter.reply == nil && !waiter.handedToken {
            waiter.handedToken = true
            wake.append(waiter)
            return
        }
        state.reading = false
        if state.serverBusy { receiveCondition.signal() }
    }

    /// Wakes callers after the lock step that handed them a reply or the token.
    func signal(_ waiters: [ReplyWaiter]) {
        for waiter in waiters { waiter.condition.signal() }
    }

    // MARK: Reading

    /// Reads one message (reading token held) and hands it on; returns it instead when it
    /// is the reply to `id`. Replies for other callers go to `pending` (for `handOver`).
    /// With `plain`, reads ahead with `recv` (see "Plain reads"). A server command fills
    /// the DMA queue: at its limit, this waits for room (until `deadline`, which then is
    /// thrown) when `waitsForQueueRoom`.
    /// - Throws: when the connection failed or ended, or a message stopped halfway.
    @inline(__always)
    func receiveOne(for id: UInt16?, direct: DirectReply?, plain: Bool = false, deadline: ClientDeadline?,
                    waitsForQueueRoom: Bool = true, pending: inout [VFIOUserMessage]) throws(VFIOError) -> ExchangeReply? {
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
            return directReplyWithDescriptors(header, dataCount: dataCount)
        }
        return try receiveMessage(header, for: id, deadline: deadline, waitsForQueueRoom: waitsForQueueRoom, pending: &pending)
    }

    /// A direct reply that came with descriptors (none belong to it): they are closed and
    /// the reply stands for an error (`EINVAL`).
    private func directReplyWithDescriptors(_ header: VFIOUserHeader, dataCount: Int) -> ExchangeReply {
        switch socket.finishMessage(maxFDs: maxFDs, command: header.command) {
        case .success(let fds):
            if fds.isEmpty { return ExchangeReply(direct: header, dataCount: dataCount) }
            for f in fds { closeDescriptor(f) }
            return ExchangeReply(errorReply(header, VFIOError.errno("\(VFIOUserCommand.name(header.command)) reply carries descriptors", EINVAL)))
        case .failure(let error):
            return ExchangeReply(errorReply(header, error))
        }
    }

    /// `receiveOne` for a message that is not a direct reply: read whole, and returned
    /// when it is the reply to `id`, else handed on.
    private func receiveMessage(_ header: VFIOUserHeader, for id: UInt16?, deadline: ClientDeadline?, waitsForQueueRoom: Bool,
                                pending: inout [VFIOUserMessage]) throws(VFIOError) -> ExchangeReply? {
        switch try socket.receiveBody(header, maxPayload: maxPayload, maxFDs: maxFDs) {
        case .endOfStream:
            throw .errno("vfio-user connection (the server closed it)", ECONNRESET)
        case .rejected(let header, let error):
            if header.isReply {
                let reply = errorReply(header, error)
                if header.messageID == id { return ExchangeReply(reply) }
                if pending.isEmpty { pending.reserveCapacity(16) }
                pending.append(reply)
            } else {
                try queueServerCommand(.refuse(header, error.errnoValue ?? EINVAL), deadline: deadline, waitsForRoom: waitsForQueueRoom)
            }
        case .message(let message):
            if message.header.isReply {
                if message.header.messageID == id { return ExchangeReply(message) }
                if pending.isEmpty { pending.reserveCapacity(16) }
                pending.append(message)
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

    /// Hands the replies in `pending` to their callers (lock held), adding them to `wake`.
    /// A reply that no request awaits (an id never sent, sent with NO_REPLY, or answered
    /// already) is a protocol error: the connection fails (`EPROTO`).
    func handOver(_ state: inout State, _ pending: inout [VFIOUserMessage], wake: inout [ReplyWaiter]) {
        guard !pending.isEmpty else { return }
        wake.reserveCapacity(wake.count + pending.count)
        for reply in pending {
            let id = reply.header.messageID
            guard let waiter = state.waiters.first(where: { $0.id == id && $0.reply == nil }) else {
                recordFailure(&state, .errno("vfio-user connection (\(VFIOUserCommand.name(reply.header.command)) reply to message id \(id), "
                                             + "which no request awaits: never sent, sent with NO_REPLY, or answered already)", EPROTO))
                continue
            }
            waiter.reply = reply
            wake.append(waiter)
        }
        pending.removeAll(keepingCapacity: true)
    }

    // MARK: The receive thread

    /// Reads while the connection is quiet: messages the server sends while no request is
    /// in flight (DMA_READ / DMA_WRITE after a reply), and everything while a caller's send
    /// would block.
    func receiveLoop() {
        let delay = idleDelay
        // The activity count last seen, and when it was seen to change.
        var seen: UInt64 = 0
        var changed = monotonicNanoseconds()
        var pending: [VFIOUserMessage] = []
        var wake: [ReplyWaiter] = []
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
                    _ = try receiveOne(for: nil, direct: nil, deadline: nil, pending: &pending)
                } catch {
                    monitor.withLock { state in
                        handOver(&state, &pending, wake: &wake)
                        state.reading = false
                    }
                    signal(wake)
                    fail(error)
                    return
                }
                if socket.hasBufferedMessage { continue }
                let keep = monitor.withLock { state -> Bool in
                    handOver(&state, &pending, wake: &wake)
                    if state.failure != nil {
                        state.reading = false
                        return false
                    }
                    if state.waiters.isEmpty && state.activity == seen { return true }
                    // Callers are active: one waiting for its reply reads for itself now.
                    releaseToken(&state, wake: &wake)
                    return false
                }
                signal(wake)
                wake.removeAll(keepingCapacity: true)
                if !keep { break }
            }
        }
    }

    /// The earliest deadline of a request waiting for its reply (lock held), or never.
    private func earliestDeadline(_ state: State) -> UInt64 {
        var earliest = UInt64.max
        for waiter in state.waiters where waiter.reply == nil && waiter.deadline.at < earliest { earliest = waiter.deadline.at }
        return earliest
    }

    /// A request still waiting for its reply whose deadline has passed (lock held).
    private func expiredRequest(_ state: State) -> ClientDeadline? {
        let now = monotonicNanoseconds()
        return state.waiters.first { $0.reply == nil && $0.deadline.at <= now }?.deadline
    }

    // MARK: A full socket

    /// A send found the socket full: waits until it takes more, reading meanwhile when the
    /// server has sent something, this sender holds the reading token (`holdingToken`) or
    /// nobody else reads, and the DMA queue has room (the server may be blocked writing
    /// to us, and then it would never read what we write).
    /// - Throws: `deadline.notTaken` when it passes first (the connection fails: part of
    ///   a message may be out); what reading throws (the connection fails).
    func waitForRoom(holdingToken: Bool, deadline: ClientDeadline) throws(VFIOError) {
        let fd = socket.fd
        while true {
            let mayRead = queueHasRoom()
            var p = pollfd(fd: fd, events: Int16(mayRead ? POLLOUT | POLLIN : POLLOUT), revents: 0)
            let ready: Int32
            do {
                ready = try SystemCall.retrying("poll") { poll(&p, 1, deadline.pollMilliseconds) }
            } catch {
                throw fail(error)
            }
            if ready == 0 {
                if deadline.passed { throw fail(deadline.notTaken) }
                continue
            }
            if p.revents & Int16(POLLOUT | POLLERR | POLLHUP | POLLNVAL) != 0 { return }
            if holdingToken {
                try readAvailable(deadline: deadline)
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
            if socket.hasInput() {
                do throws(VFIOError) {
                    try readAvailable(deadline: deadline)
                } catch {
                    monitor.withLock { $0.reading = false }
                    throw error
                }
            }
            var wake: [ReplyWaiter] = []
            monitor.withLock { releaseToken(&$0, wake: &wake) }
            signal(wake)
        }
    }

    /// Reads (reading token held) one message and those already read ahead, while the DMA
    /// queue has room, and hands the replies over: a sender waiting for room must not
    /// wait for the DMA thread, which may itself wait to send.
    /// - Throws: what reading throws, or the connection's failure (the connection fails).
    private func readAvailable(deadline: ClientDeadline) throws(VFIOError) {
        var pending: [VFIOUserMessage] = []
        var wake: [ReplyWaiter] = []
        var failure: VFIOError?
        do throws(VFIOError) {
            repeat {
                _ = try receiveOne(for: nil, direct: nil, deadline: deadline, waitsForQueueRoom: false, pending: &pending)
            } while socket.hasBufferedMessage && queueHasRoom()
        } catch {
            failure = error
        }
        let failed = monitor.withLock { state in
            handOver(&state, &pending, wake: &wake)
            return state.failure
        }
        signal(wake)
        if let error = failure ?? failed { throw fail(error) }
    }

    /// Waits until the socket takes more bytes (no reading).
    /// - Throws: `deadline.notTaken` when it passes first (the connection fails).
    func waitForRoomOnly(deadline: ClientDeadline) throws(VFIOError) {
        var p = pollfd(fd: socket.fd, events: Int16(POLLOUT), revents: 0)
        while true {
            let ready: Int32
            do {
                ready = try SystemCall.retrying("poll") { poll(&p, 1, deadline.pollMilliseconds) }
            } catch {
                throw fail(error)
            }
            if ready > 0 { return }
            if deadline.passed { throw fail(deadline.notTaken) }
        }
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
