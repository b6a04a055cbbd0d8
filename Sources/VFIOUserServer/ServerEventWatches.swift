import Glibc
import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserWire

// Eventfds the server reads on the client's behalf, delivered to the model on the work
// thread with the device lock held (as `afterReply` work runs, so a model may DMA from
// them):
//
// | eventfd | made by | on a signal |
// |---|---|---|
// | ioeventfd of an `IOEventArea` (GET_REGION_IO_FDS) | the server, one per area and client | `ioEventSignalled(region:area:count:)` |
// | SET_IRQS MASK / UNMASK with DATA_EVENTFD | the client | `irqMaskChanged(index:vector:masked:)` (the kernel's virqfd) |
//
// The work thread polls them beside `workWake` (no timer, no busy poll) and between work
// items. A watch is added and removed with the device lock held, and a signal is read
// and delivered with it held after the watch is looked up again, so a watch removed
// (its eventfd closed, its number perhaps reused) is never read.
extension VFIOUserServer {
    // MARK: The watch set

    /// Watches `event` for the current client; returns the watch's token. Device lock held.
    func addWatch(_ event: EventFD, _ target: EventWatch.Target) -> UInt64 {
        let token = watches.withLock { watches -> UInt64 in
            let token = watches.next
            watches.next += 1
            watches.table[token] = EventWatch(event: event, target: target)
            return token
        }
        threads.withLock { threads in
            if threads.workThread == nil && threads.workAllowed { startWorkThread(&threads) }
        }
        try? workWake.signal()   // the work thread polls the new set
        return token
    }

    /// Stops watching `token` and closes its eventfd. Device lock held.
    func removeWatch(_ token: UInt64) {
        watches.withLock { $0.table.removeValue(forKey: token) }?.event.close()
        try? workWake.signal()
    }

    /// Stops every watch of the client (it left). Device lock held.
    func removeAllWatches() {
        let all = watches.withLock { watches -> [EventWatch] in
            defer { watches.table = [:] }
            return Array(watches.table.values)
        }
        for watch in all { watch.event.close() }
        if !all.isEmpty { try? workWake.signal() }
    }

    /// The watched descriptors, for the work thread's poll.
    func watchedDescriptors() -> [(token: UInt64, fd: Int32)] {
        watches.withLock { $0.table.isEmpty ? [] : $0.table.map { ($0.key, $0.value.event.fd) } }
    }

    /// Work thread: polls `watched` (and `workWake` when `wake`) for up to `timeout`
    /// milliseconds (-1: until one is ready), consumes `workWake`, and delivers the
    /// signalled watches to the model.
    func pollWatches(_ watched: [(token: UInt64, fd: Int32)], wake: Bool, timeout: Int32) {
        var fds = wake ? [pollfd(fd: workWake.fd, events: Int16(POLLIN), revents: 0)] : []
        let first = fds.count
        for watch in watched { fds.append(pollfd(fd: watch.fd, events: Int16(POLLIN), revents: 0)) }
        do throws(VFIOError) {
            try SystemCall.retrying("poll") { poll(&fds, nfds_t(fds.count), timeout) }
        } catch {
            logger.error("work thread: waiting for work failed", metadata: ["error": "\(error)"])
            return
        }
        if wake && fds[0].revents != 0 { _ = try? workWake.consume() }
        let ready = watched.indices.filter { fds[first + $0].revents & Int16(POLLIN) != 0 }.map { watched[$0].token }
        if !ready.isEmpty { deliverSignals(ready) }
    }

    /// Delivers the watches `tokens` that are still watched and signalled, one by one,
    /// with the device lock held as a work item holds it.
    private func deliverSignals(_ tokens: [UInt64]) {
        monitor.withLockedWait { (state: inout ServerState, wait: DeviceLockHold.Wait) in
            withUnsafeMutablePointer(to: &state) { pointer in
                withoutActuallyEscaping(wait) { wait in
                    workThreadHold = DeviceLockHold(state: pointer, wait: wait)
                    for token in tokens { deliverSignal(token) }
                    workThreadHold = nil
                }
            }
        }
    }

    private func deliverSignal(_ token: UInt64) {
        guard let watch = watches.withLock({ $0.table[token] }),
              let count = try? watch.event.consume() else { return }
        switch watch.target {
        case .ioEvent(let region, let area):
            do throws(VFIOError) {
                try model.ioEventSignalled(region: region, area: area, count: count)
            } catch {
                logger.warning("a write through an ioeventfd failed", metadata: ["region": "\(region)", "area": "\(area)", "error": "\(error)"])
            }
        case .irqMask(let key):
            model.irqMaskChanged(index: key.index, vector: key.vector, masked: key.masking)
        }
    }

    // MARK: VFIO_USER_DEVICE_GET_REGION_IO_FDS

