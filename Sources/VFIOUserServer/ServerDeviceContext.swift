import Glibc
import Synchronization
import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserWire

/// What the server does for its model (`DeviceContext`): interrupts, DMA, region memory,
/// and `afterReply` work on the work thread.
extension VFIOUserServer {
    // MARK: Interrupts and region memory

    /// Writes 1 to the eventfd of (index, vector), if the client gave one.
    func signal(index: UInt32, vector: UInt32) {
        resources.withLock { resources in
            guard let fd = resources.triggers[index]?[vector] else { return }
            // A failure (the counter at its maximum) loses nothing: the vector is pending.
            try? fd.signal()
        }
    }

    func regionMemory(_ index: UInt32) -> RegionMemory? {
        regionFiles[index]?.memory
    }

    // MARK: DMA

    /// A part of a DMA transfer that goes through DMA_READ / DMA_WRITE messages: `length`
    /// bytes at `iova`, from byte `at` of the caller's buffer.
    private struct MessagePiece: Sendable {
        let iova: UInt64
        let at: Int
        let length: Int
    }

    /// Copies `buffer` from (`write`: to) client memory at `iova`: directly where the
    /// client's memory is mapped here (inside `resources`, so that an unmap waits for the
    /// copy), through DMA_READ / DMA_WRITE messages elsewhere.
    /// - Throws: `EFAULT` when a byte is not mapped with the access (nothing is copied);
    ///   `EDEADLK` for message DMA from the serving thread; `ECONNRESET` when the client
    ///   goes away while a message waits for its reply; the client's error reply.
    func dma(iova: UInt64, buffer: UnsafeMutableRawBufferPointer, write: Bool) throws(VFIOError) {
        let operation = write ? "DMA write" : "DMA read"
        guard buffer.count > 0 else { return }
        let needed: VFIOUserDMAMapFlags = write ? .write : .read
        let pending = try resources.withLock { (resources: inout ClientResources) throws(VFIOError) -> [MessagePiece] in
            var direct: [(pointer: UnsafeMutableRawPointer, at: Int, length: Int)] = []
            var messages: [MessagePiece] = []
            var allowed = true
            let covered = resources.mappings.forEachPiece(of: iova, length: UInt64(buffer.count)) { entry, address, length, offset in
                guard entry.value.flags.contains(needed) else {
                    allowed = false
                    return
                }
                if let base = entry.value.base {
                    direct.append((base + Int(address - entry.range.start), Int(offset), Int(length)))
                } else {
                    messages.append(MessagePiece(iova: address, at: Int(offset), length: Int(length)))
                }
            }
            guard covered && allowed else {
                throw .errno("\(operation) at 0x\(String(iova, radix: 16)) (+\(buffer.count)): not mapped", EFAULT)
            }
            for piece in direct {
                if write {
                    piece.pointer.copyMemory(from: buffer.baseAddress! + piece.at, byteCount: piece.length)
                } else {
                    (buffer.baseAddress! + piece.at).copyMemory(from: piece.pointer, byteCount: piece.length)
                }
            }
            return messages
        }
        guard !pending.isEmpty else { return }
        let command: VFIOUserCommand = write ? .dmaWrite : .dmaRead
        let pieces = pending.map { UnsafeMutableRawBufferPointer(rebasing: buffer[$0.at..<$0.at + $0.length]) }
        switch threads.withLock({ $0.role(of: pthread_self()) }) {
        case .serving:
            throw .errno("\(command.cName) from inside a request handler (the client waits for the reply): queue it with afterReply", EDEADLK)
        case .work where workThreadHold != nil:
            // Inside an `afterReply` item: the work thread holds the device lock already.
            let hold = workThreadHold!
            for (piece, target) in zip(pending, pieces) {
                try transfer(command, iova: piece.iova, target, &hold.state.pointee, wait: hold.wait, fromWorkThread: true)
            }
        default:
            try monitor.withLockedWait { (state: inout ServerState, wait: DeviceLockHold.Wait) throws(VFIOError) in
                for (piece, target) in zip(pending, pieces) {
                    try transfer(command, iova: piece.iova, target, &state, wait: wait, fromWorkThread: false)
                }
            }
        }
    }

