import CVFIO
import Glibc
import Synchronization
import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserWire

/// Memory the server provides for a memory-backed region: a memfd of the region's size
/// (rounded up to pages), mapped here and passed to the client with the region info.
/// Sealed against shrinking, growing and further seals (F_SEAL_SHRINK | F_SEAL_GROW |
/// F_SEAL_SEAL): a client that truncated it would make the server's next access to the
/// region die of SIGBUS.
final class RegionMemoryFile: @unchecked Sendable {
    let descriptor: OwnedDescriptor
    let base: UnsafeMutableRawPointer
    let mappedSize: Int
    let size: Int

    init(index: UInt32, size: Int) throws(VFIOError) {
        let page = SystemCall.pageSize
        let rounded = max((size + page - 1) / page * page, page)
        let fd = try SystemCall.sealedMemfd(name: "vfio-user-region-\(index)", size: rounded)
        guard let mapped = mmap(nil, rounded, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            let code = errno
            closeDescriptor(fd)
            throw .errno("mmap", code)
        }
        descriptor = OwnedDescriptor(fd)
        base = mapped
        mappedSize = rounded
        self.size = size
    }

    var memory: RegionMemory { RegionMemory(UnsafeMutableRawBufferPointer(start: base, count: size)) }

    deinit { munmap(base, mappedSize) }
}

/// The per-connection state, guarded by the server's monitor.
struct SessionState {
    var socket: VFIOUserSocket?
    var clientCapabilities = VFIOUserCapabilities.defaults
    /// Eventfds for (index, vector) of TRIGGER.
    var triggers: [UInt32: [UInt32: OwnedDescriptor]] = [:]
    /// DMA mappings by IOVA.
    var mappings = IOVAMappingTable<ServerDMAMapping>()
    /// The whole-file mappings of the client's memfds that DMA_MAPs share.
    var mappedFiles: [DMAFileKey: DMAFileMapping] = [:]
    /// Bytes of the client's files mapped here (each `DMAFileMapping` once).
    var mappedBytes: UInt64 = 0
    /// A DMA_MAP descriptor was already found unfit for direct access (logged once).
    var reportedMessageOnlyDescriptor = false
    /// Server-initiated messages waiting for their reply.
    var nextID: UInt16 = 1
    var waiting: Set<UInt16> = []
    var replies: [UInt16: VFIOUserMessage] = [:]
    var connectionFailed = false
}

struct ServerState {
    var session = SessionState()
    /// `afterReply` work queued from threads other than the serving thread.
    var offThreadWork: [@Sendable () -> Void] = []
    var workThread: pthread_t?
    var workThreadRunning = false
    var stopping = false
    var servingThread: pthread_t?
    var connections = 0
}

extension ServerState {
    func isServingThread() -> Bool {
        guard let thread = servingThread else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    func isWorkThread() -> Bool {
        guard let thread = workThread else { return false }
        return pthread_equal(thread, pthread_self()) != 0
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

/// Whether a client request is being handled, set and read without the server's monitor
/// (it changes twice per request). Message DMA from other threads waits for the end of
/// a request inside `monitor.wait(recheckingEvery:)` while counted with `whileWaiting`;
/// `leave` broadcasts when it sees a waiter. The flags carry no fence (a full barrier
/// twice per request would cost more than the rest of the bookkeeping), so a waiter that
/// counts itself just as a request ends may miss the broadcast: it looks again within
/// `recheckInterval`.
final class RequestGate: Sendable {
    /// How soon a waiter looks again without a broadcast (1 ms).
    static let recheckInterval: UInt64 = 1_000_000
    private let busy = Atomic(false)
    private let idleWaiters = Atomic(0)

    var isBusy: Bool { busy.load(ordering: .acquiring) }

    func enter() { busy.store(true, ordering: .releasing) }

    func leave(_ monitor: Monitor<ServerState>) {
        busy.store(false, ordering: .releasing)
        if idleWaiters.load(ordering: .acquiring) > 0 { monitor.broadcast() }
    }

    /// Counts the caller as waiting for the end of a request while `body` runs.
    func whileWaiting<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        idleWaiters.add(1, ordering: .sequentiallyConsistent)
        defer { idleWaiters.subtract(1, ordering: .sequentiallyConsistent) }
        return try body()
    }
}
