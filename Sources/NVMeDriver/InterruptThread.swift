import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// The thread that takes the queues' MSI-X interrupts: it sleeps in `epoll_wait` on their
/// eventfds (each registered once, level-triggered), and for each one signalled reads
/// the eventfd and reaps that queue, resuming the tasks whose commands completed.
///
/// Per interrupt that is one `epoll_wait` and one `read`, and one hop to the task that
/// waits: an interrupt awaited through `ReadinessPoller` costs an `epoll_ctl` pair and a
/// read that finds nothing more, and a hop through a reaping task.
final class InterruptThread: Sendable {
    private let epoll: OwnedDescriptor
    /// Signalled by `stop()`; token 0.
    private let stopEvent: EventFD
    /// The watched queues by epoll token (their index + 1).
    private let queues = Monitor([QueuePair]())
    private let thread: Monitor<WorkerThread?> = Monitor(nil)

    /// Starts the thread, watching nothing yet.
    /// - Throws: `EMFILE`/`ENFILE` from `epoll_create1` or `eventfd`.
    init() throws(VFIOError) {
        let fd = try SystemCall.retrying("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        epoll = OwnedDescriptor(fd)
        do {
            stopEvent = try EventFD()
            try SystemCall.retrying("epoll_ctl(EPOLL_CTL_ADD)") { cvfio_epoll_add(fd, stopEvent.fd, UInt32(EPOLLIN.rawValue), 0) }
        } catch {
            epoll.close()
            throw error
        }
        let worker = WorkerThread(name: "nvme-irq") { [self] in run() }
        thread.withLock { $0 = worker }
    }

    /// Takes `queue`'s interrupts from now on (it must have an eventfd). Completions that
    /// came before are reaped at once.
    /// - Throws: the `epoll_ctl` error (`ENOMEM`, `ENOSPC` past the user's epoll watch limit).
    func watch(_ queue: QueuePair) throws(VFIOError) {
        guard let event = queue.interrupt else { return }
        let token = queues.withLock { list -> UInt64 in
            list.append(queue)
            return UInt64(list.count)
        }
        try SystemCall.retrying("epoll_ctl(EPOLL_CTL_ADD)") { cvfio_epoll_add(epoll.raw, event.fd, UInt32(EPOLLIN.rawValue), token) }
        queue.reap()
    }

    /// Ends the thread and waits for it; closes the epoll descriptor (the queues' eventfds
    /// stay open: their owner closes them). Not to be called on the thread itself.
    func stop() {
        guard let worker = thread.withLock({ t -> WorkerThread? in defer { t = nil }; return t }) else { return }
        try? stopEvent.signal()
        worker.join()
        epoll.close()
        stopEvent.close()
    }

    private func run() {
        var tokens = [UInt64](repeating: 0, count: 16)
        var events = [UInt32](repeating: 0, count: 16)
        while true {
            let count: Int32
            do {
                count = try SystemCall.retrying("epoll_wait") { cvfio_epoll_wait(epoll.raw, &tokens, &events, 16, -1) }
            } catch {
                preconditionFailure("nvme-irq thread: \(error)")   // EINTR is retried; EBADF, EFAULT, EINVAL are bugs here
            }
            for i in 0..<Int(count) {
                if tokens[i] == 0 { return }
                let queue = queues.withLock { list in list[Int(tokens[i]) - 1] }
                // Read first: a completion posted after the reap signals again.
                _ = try? queue.interrupt?.consume()
                queue.reap()
            }
        }
    }
}
