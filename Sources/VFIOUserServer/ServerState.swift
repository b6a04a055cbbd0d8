import Glibc
import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserWire

/// What the serving thread and a message DMA share: guarded by the server's `monitor`,
/// the device lock (held while a client command is handled, while an `afterReply` item
/// runs, and while a server-initiated message goes out).
struct ServerState {
    var session = SessionState()
    /// Client connections served so far; the number of the current one.
    var connections = 0
    /// Room for region data a model reads or writes through callbacks.
    var scratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    /// The id of the DMA message whose reply the work thread waits for (nil: none).
    var workAwaitsReply: UInt16?
}

/// The current connection's part of `ServerState`.
struct SessionState {
    /// The connection (nil between connections): every send on it happens with the
    /// monitor held, so that replies and server-initiated messages never interleave.
    var socket: VFIOUserSocket?
    /// The client has negotiated VERSION.
    var negotiated = false
    var clientCapabilities = VFIOUserCapabilities.defaults
    /// A DMA_MAP descriptor was already found unfit for direct access (logged once).
    var reportedMessageOnlyDescriptor = false
    /// The id the next server-initiated message takes.
    var nextID: UInt16 = 1
    /// Server-initiated messages waiting for their reply, by id: nil until it comes.
    var replies: [UInt16: VFIOUserMessage?] = [:]
    /// The ioeventfds handed out with GET_REGION_IO_FDS, by region: one per
    /// `IOEventArea`, in the region's order (made on the first request, then the same).
    var ioEvents: [UInt32: [EventFD]] = [:]
    /// The watches of the MASK / UNMASK eventfds the client set, by vector.
    var irqMaskWatches: [IRQMaskKey: UInt64] = [:]
}

/// One vector's MASK (`masking`) or UNMASK eventfd.
struct IRQMaskKey: Hashable {
    let index: UInt32
    let vector: UInt32
    let masking: Bool
}

/// The eventfds the work thread polls besides `workWake`, by token, guarded by the
/// server's `watches` (a `Monitor`: a pthread mutex, whose hand-over between the serving
/// and the work thread ThreadSanitizer sees). Changed only with the device lock held as
/// well, so that a thread holding it sees a stable set.
struct EventWatches {
    var table: [UInt64: EventWatch] = [:]
    var next: UInt64 = 1
}

/// An eventfd the work thread watches for the current client (ServerEventWatches.swift).
struct EventWatch {
    enum Target {
        /// An ioeventfd of `area` of region `region`: the model's `ioEventSignalled`.
        case ioEvent(region: UInt32, area: IOEventArea)
        /// A MASK / UNMASK eventfd (the kernel's virqfd): the model's `irqMaskChanged`.
        case irqMask(IRQMaskKey)
    }

    let event: EventFD
    let target: Target
}

/// What threads reach without the device lock (a model's own threads, a callback that
/// raises an interrupt or copies DMA data): the client's DMA mappings and interrupt
/// eventfds. Guarded by the server's `resources`, a `Monitor` held for short sections (a
/// direct DMA copy happens inside it, so that an unmap waits for the copy to end).
struct ClientResources {
    /// DMA mappings by IOVA.
    var mappings = IOVAMappingTable<ServerDMAMapping>()
    /// The whole-file mappings of the client's memfds that DMA_MAPs share.
    var mappedFiles: [DMAFileKey: DMAFileMapping] = [:]
    /// Bytes of the client's files mapped here (each `DMAFileMapping` once).
    var mappedBytes: UInt64 = 0
    /// Eventfds for (index, vector) of TRIGGER.
    var triggers: [UInt32: [UInt32: EventFD]] = [:]
}

/// The server's threads and the `afterReply` queue, guarded by the server's `threads`
/// (a `Monitor` held for short sections, never while a model runs).
struct ServerThreads {
    enum Role { case serving, work, other }

    /// The thread that reads the client's messages (the serving, accept or `run` thread).
    var serving: pthread_t?
    /// The thread that runs `afterReply` work (once it runs).
    var work: pthread_t?
    /// The work thread, started with the first work queued while serving (a process
    /// whose model queues none stays single-threaded under `run(connection:)`: the kernel
    /// then takes no reference on a descriptor per system call).
    var workThread: WorkerThread?
    /// Serving: work queued starts the work thread.
    var workAllowed = false
    /// `afterReply` work not run yet, in order.
    var queue: [QueuedWork] = []
    /// Items of `queue` a client command queued (on the serving thread): they start
    /// before the serving thread handles the next command (`yieldToWork`).
    var commandWorkWaiting = 0
    /// The work thread waits for `workWake` (work queued now must signal it).
    var workIdle = false
    /// The work thread is to end (serving ended).
    var workEnds = false
    /// `stop()` was called.
    var stopping = false
    /// The connection being served, for `stop()` to shut down.
    var socket: VFIOUserSocket?

    struct QueuedWork {
        let run: @Sendable () -> Void
        /// Queued by the serving thread (inside a client command).
        let fromCommand: Bool
    }

    func role(of thread: pthread_t) -> Role {
        if let serving, pthread_equal(serving, thread) != 0 { return .serving }
        if let work, pthread_equal(work, thread) != 0 { return .work }
        return .other
    }
}

/// Maps a failure to the errno of an error reply.
func replyErrno(_ error: VFIOError) -> Int32 {
    switch error.reason {
    case .errno(let code): return code == 0 ? EIO : code
    case .malformed, .invalidArgument: return EINVAL
    case .unsupported: return EOPNOTSUPP
    }
}
