import Glibc
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

/// SET_IRQS MASK / UNMASK with DATA_EVENTFD: a signal on the eventfd masks or unmasks the
/// vector (the kernel's virqfd), with the kernel's errno for what it refuses.
@Suite struct UserIRQMaskEventfdTests {
    let intx = PCIIRQIndex.intx.rawValue

    private func bind(_ client: VFIOUserClient, _ action: IRQSet.Action, _ fd: Int32, index: UInt32? = nil) throws {
        try client.setIRQs(IRQSet(index: index ?? intx, action: action, data: .eventfds([fd])))
    }

    @Test func aSignalUnmasksOrMasksTheVector() throws {
        let model = try HooksModel()
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        let trigger = try EventFD(), unmask = try EventFD(), mask = try EventFD()
        try client.setIRQs(.enableEventfds(index: intx, [trigger.fd]))
        try bind(client, .unmask, unmask.fd)
        try unmask.signal()
        #expect(try model.waitFor { $0.filter { $0 == "unmask 0.0" }.count == 1 })
        try bind(client, .mask, mask.fd)
        try mask.signal()
        #expect(try model.waitFor { $0.contains("mask 0.0") })
        // A second eventfd for the same vector: EBUSY, as vfio_virqfd_enable() answers.
        let other = try EventFD()
        expectErrno(EBUSY) { try bind(client, .unmask, other.fd) }
        // fd -1 unbinds; then another binds, and one signalled before binding counts.
        try bind(client, .unmask, -1)
        try other.signal()
        try bind(client, .unmask, other.fd)
        #expect(try model.waitFor { $0.filter { $0 == "unmask 0.0" }.count == 2 })
    }

    /// What QEMU does under KVM (`vfio_intx_enable_kvm`): the INTx eventfd goes to a KVM
    /// irqfd and the UNMASK eventfd is KVM's resample eventfd, signalled at the guest's EOI.
    @Test func eduINTxIsResampledThroughTheUnmaskEventfd() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        let interrupt = try EventFD(), resample = try EventFD()
        try client.setIRQs(.enableEventfds(index: intx, [interrupt.fd]))
        try bind(client, .unmask, resample.fd)
        try client.write(UInt32(0x8), region: bar0, offset: 0x60)   // raise: asserted, signalled, automasked
        #expect(try waitSignalled(interrupt) == 1)
        // EOI with the cause still set: unmasked, the line is still asserted: signalled again.
        try resample.signal()
        #expect(try waitSignalled(interrupt) == 1)
        // Cause acknowledged, EOI, a new cause: one signal (the unmask took effect).
        try client.write(UInt32(0x8), region: bar0, offset: 0x64)
        try resample.signal()
        try client.write(UInt32(0x8), region: bar0, offset: 0x60)
        #expect(try waitSignalled(interrupt) == 1)
    }

    @Test func tearingDownTheTriggerDropsTheMaskEventfds() throws {
        let model = try HooksModel()
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        let trigger = try EventFD(), unmask = try EventFD()
        try client.setIRQs(.enableEventfds(index: intx, [trigger.fd]))
        try bind(client, .unmask, unmask.fd)
        #expect(fixture.server.watches.withLock { $0.table.count } == 1)
        try client.setIRQs(.disable(index: intx))   // DATA_NONE | TRIGGER, count 0
        #expect(fixture.server.watches.withLock { $0.table.count } == 0)
        // INTx disabled: no UNMASK eventfd (the kernel's is_intx() check).
        expectErrno(EINVAL) { try bind(client, .unmask, unmask.fd) }
        // Enabled again: binding works (no EBUSY: the old one is gone).
        try client.setIRQs(.enableEventfds(index: intx, [trigger.fd]))
        try bind(client, .unmask, unmask.fd)
        try unmask.signal()
        #expect(try model.waitFor { $0.contains("unmask 0.0") })
        // Unbinding the TRIGGER eventfd with -1 drops it as well.
        try client.setIRQs(.enableEventfds(index: intx, [-1]))
        #expect(fixture.server.watches.withLock { $0.table.count } == 0)
    }

    @Test func hostileRequestsGetTheKernelsErrno() throws {
        let fixture = try UserServerFixture(model: try HooksModel())
        let client = try fixture.connect()
        let trigger = try EventFD(), unmask = try EventFD()
        // Before INTx is enabled.
        expectErrno(EINVAL) { try bind(client, .unmask, unmask.fd) }
        try client.setIRQs(.enableEventfds(index: intx, [trigger.fd]))
        // Not an eventfd (eventfd_ctx_fileget() refuses it).
        var pipeEnds: [Int32] = [-1, -1]
        #expect(pipe(&pipeEnds) == 0)
        defer { close(pipeEnds[0]); close(pipeEnds[1]) }
        expectErrno(EINVAL) { try bind(client, .unmask, pipeEnds[0]) }
        // No such index; an index without MASK/UNMASK (MSI: vfio-pci has no handler).
        expectErrno(EINVAL) { try bind(client, .unmask, unmask.fd, index: 9) }
        expectErrno(ENOTTY) { try bind(client, .unmask, unmask.fd, index: PCIIRQIndex.msi.rawValue) }
        expectErrno(ENOTTY) { try client.setIRQs(IRQSet(index: PCIIRQIndex.msi.rawValue, action: .unmask, data: .none(count: 1))) }
        // A vector past the index's count; count 0 names nothing.
        expectErrno(EINVAL) { try client.setIRQs(IRQSet(index: intx, start: 1, action: .unmask, data: .eventfds([unmask.fd]))) }
        expectErrno(EINVAL) { try client.setIRQs(IRQSet(index: intx, action: .unmask, data: .eventfds([]))) }
        // The payload's s32 array names an eventfd, but none came with the message.
        var payload = IRQSetHeader(argsz: 24, flags: [.dataEventfd, .actionUnmask], index: intx, start: 0, count: 1).encoded()
        payload += [5, 0, 0, 0]
        let refused = try #require(try client.rawRequest(command: VFIOUserCommand.deviceSetIRQs.rawValue, payload: payload))
        #expect(refused.header.isError && refused.header.error == UInt32(EINVAL))
        // Nothing was bound by any of these: a good request still works.
        try bind(client, .unmask, unmask.fd)
    }
}
