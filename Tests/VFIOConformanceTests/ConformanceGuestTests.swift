import Testing
import VFIO
import VFIOConformance
import VFIOHost
import TestSupport

/// QEMU's edu through the real kernel, in the guest harness (`Tests/Guest/run.sh`): the
/// transport-independent suite on `HostDevice`, through every way in the guest's kernel
/// offers (the container always; iommufd and the device cdev with the custom kernel).
@Suite(.serialized, .enabled(if: GuestEnvironment.enabled, "runs inside the guest harness (SWIFT_VFIO_GUEST=1)"))
struct ConformanceGuestTests {
    @Test(arguments: GuestEnvironment.accesses)
    func qemuEduThroughTheKernelPassesTheSuite(access: HostDevice.Access) async throws {
        let address = GuestEnvironment.edu
        let report = try await withGuestDevice {
            await EduConformance.runner(options: ConformanceOptions(timeout: .seconds(10), leakCycles: 2))
                .run(deviceName: "\(address) (\(access))") { try HostDevice.open(pciAddress: address, access: access) }
        }
        print(report)
        #expect(report.failed.isEmpty, "\(report)")
        #expect(report.skipped.isEmpty, "QEMU's edu behind a root port offers every check: \(report)")
    }

    @Test(arguments: GuestEnvironment.accesses)
    func andWithOneDeviceSharedByTheChecks(access: HostDevice.Access) async throws {
        let address = GuestEnvironment.edu
        let options = ConformanceOptions(timeout: .seconds(10), leakCycles: 2, reopenPerCheck: false)
        let report = try await withGuestDevice {
            await EduConformance.runner(options: options)
                .run(deviceName: "\(address) (\(access))") { try HostDevice.open(pciAddress: address, access: access) }
        }
        #expect(report.failed.isEmpty, "\(report)")
    }
}
