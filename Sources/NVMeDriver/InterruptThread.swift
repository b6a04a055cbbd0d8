import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// The driver's thread: it takes the queues' MSI-X interrupts, and it is a task executor
/// (`NVMeHost.executor`) that tasks issuing I/O may prefer.
///
/// It sleeps in `epoll_wait` on the queues' eventfds (each registered once,
/// edge-triggered) and on a wake eventfd; for each queue signalled it reaps the queue,
/// resuming the tasks whose commands completed. The queues' eventfds are never read: with
/// `EPOLLET` every signal (an `eventfd_signal` in the kernel, a `write` from a vfio-user
/// server) is an event of its own, and the counter saturates rather than fail; so an
/// interrupt costs one system call here, the `epoll_wait`. A task that prefers
/// this executor (`withTaskExecutorPreference(host.executor)`) is resumed on this same
/// thread, with no hand-over to another: an interrupt costs one thread wake-up, as in the
/// kernel's driver, instead of two (this thread, then a worker of the global executor).
///
/// Jobs run in the order enqueued; between batches the interrupts are looked at without
/// sleeping at least every 16 batches, so a task that keeps yielding cannot starve them.
/// A job must not block for long: it holds up every interrupt and task of the driver.
/// Once stopped, jobs still enqueued or enqueued later go to the global concurrent
/// executor, so a task that prefers this one never hangs.
final class InterruptThread: TaskExecutor, Sendable {
    private struct Jobs {
        var pending: [UnownedJob] = []
        /// The thread is in (or about to enter) a sleeping `epoll_wait`: an enqueue wakes it.
        var sleeping = false
        var stopped = false
    }

    private let epoll: OwnedDescriptor
    /// Wakes the thread for jobs or to stop; epoll token 0.
    private let wakeEvent: EventFD
    /// The watched queues by epoll token (their index + 1).
    private let queues = Monitor([QueuePair]())
    private let jobs = Monitor(Jobs())
    private let thread: Monitor<WorkerThread?> = Monitor(nil)

    /// Starts the thread, watching nothing yet.
    /// - Throws: `EMFILE`/`ENFILE` from `epoll_create1` or `eventfd`.
    init() throws(VFIOError) {
        let fd = try SystemCall.retrying("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        epoll = OwnedDescriptor(fd)
        do {
            wakeEvent = try EventFD()
            try SystemCall.retrying("epoll_ctl(EPOLL_CTL_ADD)") { cvfio_epoll_add(fd, wakeEvent.fd, UInt32(EPOLLIN.rawValue), 0) }
        } catch {
            epoll.close()
            throw error
        }
        let worker = WorkerThread(name: "nvme-irq") { [self] in run() }
        thread.withLock { $0 = worker }
    }

    /// Takes `queue`'s interrupts from now on (it must have an eventfd, which is not read
    /// from then on). Completions that came before are reaped at once.
    /// - Throws: the `epoll_ctl` error (`ENOMEM`, `ENOSPC` past the user's epoll watch limit).
    func watch(_ queue: QueuePair) throws(VFIOError) {
        guard let event = queue.interrupt else { return }
        let token = queues.withLock { list -> UInt64 in
            list.append(queue)
            return UInt64(list.count)
        }
        let events = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLET.rawValue)
        try SystemCall.retrying("epoll_ctl(EPOLL_CTL_ADD)") { cvfio_epoll_add(epoll.raw, event.fd, events, token) }
        queue.reap()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let wake = jobs.withLock { j -> Bool? in
            if j.stopped { return nil }
            j.pending.append(unowned)
            defer { j.sleeping = false }
            return j.sleeping
        }
        switch wake {
        case nil: globalConcurrentExecutor.enqueue(ExecutorJob(unowned))
        case true?: try? wakeEvent.signal()
        case false?: break
        }
    }

    /// Ends the thread (after the job it runs) and hands jobs still queued to the global
    /// executor; closes the epoll descriptor (the queues' eventfds stay open: their owner
    /// closes them). Waits for the thread to end unless called on it.
    func stop() {
        let left = jobs.withLock { j -> [UnownedJob] in
            j.stopped = true
            defer { j.pending = [] }
            return j.pending
        }
        for job in left { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
        guard let worker = thread.withLock({ t -> WorkerThread? in defer { t = nil }; return t }) else { return }
        try? wakeEvent.signal()
        if worker.isCurrent {
            // A task on this thread closed the driver: the thread ends when that job returns.
            pthread_detach(pthread_self())
            return
        }
        worker.join()
        epoll.close()
        wakeEvent.close()
    }

    private func run() {
        var tokens = [UInt64](repeating: 0, count: 16)
        var events = [UInt32](repeating: 0, count: 16)
        var batchesUntilPoll = 16
        while true {
            let batch = jobs.withLock { j -> [UnownedJob]? in
                if j.stopped { return nil }
                let batch = j.pending
                j.pending = []
                j.sleeping = batch.isEmpty
                return batch
            }
            guard let batch else { break }
            if !batch.isEmpty {
                for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
                batchesUntilPoll -= 1
                if batchesUntilPoll > 0 { continue }
            }
            batchesUntilPoll = 16
            let count: Int32
            do {
                let timeout: Int32 = batch.isEmpty ? -1 : 0
                count = try SystemCall.retrying("epoll_wait") { cvfio_epoll_wait(epoll.raw, &tokens, &events, 16, timeout) }
            } catch {
                preconditionFailure("nvme-irq thread: \(error)")   // EINTR is retried; EBADF, EFAULT, EINVAL are bugs here
            }
            for i in 0..<Int(count) {
                if tokens[i] == 0 {
                    _ = try? wakeEvent.consume()
                    continue
                }
                // A completion posted during the reap signals again: the next epoll_wait returns.
                queues.withLock { list in list[Int(tokens[i]) - 1] }.reap()
            }
        }
    }
}
