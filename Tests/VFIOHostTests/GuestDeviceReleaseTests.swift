import Foundation
import Glibc
import Testing
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

/// Writes `text` to a sysfs attribute in one `write`: 0, or the errno of the open or write.
func writeSysfs(_ path: String, _ text: String) -> Int32 {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    return written == bytes.count ? 0 : (written < 0 ? errno : EIO)
}

/// The kernel asking for the device back (the REQ IRQ): edu is unbound from vfio-pci while
/// a test holds it open, and bound again afterwards so that the suites after this one
/// still find it on vfio-pci (driver_override stays `vfio-pci`, as the harness set it, so
/// a probe through `drivers_probe` binds it there again).
@Suite(.serialized, .enabled(if: GuestEnvironment.enabled, "runs inside the guest harness (SWIFT_VFIO_GUEST=1)"))
struct GuestDeviceReleaseTests {
    /// What one unbind saw: the requests the owner was told of, the unbind's errno, and
    /// whether the device was released already when the owner was told.
    struct Outcome: Sendable {
        var requests: [HostDevice.ReleaseRequest] = []
        var releasedWhenTold: [Bool] = []
        var unbindErrno: Int32?
    }

    var address: String { GuestEnvironment.edu }
    var devicePath: String { "/sys/bus/pci/devices/\(GuestEnvironment.edu)" }

    /// The driver edu is bound to, or nil.
    func driver() -> String? {
        guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: devicePath + "/driver") else { return nil }
        return String(link.split(separator: "/").last ?? "")
    }

    /// Opens edu through `access`, maps BAR0 and wires MSI, honours release requests with
    /// `handler`, unbinds edu from vfio-pci on a thread of its own, and waits (60 s at
    /// most) for the unbind to return; then checks what every release leaves behind, binds
    /// edu to vfio-pci again and opens it once more.
    func unbindWhileOpen(_ access: HostDevice.Access, deadline: Duration,
                         handler: @escaping @Sendable (HostDevice.ReleaseRequest, HostDevice, Monitor<Outcome>) -> Void) throws -> Outcome {
        let cdevBefore = try Sysfs().pciDevice(address).cdevPath
        let outcome = Monitor(Outcome())
        let unbindDone = Condition()
        do {
            let edu = try HostDevice.open(pciAddress: address, access: access)
            let mapping = try edu.mapping(region: Edu.bar, offset: 0, size: 4096)
            #expect(mapping.load(UInt32.self, at: 0) == Edu.id)
            let msi = try EventFD()
            try edu.enableInterrupts(.msi, eventfds: [msi.fd])
            try edu.honourReleaseRequests(within: deadline) { [weak edu] request in
                guard let edu else { return }
                outcome.withLock {
                    $0.requests.append(request)
                    $0.releasedWhenTold.append(edu.isReleased)
                }
                handler(request, edu, outcome)
            }
            #expect(throws: VFIOError.self) { try edu.honourReleaseRequests { _ in } }
            #expect(driver() == "vfio-pci")

            // The write blocks in the kernel until the device is closed.
            let address = self.address
            let unbinder = WorkerThread(name: "unbind") {
                let result = writeSysfs("/sys/bus/pci/drivers/vfio-pci/unbind", address)
                outcome.withLock { $0.unbindErrno = result }
                unbindDone.signal()
            }
            let limit = monotonicNanoseconds() + 60_000_000_000
            let finished = outcome.wait(on: unbindDone, deadline: { _ in limit }, until: { $0.unbindErrno })
            unbinder.join()
            #expect(finished == 0, "the unbind returned within 60 s, with success")

            #expect(edu.isReleased)
            #expect(driver() == nil, "edu is bound to no driver after the unbind")
            if let cdevBefore { #expect(!FileManager.default.fileExists(atPath: cdevBefore), "\(cdevBefore) went with the unbind") }
            // The mapping now points at anonymous memory, not BAR0; the descriptor is dead.
            #expect(mapping.load(UInt32.self, at: 0) == 0)
            #expect(throws: VFIOError.errno("pread", EBADF)) { try edu.eduRead(Edu.identification) }
            #expect(throws: VFIOError.errno("VFIO_DEVICE_GET_INFO", EBADF)) { try edu.deviceInfo() }
            #expect(throws: VFIOError.errno("mmap", EBADF)) { try edu.mapping(region: Edu.bar, offset: 0, size: 4096) }
            edu.release()  // a second release does nothing
        }
        // Bound again, found where the harness put it, and usable.
        let bound = writeSysfs("/sys/bus/pci/drivers_probe", address)
        #expect(bound == 0)
        #expect(driver() == "vfio-pci")
        let cdevAfter = try Sysfs().pciDevice(address).cdevPath
        #expect(cdevAfter == cdevBefore, "the cdev the harness named (SWIFT_VFIO_EDU_CDEV) is back")
        let again = try HostDevice.open(pciAddress: address, access: access)
        #expect(try again.eduRead(Edu.identification) == Edu.id)
        return outcome.withLock { $0 }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func ownerToldReleasesAndTheUnbindCompletes(access: HostDevice.Access) async throws {
        try await withGuestDevice {
            let outcome = try unbindWhileOpen(access, deadline: .seconds(30)) { request, edu, _ in
                edu.release()
            }
            #expect(outcome.requests.count == 1)
            #expect(outcome.requests.first?.device == address)
            #expect(outcome.requests.first?.deadline == .seconds(30))
            #expect(outcome.releasedWhenTold == [false])
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func ownerThatDoesNotReleaseIsReleasedAtTheDeadline(access: HostDevice.Access) async throws {
        try await withGuestDevice {
            let start = ContinuousClock.now
            let outcome = try unbindWhileOpen(access, deadline: .milliseconds(500)) { _, _, _ in }
            #expect(outcome.requests.count == 1)
            #expect(outcome.releasedWhenTold == [false])
            #expect(ContinuousClock.now - start >= .milliseconds(500), "released no earlier than the deadline")
        }
    }

    @Test(.enabled(if: GuestEnvironment.enabled))
    func releaseWithoutARequestFreesTheDevice() async throws {
        try await withGuestDevice {
            do {
                let edu = try HostDevice.open(pciAddress: address, access: .container)
                let mapping = try edu.mapping(region: Edu.bar, offset: 0, size: 4096)
                #expect(mapping.load(UInt32.self, at: 0) == Edu.id)
                edu.release()
                #expect(edu.isReleased)
                #expect(mapping.load(UInt32.self, at: 0) == 0)
                #expect(throws: VFIOError.errno("VFIO_DEVICE_GET_IRQ_INFO", EBADF)) { try edu.irqInfo(0) }
                #expect(throws: VFIOError.errno("VFIO_DEVICE_GET_IRQ_INFO", EBADF)) { try edu.honourReleaseRequests { _ in } }
            }
            // Released and gone: the group opens again in a new container.
            let again = try HostDevice.open(pciAddress: address, access: .container)
            #expect(try again.eduRead(Edu.identification) == Edu.id)
        }
    }

    @Test(.enabled(if: GuestEnvironment.enabled && !GuestEnvironment.mttys.isEmpty))
    func anMdevWithoutAReqIRQIsRefused() async throws {
        try await withGuestDevice {
            // 6.12's mtty answers GET_IRQ_INFO for INTx and MSI only: EINVAL for REQ.
            let mtty = try HostDevice.open(mdev: GuestEnvironment.mttys[0])
            #expect(throws: VFIOError.errno("VFIO_DEVICE_GET_IRQ_INFO", EINVAL)) { try mtty.honourReleaseRequests { _ in } }
        }
    }
}