    /// The ioeventfds of region `index`'s `IOEventArea`s: one eventfd per area (made and
    /// watched on the client's first request, the same ones after), `fd_index` i for area
    /// i, `KVM_IOEVENTFD_FLAG_DATAMATCH` with a data match, `size` the area's width. A
    /// request whose argsz is too small gets `argsz` and `count` without sub-regions or
    /// descriptors (libvfio-user does the same).
    /// - Throws: `EINVAL` for flags or count not 0 or a region the model lacks; `E2BIG`
    ///   when the region has more areas than the client takes descriptors in one message
    ///   (`max_msg_fds`); `EMFILE` when out of descriptors.
    func handleRegionIOFDs(_ payload: [UInt8], _ session: inout SessionState) throws(VFIOError) -> ([UInt8], [Int32]) {
        let name = VFIOUserCommand.deviceGetRegionIOFDs.cName
        let request = try VFIOUserRegionIOFDs(decoding: payload)
        guard request.flags == 0, request.count == 0 else { throw .errno("\(name): flags and count must be 0", EINVAL) }
        guard let region = model.region(request.index), region.size > 0 else {
            throw .errno("\(name): no region \(request.index)", EINVAL)
        }
        let areas = region.ioEventAreas
        let needed = VFIOUserRegionIOFDs.fixedSize + VFIOUserIOFD.size * areas.count
        var reply = VFIOUserRegionIOFDs(argsz: UInt32(needed), index: region.index, count: UInt32(areas.count))
        guard !areas.isEmpty, Int(request.argsz) >= needed else { return (reply.encoded, []) }
        let limit = Int(session.clientCapabilities.maxMessageFDs)
        guard areas.count <= limit else {
            throw .errno("\(name): region \(region.index) has \(areas.count) ioeventfds, the client takes \(limit) descriptors a message (max_msg_fds)", E2BIG)
        }
        let events: [EventFD]
        if let made = session.ioEvents[region.index] {
            events = made
        } else {
            var made: [EventFD] = []
            for _ in areas { made.append(try EventFD()) }
            for (area, event) in zip(areas, made) { _ = addWatch(event, .ioEvent(region: region.index, area: area)) }
            session.ioEvents[region.index] = made
            events = made
        }
        let dataMatch: UInt32 = 1   // KVM_IOEVENTFD_FLAG_DATAMATCH
        reply.subRegions = areas.enumerated().map { i, area in
            VFIOUserIOFD(offset: area.offset, size: UInt64(area.width), fdIndex: UInt32(i), type: .ioeventfd,
                         flags: area.dataMatch == nil ? 0 : dataMatch, data: area.dataMatch ?? 0)
        }
        return (reply.encoded, events.map(\.fd))
    }

    // MARK: SET_IRQS MASK / UNMASK with DATA_EVENTFD

    /// Binds (a descriptor) or unbinds (nil) the MASK (`masking`) or UNMASK eventfd of
    /// vectors `header.start...` of `header.index`, with the kernel's rules
    /// (`vfio_pci_set_intx_unmask()`, `vfio_virqfd_enable()`): a signal masks or unmasks
    /// the vector (`irqMaskChanged`); a signal already pending when bound counts.
    /// - Throws, before changing anything: `ENOTTY` for an index without
    ///   `VFIO_IRQ_INFO_MASKABLE`; `EINVAL` for count 0, an index with no TRIGGER eventfd
    ///   (not enabled), a descriptor that is not an eventfd; `EBUSY` for a vector that
    ///   already has one (unbind it first, as QEMU does).
    func setIRQMaskEventfds(_ header: IRQSetHeader, _ assignment: [OwnedDescriptor?], masking: Bool,
                            _ session: inout SessionState) throws(VFIOError) {
        let name = "VFIO_USER_DEVICE_SET_IRQS \(masking ? "MASK" : "UNMASK") eventfd"
        let index = header.index
        guard model.irq(index)?.flags.contains(.maskable) == true else {
            throw .errno("\(name): IRQ index \(index) is not maskable", ENOTTY)
        }
        guard header.count > 0 else { throw .errno("\(name): count 0 names no vector (unbind with fd -1)", EINVAL) }
        guard resources.withLock({ !($0.triggers[index]?.isEmpty ?? true) }) else {
            throw .errno("\(name): IRQ index \(index) is not enabled (no TRIGGER eventfd)", EINVAL)
        }
        for fd in assignment.compactMap({ $0 }) where !isEventFD(fd.raw) {
            throw .errno("\(name): descriptor is not an eventfd", EINVAL)
        }
        for (i, fd) in assignment.enumerated() where fd != nil {
            let key = IRQMaskKey(index: index, vector: header.start + UInt32(i), masking: masking)
            if session.irqMaskWatches[key] != nil {
                throw .errno("\(name): vector \(key.vector) of index \(index) has one already", EBUSY)
            }
        }
        for (i, fd) in assignment.enumerated() {
            let key = IRQMaskKey(index: index, vector: header.start + UInt32(i), masking: masking)
            if let fd {
                session.irqMaskWatches[key] = addWatch(EventFD(adopting: fd), .irqMask(key))
            } else if let token = session.irqMaskWatches.removeValue(forKey: key) {
                removeWatch(token)
            }
        }
    }

    /// Drops the MASK / UNMASK eventfds of `index` (its TRIGGER was torn down: the kernel
    /// drops its virqfds when it disables INTx). Device lock held.
    func dropIRQMaskEventfds(of index: UInt32, _ session: inout SessionState) {
        for (key, token) in session.irqMaskWatches where key.index == index {
            session.irqMaskWatches.removeValue(forKey: key)
            removeWatch(token)
        }
    }

    // MARK: REQ

    /// Asks the client to release the device: signals the eventfd it set for the REQ
    /// index of the model's bus (`DeviceInfoFlags.requestIRQIndex`, vector 0). QEMU's
    /// `vfio-user-pci` sets one and answers by unplugging the device from its guest.
    /// - Returns: false when no client set such an eventfd (nobody was asked).
    @discardableResult
    public func requestRelease() -> Bool {
        guard let index = model.deviceFlags.requestIRQIndex else { return false }
        return resources.withLock { resources -> Bool in
            guard let event = resources.triggers[index]?[0] else { return false }
            try? event.signal()
            return true
        }
    }
}
