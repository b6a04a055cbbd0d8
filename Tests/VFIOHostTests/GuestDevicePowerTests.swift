import Foundation
import Glibc
import Testing
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

/// The device features that change edu, driven through vfio-pci on both guest kernels
/// (Debian's 6.1 and the harness's 6.12, both with CONFIG_PM): runtime low power, whose
/// effect is the device's runtime PM status in sysfs (`power/runtime_status`; edu has no
/// PCI PM capability, so its D-state stays D0), and bus mastering, which vfio-pci lacks.
@Suite(.serialized, .enabled(if: GuestEnvironment.enabled, "runs inside the guest harness (SWIFT_VFIO_GUEST=1)"))
struct GuestDevicePowerTests {
    var runtimeStatusPath: String { "/sys/bus/pci/devices/\(GuestEnvironment.edu)/power/runtime_status" }

    func runtimeStatus() -> String? {
        readWholeFile(runtimeStatusPath)?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits (10 s at most) for the runtime PM status to become `status`. sysfs offers no
    /// notification of runtime PM changes (the suspend runs from a kernel work item after
    /// the ioctl), so this polls.
    func becomes(_ status: String) async -> Bool {
        await poll(for: .seconds(10)) { runtimeStatus() == status }
    }

    func withEdu(_ access: HostDevice.Access, _ body: (HostDevice) async throws -> Void) async throws {
        try await withGuestDevice {
            let edu = try HostDevice.open(pciAddress: GuestEnvironment.edu, access: access)
            try await body(edu)
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func lowPowerEntryLetsTheDeviceSuspendUntilExit(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            // Open, vfio-pci holds the device awake.
            #expect(runtimeStatus() == "active")
            try edu.enterLowPower()
            #expect(await becomes("suspended"))
            // Entered already: vfio-pci refuses a second entry.
            #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE", EINVAL)) { try edu.enterLowPower() }
            // An access resumes the device for its duration; it suspends again after.
            #expect(try edu.eduRead(Edu.identification) == Edu.id)
            #expect(await becomes("suspended"))
            try edu.exitLowPower()
            #expect(runtimeStatus() == "active")
            #expect(try edu.eduRead(Edu.identification) == Edu.id)
            // Exit without entry succeeds.
            try edu.exitLowPower()
            #expect(runtimeStatus() == "active")
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func lowPowerWithWakeupSignalsTheEventfdAndStaysAwake(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            let wakeup = try EventFD()
            try edu.enterLowPower(wakeup: wakeup)
            #expect(await becomes("suspended"))
            #expect(try wakeup.consume() == nil)
            // A config read wakes the device: the kernel signals the eventfd and leaves
            // low power by itself.
            _ = try edu.readConfig(UInt16.self, offset: 0)
            #expect(try await wakeup.wait(timeout: .seconds(10)) == 1)
            #expect(runtimeStatus() == "active")
            // Low power was left, so it can be entered again (no EINVAL), and left.
            try edu.enterLowPower()
            #expect(await becomes("suspended"))
            try edu.exitLowPower()
            #expect(runtimeStatus() == "active")
            // A wake-up descriptor below 0: EINVAL; one that is not open: EBADF.
            #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE", EINVAL)) {
                _ = try edu.feature(.set(.lowPowerEntryWithWakeup(LowPowerEntryWithWakeup(wakeupEventfd: -1))))
            }
            #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE", EBADF)) {
                _ = try edu.feature(.set(.lowPowerEntryWithWakeup(LowPowerEntryWithWakeup(wakeupEventfd: 9999))))
            }
            #expect(runtimeStatus() == "active")
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func busMasterIsNotAFeatureOfVFIOPCI(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            // 6.1 has no BUS_MASTER feature; 6.12 has it for vfio-cdx only. vfio-pci answers
            // ENOTTY on both, and the command register's bus-master bit (bit 2) is untouched.
            let before = try edu.readConfig(UInt16.self, offset: 4)
            #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE", ENOTTY)) { try edu.setBusMaster(before & 0x4 == 0) }
            #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE", ENOTTY)) { try edu.feature(.probe(.busMaster, set: true)) }
            #expect(try edu.readConfig(UInt16.self, offset: 4) == before)
            // Through the config space, where PCI keeps it, the bit does change.
            try edu.writeConfig(before | 0x4, offset: 4)
            #expect(try edu.readConfig(UInt16.self, offset: 4) & 0x4 == 0x4)
            try edu.writeConfig(before & ~0x4, offset: 4)
            #expect(try edu.readConfig(UInt16.self, offset: 4) & 0x4 == 0)
        }
    }
}
