import NVMe
import Synchronization
import VFIO
import VFIOSystem

/// A namespace the controller reported active: its ID and the LBA format in use.
public struct NVMeNamespace: Sendable, Hashable {
    public var id: UInt32
    /// Bytes per logical block (LBADS of the format in use).
    public var blockSize: Int
    /// NSZE, in logical blocks.
    public var blockCount: UInt64
    public var identify: IdentifyNamespace
}

/// A userspace driver of one NVMe controller reached through any `VFIODevice` (a device
/// bound to vfio-pci, or a vfio-user server): brought up by `open`, shut down by `close`.
///
/// Commands are `async` and wait for their completion without blocking a thread of the
/// caller's executor: on MSI-X vectors delivered to eventfds (one per queue), which the
/// driver's one interrupt thread takes (`InterruptThread`), or, in polled mode, by
/// reading the completion queue a few times between `Task.yield()`s. I/O is spread over the I/O queues in
/// turn unless a queue is named. Errors are `NVMeDriverError`; a completion with an
/// error status is `.command` with the command's name and the status.
public final class NVMeHost: Sendable {
    /// How the controller is brought up.
    public struct Options: Sendable {
        /// I/O queue pairs requested (the controller may grant fewer).
        public var ioQueues: Int = 1
        /// Entries per I/O queue (capped by CAP.MQES + 1); one less may be outstanding.
        public var queueEntries: Int = 128
        /// Entries of the admin queues.
        public var adminEntries: Int = 32
        /// MSI-X interrupts on eventfds; false: polled mode.
        public var interrupts: Bool = true
        /// Use Doorbell Buffer Config when the controller offers it (OACS bit 8).
        public var shadowDoorbells: Bool = true
        /// Map the doorbells when BAR0 allows mmap; false: always region writes.
        public var mapDoorbells: Bool = true
        /// How long a command may take before it fails with `.timeout`.
        public var commandTimeout: Duration = .seconds(30)
        public init() {}
    }

    let device: any VFIODevice
    let allocator: DMAAllocator
    let admin: QueuePair
    let ioQueues: [QueuePair]
    let doorbells: Doorbells
    let events: [EventFD]
    /// Takes the MSI-X interrupts (nil in polled mode).
    private let interruptThread: InterruptThread?
    private let tasks: Monitor<[Task<Void, Never>]>
    private let closed = Atomic<Bool>(false)
    let nextQueue = Atomic<Int>(0)

    /// CAP as read at bring-up.
    public let capabilities: ControllerCapabilities
    /// VS.
    public let version: ControllerVersion
    /// Identify Controller.
    public let controller: IdentifyController
    /// The active namespaces with a non-zero size, by ascending ID.
    public let namespaces: [NVMeNamespace]
    /// The memory page size in use (CC.MPS): 4096.
    public let pageSize: Int
    /// The longest transfer of one Read or Write (MDTS, and what one PRP list page holds).
    public let maximumTransferBytes: Int
    /// Doorbell Buffer Config is in use for the I/O queues.
    public let usesShadowDoorbells: Bool

    /// Doorbells are stores to the mapped BAR (no system call per doorbell).
    public var usesMappedDoorbells: Bool { doorbells.isMapped }
    /// Commands complete through MSI-X interrupts (else polled).
    public var usesInterrupts: Bool { !events.isEmpty }
    /// The driver's interrupt thread as a task executor (nil in polled mode). Tasks that
    /// issue I/O and prefer it (`withTaskExecutorPreference(host.executor) { ... }`, child
    /// tasks included) are resumed on the thread that took the interrupt, without a hop to
    /// the global executor: the lowest latency per command. Their code between `await`s
    /// must not block (it holds up every interrupt of the driver); after `close()` such
    /// tasks run on the global executor.
    public var executor: (any TaskExecutor)? { interruptThread }
    /// The I/O queue pairs created.
    public var ioQueueCount: Int { ioQueues.count }
    /// Entries per I/O queue.
    public var ioQueueEntries: Int { ioQueues.first?.entries ?? 0 }
    /// Buffers mapped for DMA now (queues, PRP lists, shadow doorbells, the user's).
    public var dmaMappingCount: Int { allocator.mappedCount }

