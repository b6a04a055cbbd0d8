import NVMe
import VFIODeviceKit

/// An I/O or admin submission queue as the controller tracks it (contiguous: CAP.CQR = 1).
struct SubmissionQueueState: Sendable, Hashable {
    var base: UInt64
    /// Entries (QSIZE + 1).
    var size: UInt32
    var head: UInt32 = 0
    var tail: UInt32 = 0
    var completionQueue: UInt16
    var isEmpty: Bool { head == tail }
}

/// A completion queue: the controller owns the tail and the phase tag, the host the head.
struct CompletionQueueState: Sendable, Hashable {
    var base: UInt64
    var size: UInt32
    var head: UInt32 = 0
    var tail: UInt32 = 0
    /// The phase tag the next entry is posted with (1 after creation, flipped at each wrap).
    var phase = true
    var vector: UInt16
    var interruptsEnabled: Bool
    var isFull: Bool { (tail + 1) % size == head }
    var hasEntries: Bool { head != tail }
    /// Whether `head` is a head the host may write: inside the queue and not past the
    /// entries posted (from the current head up to the tail, circularly).
    func acceptsHead(_ head: UInt32) -> Bool {
        head < size && (head &+ size &- self.head) % size <= (tail &+ size &- self.head) % size
    }
}

/// The values Set Features stores (Get Features returns them).
struct FeatureValues: Sendable, Hashable {
    var arbitration: UInt32 = 0
    var interruptCoalescing: UInt32 = 0
    var volatileWriteCache = true
    var asynchronousEventConfiguration: UInt32 = 0
    /// Number of Queues as granted (0-based SQ and CQ counts), once set; `nil` before.
    var queuesGranted: UInt32?

    /// The highest I/O submission queue identifier Create I/O Submission Queue accepts:
    /// NSQA + 1 once Number of Queues was set, else every queue the controller has.
    func submissionQueuesAllowed(_ supported: Int) -> UInt16 {
        queuesGranted.map { UInt16($0 & 0xFFFF) + 1 } ?? UInt16(supported)
    }

    /// As `submissionQueuesAllowed`, for completion queues (NCQA + 1).
    func completionQueuesAllowed(_ supported: Int) -> UInt16 {
        queuesGranted.map { UInt16($0 >> 16) + 1 } ?? UInt16(supported)
    }
}

/// Where the shadow doorbell and EventIdx buffers are (Doorbell Buffer Config), page aligned.
struct DoorbellBuffers: Sendable, Hashable {
    var shadow: UInt64
    var eventIndex: UInt64
}

/// A command by its submission queue and command identifier.
struct QueuedCommand: Sendable, Hashable {
    var queue: UInt16
    var commandID: UInt16
}

/// A completion not yet posted because the device was stopped (migration).
struct PendingCompletion: Sendable, Hashable {
    var queue: UInt16
    var entry: CompletionQueueEntry
}

/// Everything the register accesses and the worker share, under the controller's monitor.
struct ControllerState: Sendable {
    var config: PCIConfigSpace
    var configuration = ControllerConfiguration(rawValue: 0)
    var status = ControllerStatus(rawValue: 0)
    var adminQueueAttributes = AdminQueueAttributes(rawValue: 0)
    var adminSubmissionQueueBase: UInt64 = 0
    var adminCompletionQueueBase: UInt64 = 0
    /// INTMS/INTMC: bit 0 masks the pin (and single-vector MSI) interrupt.
    var interruptMask: UInt32 = 0
    var submissionQueues: [UInt16: SubmissionQueueState] = [:]
    var completionQueues: [UInt16: CompletionQueueState] = [:]
    var features = FeatureValues()
    var doorbellBuffers: DoorbellBuffers?
    /// Doorbell register writes of I/O queues while the shadow buffer is in use: they
    /// only wake the worker, which reads the shadow (the value a register write carries
    /// may be older than the shadow's: QEMU posts MMIO writes, so one can arrive after
    /// the worker has read a newer shadow value).
    var doorbellKicks: UInt64 = 0
    /// Asynchronous Event Requests outstanding (command identifiers), oldest first.
    var outstandingEventRequests: [UInt16] = []
    /// Completions held while stopped, posted in order once running.
    var pendingCompletions: [PendingCompletion] = []
    /// Events not yet reported (no request outstanding, or masked).
    var pendingEvents: [AsynchronousEvent] = []
    /// Events reported whose log page the host has not read yet: their types are masked.
    var reportedEvents: [AsynchronousEvent] = []
    /// Commands an Abort found still in their submission queue (not fetched yet): they
    /// complete with Command Abort Requested when fetched, without executing.
    var abortedCommands: Set<QueuedCommand> = []
    /// The newest error log entries, newest first.
    var errorLog: [ErrorLogEntry] = []
    var errorCount: UInt64 = 0
    var statistics = Statistics()
    /// Bumped by every controller reset: work fetched under an older generation completes
    /// into nothing.
    var generation: UInt64 = 0
    /// The worker is executing a command outside the lock.
    var workerBusy = false
    /// CC.EN went to 0 while the worker was busy: RDY clears when it is idle.
    var readyClearsWhenIdle = false
    /// CC.SHN was written: the worker flushes the namespaces, then SHST = complete.
    var shutdownRequested = false
    var runState = MigrationRunState.running
    /// The model was released: the worker ends.
    var exiting = false
    /// Where the round-robin arbitration continues.
    var nextQueue: UInt16 = 0
    /// Why CSTS.CFS is set (diagnostics).
    var fatalReason: String?
    /// `ControllerCore.waitUntilQuiescent`: the requests made, and the newest one the
    /// worker has seen while it went to sleep with nothing it could do.
    var quiescenceRequests: UInt64 = 0
    var quiescentAt: UInt64 = 0

    struct Statistics: Sendable, Hashable {
        var bytesRead: UInt64 = 0
        var bytesWritten: UInt64 = 0
        var readCommands: UInt64 = 0
        var writeCommands: UInt64 = 0
    }

    var enabled: Bool { configuration.enable }
    var ready: Bool { status.ready }
}
