import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// What a `HostDevice` gives up when it is released (`HostDevice.release()`, or the
/// kernel's request through the REQ IRQ): the device descriptor and every region mapping
/// it handed out, so that nothing of this process holds the kernel's device file open.
///
/// The descriptor number is not closed on release but pointed at an `O_PATH` file of `/`
/// (`dup2`): every later `ioctl`, `pread`, `pwrite` and `mmap` on it fails with `EBADF`,
/// as on a closed descriptor, and no other file can take its number while a thread of the
/// owner may still be using it. The number is closed with the `OwnedDescriptor`.
///
/// A region mapping is replaced in place by private anonymous memory (`MAP_FIXED`): a
/// load through a stale `DeviceMapping` then reads memory that is not the device's (zeros
/// at first), a store changes nothing of the device, and neither faults.
final class DeviceRelease: @unchecked Sendable {
    private struct Mapping {
        weak var mapping: DeviceMapping?
    }

    private struct State {
        var released = false
        var mappings: [Mapping] = []
        /// Wakes the REQ watcher when the device is released (or the device goes).
        var stopWatcher: EventFD?
    }

    let descriptor: OwnedDescriptor
    /// A `Monitor` (the REQ watcher thread, the owner's threads and the handler contend).
    private let state = Monitor(State())
    /// Signalled once the device is released: the watcher's deadline wait.
    private let releasedCondition = Condition()

    /// `O_PATH` (Linux's value on x86-64 and arm64; Glibc exports it only with _GNU_SOURCE).
    static let openPath: Int32 = 0o10000000

    init(descriptor: OwnedDescriptor) {
        self.descriptor = descriptor
    }

    var isReleased: Bool { state.withLock { $0.released } }

    /// Makes a mapping with `make` and keeps a weak reference to it, so a later release
    /// can take it back; both under the lock, so no mapping escapes a release.
    /// - Throws: `EBADF` naming `mmap` once the device is released; what `make` throws.
    func register(_ make: () throws(VFIOError) -> DeviceMapping) throws(VFIOError) -> DeviceMapping {
        try state.withLock { (state: inout State) throws(VFIOError) -> DeviceMapping in
            if state.released { throw .errno("mmap", EBADF) }
            let mapping = try make()
            state.mappings.removeAll { $0.mapping == nil }
            state.mappings.append(Mapping(mapping: mapping))
            return mapping
        }
    }

    /// Releases the device (see the type's comment). The first call does it and returns
    /// true; later calls return false.
    @discardableResult
    func release() -> Bool {
        let (first, stop) = state.withLock { (state: inout State) -> (Bool, EventFD?) in
            if state.released { return (false, nil) }
            state.released = true
            for entry in state.mappings {
                // The strong reference keeps the mapping's own munmap (deinit) away meanwhile.
                guard let mapping = entry.mapping else { continue }
                _ = mmap(mapping.baseAddress, mapping.size, PROT_READ | PROT_WRITE,
                         MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            }
            state.mappings.removeAll()
            let fd = descriptor.raw
            if fd >= 0 {
                let placeholder = Glibc.open("/", DeviceRelease.openPath | O_CLOEXEC)
                if placeholder >= 0 {
                    _ = dup2(placeholder, fd)
                    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                    _ = Glibc.close(placeholder)
                } else {
                    descriptor.close()
                }
            }
            return (true, state.stopWatcher)
        }
        guard first else { return false }
        releasedCondition.broadcast()
        if let stop { try? stop.signal() }
        return true
    }

    /// Claims the one watch a device has: its stop eventfd, made now.
    /// - Throws: `.invalidArgument` when a watch is set already; `EBADF` once released.
    func reserveWatch() throws(VFIOError) -> EventFD {
        let stop = try EventFD()
        try state.withLock { (state: inout State) throws(VFIOError) in
            if state.released { throw .errno("VFIO_DEVICE_SET_IRQS", EBADF) }
            if state.stopWatcher != nil {
                throw .invalidArgument("VFIO_DEVICE_SET_IRQS", "release requests are honoured already")
            }
            state.stopWatcher = stop
        }
        return stop
    }

    /// Gives back a watch `reserveWatch()` claimed, when setting it up failed.
    func cancelWatch(_ stop: EventFD) {
        state.withLock { if $0.stopWatcher === stop { $0.stopWatcher = nil } }
        stop.close()
    }

    /// Releases the device when the kernel signals `request` (the eventfd set as the
    /// device's REQ trigger), after telling `handler`, `deadline` after the first signal
    /// unless the owner released it first. Runs on a thread of its own; the thread ends
    /// once the device is released or goes (`deviceGone()`).
    /// - Throws: `pthread_create`'s errno.
    func startWatcher(request: EventFD, stop: EventFD, deadline: Duration, device: String,
                      handler: @escaping @Sendable (HostDevice.ReleaseRequest) -> Void) throws(VFIOError) {
        try WorkerThread.detached(name: "vfio-req") { [self] in
            self.runWatcher(request: request, stop: stop, deadline: deadline, device: device, handler: handler)
        }
    }

    /// The `HostDevice` is going away: closes the descriptor now, as the device's own
    /// descriptor would close (mappings still alive keep the kernel's device open, as
    /// before), and ends the watcher thread without a release. Marked released first,
    /// under the lock, so the watcher never touches the closed descriptor's number.
    func deviceGone() {
        let stop = state.withLock { (state: inout State) -> EventFD? in
            state.released = true
            return state.stopWatcher
        }
        descriptor.close()
        releasedCondition.broadcast()
        if let stop { try? stop.signal() }
    }

    private func runWatcher(request: EventFD, stop: EventFD, deadline: Duration, device: String,
                            handler: @Sendable (HostDevice.ReleaseRequest) -> Void) {
        defer {
            request.close()
            stop.close()
        }
        var fds = [pollfd(fd: request.fd, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: stop.fd, events: Int16(POLLIN), revents: 0)]
        while true {
            let ready = Glibc.poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[1].revents != 0 || isReleased { return }
            if fds[0].revents != 0, (try? request.consume()) != nil { break }
        }
        let limit = monotonicNanoseconds() &+ nanoseconds(deadline, atMost: UInt64(Int64.max) / 2)
        handler(HostDevice.ReleaseRequest(device: device, deadline: deadline, release: self))
        let releasedInTime = state.wait(on: releasedCondition, deadline: { _ in limit }, until: { $0.released ? true : nil })
        if releasedInTime == nil { release() }
    }
}

extension HostDevice {
    /// The kernel's request for the device (`VFIO_PCI_REQ_IRQ_INDEX` signalled: the
    /// device is being unbound from its VFIO driver, or its parent removed), as told to
    /// the handler of `honourReleaseRequests(within:_:)`.
    public struct ReleaseRequest: Sendable {
        /// The device's name (its PCI address, UUID or path).
        public let device: String
        /// How long after the request the device is released by itself.
        public let deadline: Duration
        let release: DeviceRelease

