import Foundation
import VFIO
import VFIOHost

/// What the guest harness (Tests/Guest/run.sh) tells a test run inside it.
package enum GuestEnvironment {
    /// `SWIFT_VFIO_GUEST=1`: running inside the harness's guest, as root, with QEMU's edu
    /// bound to vfio-pci behind the emulated IOMMU. Guest suites are enabled only then
    /// (not in a `run.sh --no-iommu` guest: see `noIOMMU`).
    package static let enabled = ProcessInfo.processInfo.environment["SWIFT_VFIO_GUEST"] == "1" && !noIOMMU

    /// `SWIFT_VFIO_NOIOMMU=1` (`run.sh --kernel custom --no-iommu`): a guest without an
    /// IOMMU, in VFIO's no-IOMMU mode, edu in a no-IOMMU group. Only the no-IOMMU suites
    /// run there; every other guest suite is disabled (`enabled` is false).
    package static let noIOMMU = ProcessInfo.processInfo.environment["SWIFT_VFIO_GUEST"] == "1"
        && ProcessInfo.processInfo.environment["SWIFT_VFIO_NOIOMMU"] == "1"

    /// `SWIFT_VFIO_EDU_NOIOMMU_GROUP`: the edu devices' no-IOMMU groups (`--no-iommu`).
    package static let eduNoIOMMUGroups: [String] = list("SWIFT_VFIO_EDU_NOIOMMU_GROUP")

    /// `SWIFT_VFIO_EDU`: the edu devices' PCI addresses.
    package static let eduAddresses: [String] =
        (ProcessInfo.processInfo.environment["SWIFT_VFIO_EDU"] ?? "").split(separator: " ").map(String.init)

    /// The first edu device.
    package static var edu: String { eduAddresses.first ?? "0000:01:00.0" }

    /// `SWIFT_VFIO_MTTY`: the UUIDs of the mtty mdevs (`run.sh --kernel custom --mtty N`),
    /// with `SWIFT_VFIO_MTTY_CDEV` and `SWIFT_VFIO_MTTY_GROUP` in the same order.
    package static let mttys: [String] = list("SWIFT_VFIO_MTTY")
    package static let mttyCdevs: [String] = list("SWIFT_VFIO_MTTY_CDEV")
    package static let mttyGroups: [String] = list("SWIFT_VFIO_MTTY_GROUP")

    private static func list(_ name: String) -> [String] {
        (ProcessInfo.processInfo.environment[name] ?? "").split(separator: " ").map(String.init)
    }

    /// The kernel offers iommufd and edu has a device cdev (the harness's custom kernel).
    package static var hasCdev: Bool {
        FileManager.default.fileExists(atPath: "/dev/iommu")
            && ((try? Sysfs().pciDevice(edu))?.cdevPath).map { FileManager.default.fileExists(atPath: $0) } == true
    }

    /// The ways into the kernel this guest offers: the container always, iommufd with
    /// the custom kernel.
    package static var accesses: [HostDevice.Access] {
        guard enabled else { return [] }
        return hasCdev ? [.container, .iommufd] : [.container]
    }
}

/// One test at a time may hold a guest device: a VFIO group opens only once, and tests
/// that reset it or wire its interrupts must not overlap. Every guest suite that opens
/// edu goes through `withGuestDevice`.
package actor GuestDeviceLock {
    package static let shared = GuestDeviceLock()
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    package func acquire() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    package func release() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}

/// Runs `body` holding the guest device lock.
package func withGuestDevice<T>(_ body: () async throws -> T) async throws -> T {
    await GuestDeviceLock.shared.acquire()
    do {
        let result = try await body()
        await GuestDeviceLock.shared.release()
        return result
    } catch {
        await GuestDeviceLock.shared.release()
        throw error
    }
}