    /// DMA through DMA_READ / DMA_WRITE messages, in chunks of the client's
    /// `max_data_xfer_size`, the device lock held (`state`; `wait` releases it while the
    /// reply is awaited).
    private func transfer(_ command: VFIOUserCommand, iova: UInt64, _ buffer: UnsafeMutableRawBufferPointer,
                          _ state: inout ServerState, wait: DeviceLockHold.Wait, fromWorkThread: Bool) throws(VFIOError) {
        let write = command == .dmaWrite
        let chunk = Int(state.session.clientCapabilities.maxDataTransferSize)
        var done = 0
        while done < buffer.count {
            let length = min(chunk, buffer.count - done)
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + length])
            // struct vfio_user_dma_region_access, then (DMA_WRITE) the data from where it lies.
            var prefix = ((iova + UInt64(done)).littleEndian, UInt64(length).littleEndian)
            let reply = try withUnsafeBytes(of: &prefix) { (head: UnsafeRawBufferPointer) throws(VFIOError) -> VFIOUserMessage in
                try exchange(command, head, write ? UnsafeRawBufferPointer(piece) : UnsafeRawBufferPointer(start: nil, count: 0),
                             &state, wait: wait, fromWorkThread: fromWorkThread)
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

    /// Sends a server-initiated command (payload `first`, then `second`) and waits for its
    /// reply, the device lock held (`state`): `wait` releases it until the serving thread
    /// has stored the reply (`deliverReply`) or ended the connection. From the work thread
    /// the wait is announced (`workAwaitsReply`), so that the serving thread reads on.
    /// - Throws: `EFAULT` when no client is connected; `ECONNRESET` when the connection
    ///   ends first; the socket's errors.
    private func exchange(_ command: VFIOUserCommand, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer,
                          _ state: inout ServerState, wait: DeviceLockHold.Wait, fromWorkThread: Bool) throws(VFIOError) -> VFIOUserMessage {
        guard let socket = state.session.socket else { throw .errno("\(command.cName): no client is connected", EFAULT) }
        let connection = state.connections
        var id = state.session.nextID
        while state.session.replies[id] != nil { id &+= 1 }
        state.session.nextID = id &+ 1
        state.session.replies[id] = .some(nil)
        defer { if state.connections == connection { state.session.replies.removeValue(forKey: id) } }
        try socket.send(VFIOUserHeader(messageID: id, command: command.rawValue,
                                       messageSize: UInt32(VFIOUserHeader.size + first.count + second.count), flags: []),
                        first, second)
        if fromWorkThread {
            state.workAwaitsReply = id
            workStarted.signal()
        }
        defer {
            if fromWorkThread {
                // Back from the wait, the lock held: the serving thread may read on.
                state.workAwaitsReply = nil
                workStarted.signal()
            }
        }
        while true {
            guard state.connections == connection, state.session.socket != nil else {
                throw .errno("\(command.cName): the client went away", ECONNRESET)
            }
            if let reply = state.session.replies[id] ?? nil { return reply }
            wait(replyArrived, nil)
        }
    }

    // MARK: Work after the reply

    /// Queues `afterReply` work for the work thread (from any thread). It runs once the
    /// device lock is free; work a client command queued starts before the next command
    /// is handled (`yieldToWork`).
    func enqueueDeferred(_ work: @escaping @Sendable () -> Void) {
        let idle = threads.withLock { threads -> Bool in
            let fromCommand = threads.role(of: pthread_self()) == .serving
            threads.queue.append(ServerThreads.QueuedWork(run: work, fromCommand: fromCommand))
            if fromCommand {
                threads.commandWorkWaiting += 1
                workMayRun = true   // on the serving thread
            }
            if threads.workThread == nil && threads.workAllowed { startWorkThread(&threads) }
            defer { threads.workIdle = false }
            return threads.workIdle
        }
        if idle { try? workWake.signal() }
    }

    /// Starts the work thread (`threads` locked: it registers once it runs).
    func startWorkThread(_ threads: inout ServerThreads) {
        threads.workThread = WorkerThread(name: "vfio-user-server-work") { [self] in workLoop() }
    }

    /// Called by the serving thread before it handles a command, the device lock held,
    /// when earlier messages gave the work thread something to do (`workMayRun`): work a
    /// command queued that has not started, or the rest of an item whose DMA reply came.
    /// Lets the work thread do it first (waiting on `workStarted`, which releases the
    /// lock), until it ends or waits for another reply: as if the work had run on the
    /// serving thread right after those messages. Without a work thread (the fuzz
    /// target) it returns at once.
    func yieldToWork(_ state: inout ServerState, _ wait: DeviceLockHold.Wait) {
        defer { workMayRun = false }
        while true {
            if let id = state.workAwaitsReply {
                // Waiting for a reply only this thread can read: read on, unless it came.
                guard case .some(.some) = state.session.replies[id] else { return }
            } else if !threads.withLock({ $0.commandWorkWaiting > 0 && $0.workThread != nil }) {
                return
            }
            wait(workStarted, nil)
        }
    }

    /// The work thread: runs queued work one item at a time, each with the device lock
    /// held, until serving ends; waits for work and the watched eventfds
    /// (ServerEventWatches.swift) together, and looks at those between items as well.
    func workLoop() {
        threads.withLock { $0.work = pthread_self() }
        defer { threads.withLock { $0.work = nil } }
        while true {
            let next = threads.withLock { threads -> (work: ServerThreads.QueuedWork?, end: Bool) in
                if threads.workEnds { return (nil, true) }
                if threads.queue.isEmpty {
                    threads.workIdle = true
                    return (nil, false)
                }
                return (threads.queue.removeFirst(), false)
            }
            if next.end { return }
            // (A watch added after this look wakes the thread through `workWake`.)
            let watching = !watches.withLock { $0.table.isEmpty }
            guard let work = next.work else {
                if watching {
                    pollWatches(watchedDescriptors(), wake: true, timeout: -1)
                } else {
                    waitForWork()
                }
                continue
            }
            defer { if watching { pollWatches(watchedDescriptors(), wake: false, timeout: 0) } }
            monitor.withLockedWait { (state: inout ServerState, wait: DeviceLockHold.Wait) in
                if work.fromCommand {
                    threads.withLock { $0.commandWorkWaiting -= 1 }
                    workStarted.signal()
                }
                withUnsafeMutablePointer(to: &state) { pointer in
                    withoutActuallyEscaping(wait) { wait in
                        workThreadHold = DeviceLockHold(state: pointer, wait: wait)
                        work.run()
                        workThreadHold = nil
                    }
                }
            }
        }
    }

    /// Blocks until `workWake` is signalled (work queued, or serving ends).
    private func waitForWork() {
        var ready = pollfd(fd: workWake.fd, events: Int16(POLLIN), revents: 0)
        do throws(VFIOError) {
            try SystemCall.retrying("poll") { poll(&ready, 1, -1) }
            _ = try workWake.consume()
        } catch {
            logger.error("work thread: waiting for work failed", metadata: ["error": "\(error)"])
        }
    }

    /// Runs the queued work on the calling thread, which must be the serving thread (the
    /// fuzz target, which serves without threads, runs it between messages): each item
    /// with the device lock held; message DMA from it fails with `EDEADLK`.
    func runQueuedWork() {
        while let work = threads.withLock({ threads -> ServerThreads.QueuedWork? in
            guard !threads.queue.isEmpty else { return nil }
            let work = threads.queue.removeFirst()
            if work.fromCommand { threads.commandWorkWaiting -= 1 }
            return work
        }) {
            monitor.withLock { _ in work.run() }
        }
    }
}

/// The device lock as a thread that holds it sees it: the state it guards, and a wait on
/// a condition that releases the lock until woken. The work thread keeps one while an item
/// runs, so that a message DMA from inside the item waits for its reply without taking
/// the lock again.
struct DeviceLockHold {
    typealias Wait = (Condition, UInt64?) -> Void
    let state: UnsafeMutablePointer<ServerState>
    let wait: Wait
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

    func requestRelease() -> Bool {
        server?.requestRelease() ?? false
    }
}
