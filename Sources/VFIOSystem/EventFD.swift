import CVFIO
import Glibc
import VFIO

/// A Linux eventfd: the kernel (or a vfio-user server) signals it for an interrupt, or
/// the user signals it to trigger an ioeventfd. Non-blocking; `wait()` suspends the task.
public final class EventFD: Sendable {
    public let descriptor: OwnedDescriptor

    /// `eventfd(initial, EFD_CLOEXEC | EFD_NONBLOCK)`.
    /// - Throws: `EMFILE`/`ENFILE` when out of descriptors.
    public init(initialValue: UInt32 = 0) throws(VFIOError) {
        let fd = try SystemCall.retrying("eventfd") { cvfio_eventfd(initialValue, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
        descriptor = OwnedDescriptor(fd)
    }

    /// Takes ownership of `descriptor`, an eventfd made elsewhere (one a peer passed).
    package init(adopting descriptor: OwnedDescriptor) {
        self.descriptor = descriptor
    }

    /// The descriptor number, to pass in `IRQSet.Data.eventfds` or `IOEventfd.fd`.
    public var fd: Int32 { descriptor.raw }

    /// Adds `value` to the counter (what an interrupt source does).
    public func signal(_ value: UInt64 = 1) throws(VFIOError) {
        var value = value
        let fd = try descriptor.requireOpen("eventfd write")
        try SystemCall.retrying("eventfd write") { Glibc.write(fd, &value, 8) }
    }

    /// Reads and resets the counter if it is non-zero; `nil` when nothing was signalled.
    public func consume() throws(VFIOError) -> UInt64? {
        var value: UInt64 = 0
        let fd = try descriptor.requireOpen("eventfd read")
        // An eventfd read moves the whole 8-byte counter or fails (EAGAIN: zero).
        guard try SystemCall.retryingUnlessWouldBlock("eventfd read", { Glibc.read(fd, &value, 8) }) != nil else { return nil }
        return value
    }

    /// Suspends until the eventfd is signalled, then returns and resets the counter.
    /// Does not block the caller's executor.
    /// - Throws: `CancellationError` when the task is cancelled.
    public func wait() async throws -> UInt64 {
        while true {
            if let value = try consume() { return value }
            try await ReadinessPoller.shared.waitReadable(try descriptor.requireOpen("eventfd wait"))
        }
    }

    /// `wait()`, giving up after `timeout`.
    /// - Throws: `VFIOError.errno("eventfd wait", ETIMEDOUT)` when nothing arrived in time.
    public func wait(timeout: Duration) async throws -> UInt64 {
        try await withThrowingTaskGroup(of: UInt64?.self) { group in
            group.addTask { try await self.wait() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            if let first = try await group.next(), let value = first { return value }
            throw VFIOError.errno("eventfd wait", ETIMEDOUT)
        }
    }

    /// Closes the descriptor.
    public func close() { descriptor.close() }
}