    init(device: any VFIODevice, allocator: DMAAllocator, admin: QueuePair, ioQueues: [QueuePair], doorbells: Doorbells,
                 events: [EventFD], interruptThread: InterruptThread?, tasks: [Task<Void, Never>], capabilities: ControllerCapabilities, version: ControllerVersion,
                 controller: IdentifyController, namespaces: [NVMeNamespace], shadow: Bool) {
        self.device = device
        self.allocator = allocator
        self.admin = admin
        self.ioQueues = ioQueues
        self.doorbells = doorbells
        self.events = events
        self.interruptThread = interruptThread
        self.tasks = Monitor(tasks)
        self.capabilities = capabilities
        self.version = version
        self.controller = controller
        self.namespaces = namespaces
        pageSize = allocator.pageSize
        let mdts = controller.maximumDataTransferSize == 0 ? Int.max : pageSize << Int(controller.maximumDataTransferSize)
        maximumTransferBytes = min(mdts, (pageSize / 8) * pageSize)
        usesShadowDoorbells = shadow
    }

    // MARK: Bring-up

    /// Brings the controller up: disables it (waits for CSTS.RDY = 0), programs the admin
    /// queue (AQA, ASQ, ACQ) and CC (NVM command set, 4 KiB pages, 64/16-byte entries),
    /// enables it (waits for RDY within CAP.TO), identifies the controller and its active
    /// namespaces, asks for the I/O queues (Set Features Number of Queues), configures
    /// shadow doorbells when offered and asked for, and creates the I/O queue pairs.
    /// Everything made is released when a step fails.
    public static func open(_ device: any VFIODevice, options: Options = Options()) async throws(NVMeDriverError) -> NVMeHost {
        let bringUp = BringUp(device: device, options: options)
        do {
            return try await bringUp.run()
        } catch {
            await bringUp.release()
            throw error
        }
    }

    // MARK: Close

    /// Shuts the controller down (CC.SHN normal, waits for CSTS.SHST complete, then CC.EN =
    /// 0 and RDY = 0), fails commands still outstanding with `.closed`, stops the interrupt
    /// thread and the watchdog, disables MSI-X, closes the eventfds and unmaps every DMA
    /// buffer (buffers from `allocateBuffer` included). The doorbell mapping goes with the last reference.
    /// Returns the first failure met on the way (everything is released regardless).
    @discardableResult
    public func close() async -> NVMeDriverError? {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return nil }
        var first: NVMeDriverError?
        do { try await Registers(device: device).shutDown(timeout: capabilities.readyTimeout) } catch { first = error }
        do { try await Registers(device: device).disable(timeout: capabilities.readyTimeout) } catch { if first == nil { first = error } }
        for queue in [admin] + ioQueues { queue.fail(.closed) }
        let running = tasks.withLock { t in defer { t = [] }; return t }
        for task in running { task.cancel() }
        for task in running { await task.value }
        interruptThread?.stop()
        if !events.isEmpty {
            do { try device.setIRQs(.disable(index: PCIIRQIndex.msix.rawValue)) } catch { if first == nil { first = .transport(error) } }
        }
        for event in events { event.close() }
        if let error = allocator.close(), first == nil { first = .transport(error) }
        return first
    }

    deinit {
        interruptThread?.stop()
        for event in events { event.close() }
    }

    var isClosed: Bool { closed.load(ordering: .acquiring) }

    /// The task that fails commands past their deadline, and all of them on CSTS.CFS.
    static func startWatchdog(for queues: [QueuePair], device: any VFIODevice) -> Task<Void, Never> {
        Task.detached {
            while !Task.isCancelled {
                do { try await Task.sleep(for: .milliseconds(200)) } catch { return }
                let now = coarseMonotonicNanoseconds()
                for queue in queues { queue.expire(now: now) }
                if let status = try? Registers(device: device).status, status.fatal {
                    for queue in queues { queue.fail(.controllerFatal("during I/O")) }
                    return
                }
            }
        }
    }

    // MARK: Buffers

    /// A DMA-mapped buffer of at least `bytes` bytes (whole pages), reused from released
    /// ones of that size when possible; zeroed.
    public func allocateBuffer(_ bytes: Int) throws(NVMeDriverError) -> NVMeBuffer {
        guard !isClosed else { throw .closed }
        return try allocator.allocate(bytes)
    }

    /// Gives `buffer` back for reuse; no command may still use it.
    public func releaseBuffer(_ buffer: NVMeBuffer) { allocator.release(buffer) }
}

extension ControllerCapabilities {
    /// CAP.TO: the longest wait for CSTS.RDY to change, 500 ms units (at least 500 ms).
    var readyTimeout: Duration { .milliseconds(500 * max(Int(timeout), 1)) }
}
