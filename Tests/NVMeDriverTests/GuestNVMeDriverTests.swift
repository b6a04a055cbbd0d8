import Foundation
import NVMe
import NVMeDriver
import Testing
import TestSupport
import VFIO
import VFIOHost

/// What the NVMe guest harness (`Tests/Guest/run-nvme.sh --vfio-pci`) tells a test run:
/// `SWIFT_VFIO_NVME`, the PCI addresses of QEMU's `-device nvme` controllers bound to
/// vfio-pci; `SWIFT_VFIO_NVME_CDEV`, their device cdevs on a kernel with iommufd.
enum GuestNVMe {
    static let addresses: [String] = list("SWIFT_VFIO_NVME")
    static let cdevs: [String] = list("SWIFT_VFIO_NVME_CDEV")
    static var enabled: Bool { !addresses.isEmpty }
    /// The container always; iommufd and the cdev where the kernel offers them.
    static var accesses: [HostDevice.Access] {
        guard enabled else { return [] }
        return cdevs.isEmpty ? [.container] : [.container, .iommufd]
    }

    private static func list(_ name: String) -> [String] {
        (ProcessInfo.processInfo.environment[name] ?? "").split(separator: " ").map(String.init)
    }
}

/// The driver suite against QEMU's NVMe controller bound to vfio-pci in the guest, through
/// the container and through iommufd: the kernel path (BAR0 doorbells mapped, IOVA ranges
/// from the IOMMU). Skipped outside the guest. Writes only from LBA 64 on.
@Suite(.serialized, .enabled(if: GuestNVMe.enabled, "runs in the NVMe guest harness (SWIFT_VFIO_NVME set)"))
struct GuestNVMeDriverTests {
    func withController(_ access: HostDevice.Access, _ body: (HostDevice) async throws -> Void) async throws {
        try await withGuestDevice {
            let device = try HostDevice.open(pciAddress: GuestNVMe.addresses[0], access: access)
            try await body(device)
        }
    }

    @Test(arguments: GuestNVMe.accesses)
    func bringUpInterruptsAndPolled(access: HostDevice.Access) async throws {
        try await withController(access) { device in
            var options = NVMeHost.Options()
            options.ioQueues = 2
            try await DriverSuite.bringUp(device, options: options)
            options.interrupts = false
            try await DriverSuite.bringUp(device, options: options)
            // The kernel path maps the doorbells: no system call per doorbell.
            let host = try await NVMeHost.open(device)
            #expect(host.usesMappedDoorbells)
            await host.close()
        }
    }

    @Test(arguments: GuestNVMe.accesses)
    func writeReadVerify(access: HostDevice.Access) async throws {
        try await withController(access) { device in
            try await DriverSuite.writeReadVerify(device)
            var polled = NVMeHost.Options()
            polled.interrupts = false
            try await DriverSuite.writeReadVerify(device, options: polled)
            try await DriverSuite.prpListsAcrossPages(device)
        }
    }

    @Test(arguments: GuestNVMe.accesses)
    func queueWrapAndConcurrency(access: HostDevice.Access) async throws {
        try await withController(access) { device in
            for interrupts in [true, false] {
                try await DriverSuite.queueWrap(device, interrupts: interrupts)
                try await DriverSuite.concurrentTasks(device, interrupts: interrupts)
            }
        }
    }

    @Test(arguments: GuestNVMe.accesses)
    func resetErrorsAndOtherCommands(access: HostDevice.Access) async throws {
        try await withController(access) { device in
            try await DriverSuite.reset(device)
            try await DriverSuite.errorStatuses(device)
            try await DriverSuite.otherCommands(device)
            try await DriverSuite.shadowDoorbells(device, enabled: true)
            try await DriverSuite.shadowDoorbells(device, enabled: false)
        }
    }

    /// Format NVM (QEMU's nvme offers it, OACS bit 1) to the LBA format in use: blocks
    /// written before read back as zeroes, and the namespace keeps its size and block size.
    @Test func formatNVMErasesTheNamespace() async throws {
        try await withController(.container) { device in
            try await DriverSuite.withHost(device) { host in
                #expect(host.controller.optionalAdminCommands.contains(.formatNVM))
                let ns = host.namespaces[0]
                let buffer = try host.allocateBuffer(8 * ns.blockSize)
                let data = pattern(8 * ns.blockSize, seed: 77)
                buffer.store(data)
                try await host.write(namespace: ns.id, lba: DriverSuite.firstLBA, blocks: 8, from: buffer)
                try await host.read(namespace: ns.id, lba: DriverSuite.firstLBA, blocks: 8, into: buffer)
                #expect(buffer.load(data.count) == data)
                try await host.format(namespace: ns.id, lbaFormat: ns.identify.formattedLBASize & 0xF)
                try await host.read(namespace: ns.id, lba: DriverSuite.firstLBA, blocks: 8, into: buffer)
                #expect(buffer.load(data.count) == [UInt8](repeating: 0, count: data.count))
                let again = IdentifyNamespace(decoding: try await host.identify(cns: IdentifyCNS.namespace.rawValue, namespace: ns.id))
                #expect(again.size == ns.blockCount)
                #expect(again.formattedLBASize & 0xF == ns.identify.formattedLBASize & 0xF)
                host.releaseBuffer(buffer)
            }
        }
    }
}