        /// Releases the device now (`HostDevice.release()` without a reference to it).
        public func releaseDevice() { release.release() }
    }

    /// Honours the kernel's requests for the device: sets an eventfd of its own as the
    /// trigger of `VFIO_PCI_REQ_IRQ_INDEX` (`VFIO_DEVICE_SET_IRQS`, `DATA_EVENTFD |
    /// ACTION_TRIGGER`) and watches it on a thread of its own. When the kernel asks (it
    /// does when the device is unbound from vfio-pci while open, again every 10 seconds
    /// until it is closed; the unbind waits for it), `handler` is called once, on that
    /// thread, with the deadline; the owner stops using the device and calls `release()`
    /// (or `request.releaseDevice()`). At the deadline the device is released anyway.
    ///
    /// The handler is kept until the request comes or the device is released: capture
    /// the device weakly (or not at all: `request.releaseDevice()`), or it lives as long.
    /// - Parameter deadline: from the first request to the release (default 5 s).
    /// - Throws: `VFIO_DEVICE_GET_IRQ_INFO` errno values (`EINVAL` from a driver without
    ///   the REQ index, e.g. the `mtty` sample); `.unsupported` when it reports a count of 0
    ///   or no eventfd; `.invalidArgument` when already honoured;
    ///   `VFIO_DEVICE_SET_IRQS` errno values; `EBADF` once released.
    public func honourReleaseRequests(within deadline: Duration = .seconds(5),
                                      _ handler: @escaping @Sendable (ReleaseRequest) -> Void) throws(VFIOError) {
        let index = PCIIRQIndex.req.rawValue
        let info = try irqInfo(index)
        guard info.count > 0, info.flags.contains(.eventfd) else {
            throw .unsupported("VFIO_DEVICE_SET_IRQS", "the device has no REQ IRQ (VFIO_PCI_REQ_IRQ_INDEX count \(info.count))")
        }
        let stop = try releaseState.reserveWatch()
        var request: EventFD?
        do throws(VFIOError) {
            let eventfd = try EventFD()
            request = eventfd
            try setIRQs(.enableEventfds(index: index, start: 0, [eventfd.fd]))
            do throws(VFIOError) {
                try releaseState.startWatcher(request: eventfd, stop: stop, deadline: deadline, device: name, handler: handler)
            } catch {
                try? setIRQs(.disable(index: index))
                throw error
            }
        } catch {
            request?.close()
            releaseState.cancelWatch(stop)
            throw error
        }
    }

    /// Releases the device now: its descriptor (every later call fails with `EBADF`) and
    /// every region mapping it made (stale `DeviceMapping`s then point at anonymous
    /// memory, not the device); the kernel then closes the device, disabling its
    /// interrupts and eventfds. The DMA space (container, group, iommufd, IOAS) stays with
    /// the device object. Later calls do nothing.
    ///
    /// A migration `data_fd` or dma-buf the caller holds keeps the kernel's device in use
    /// until it is closed.
    public func release() { releaseState.release() }

    /// Whether `release()` has run (by the owner, or at a release request's deadline).
    public var isReleased: Bool { releaseState.isReleased }
}
