import ArgumentParser
import VFIO
import VFIOHost

/// `vfio list`: IOMMU groups and PCI devices from sysfs.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List IOMMU groups and their PCI devices, drivers and viability.",
        discussion: "A group is viable when every device in it is bound to a vfio driver, to pci-stub or pcieport, or to no driver."
    )

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @Option(name: .customLong("sysfs"), help: ArgumentHelp("The sysfs root.", visibility: .hidden))
    var sysfsRoot = "/sys"

    func run() throws {
        let sysfs = Sysfs(root: sysfsRoot)
        let devices = try sysfs.pciDevices()
        let groups = (try? sysfs.iommuGroups()) ?? []
        let byAddress = Dictionary(devices.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
        func deviceJSON(_ d: PCIDeviceRecord) -> JSON {
            .object([
                ("address", .string(d.address)),
                ("vendor", .string(hex(d.vendor, width: 4))),
                ("device", .string(hex(d.device, width: 4))),
                ("class", .string(hex(d.classCode, width: 6))),
                ("driver", d.driver.map(JSON.string) ?? .null),
                ("iommu_group", d.iommuGroup.map { .number(Int64($0)) } ?? .null),
                ("cdev", d.cdevPath.map(JSON.string) ?? .null),
            ])
        }
        let ungrouped = devices.filter { $0.iommuGroup == nil }
        if json {
            let value = JSON.object([
                ("groups", .array(groups.map { group in
                    .object([
                        ("group", .number(Int64(group.number))),
                        ("viable", .bool(group.viable)),
                        ("path", .string(group.devicePath)),
                        ("devices", .array(group.deviceAddresses.map { byAddress[$0].map(deviceJSON) ?? .object([("address", .string($0))]) })),
                    ])
                })),
                ("without_iommu_group", .array(ungrouped.map(deviceJSON))),
            ])
            print(value.rendered())
            return
        }
        func line(_ d: PCIDeviceRecord) -> String {
            var text = "  \(d.address)  \(hex(d.vendor, width: 4).dropFirst(2)):\(hex(d.device, width: 4).dropFirst(2))  class \(hex(d.classCode, width: 6).dropFirst(2))  " + (d.driver ?? "(no driver)")
            if let cdev = d.cdevPath { text += "  \(cdev)" }
            return text
        }
        if groups.isEmpty { print("no IOMMU groups (is the IOMMU on?)") }
        for group in groups {
            print("group \(group.number) \(group.viable ? "viable" : "not viable")  \(group.devicePath)")
            for address in group.deviceAddresses {
                if let d = byAddress[address] { print(line(d)) } else { print("  \(address)  (not PCI)") }
            }
        }
        if !ungrouped.isEmpty {
            print("without an IOMMU group:")
            for d in ungrouped { print(line(d)) }
        }
    }
}

/// `vfio info DEVICE`: the device as VFIO describes it.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show a VFIO device's flags, regions, IRQs, features and migration support.",
        discussion: DeviceName.discussion
    )

    @Argument(help: ArgumentHelp(DeviceName.help), transform: { try DeviceName(parsing: $0) })
    var device: DeviceName

    @Option(help: "How to reach a kernel device (a PCI address, /dev/vfio path or mdev:UUID): automatic, container or iommufd.")
    var access: HostDevice.Access = .automatic

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let opened = try openDevice(device, access: access)
        let report = DeviceReport(device: opened)
        let kernel = KernelTransportReport(device: opened)
        let iommufd = (opened as? HostDevice).flatMap(IOMMUFDReport.init(device:))
        // The display (GFX planes): a kernel device only (vfio-user has no such command).
        let gfx = (opened as? HostDevice).map { GFXReport(device: $0) }
        if json {
            var document = report.json()
            if let kernel, case .object(let fields) = document { document = .object(fields + kernel.fields) }
            if let gfx, case .object(let fields) = document { document = .object(fields + [("gfx_planes", gfx.json())]) }
            print((iommufd?.appended(to: document) ?? document).rendered())
        } else {
            print(([report.text()] + (kernel?.lines ?? []) + (gfx?.lines() ?? []) + (iommufd.map { [$0.text()] } ?? [])).joined(separator: "\n"))
        }
    }
}

/// `vfio bind ADDRESS`: hands a PCI device to vfio-pci.
struct BindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bind",
        abstract: "Bind a PCI device to vfio-pci (driver_override, then a probe).",
        discussion: "Prints the driver it was bound to, which `vfio unbind --driver` gives it back to."
    )

    @Argument(help: "The PCI address.")
    var address: String

    @Option(help: "The driver to bind to.")
    var driver = "vfio-pci"

    @Option(name: .customLong("sysfs"), help: ArgumentHelp("The sysfs root.", visibility: .hidden))
    var sysfsRoot = "/sys"

    func run() throws {
        guard let normalized = DeviceName.normalizedPCIAddress(address) else {
            throw ValidationError("'\(address)' is not a PCI address (0000:00:04.0)")
        }
        let record = try Sysfs(root: sysfsRoot).bind(normalized, to: driver)
        let now = try Sysfs(root: sysfsRoot).pciDevice(normalized).driver ?? "no driver"
        print("\(normalized): \(now) (was \(record.originalDriver ?? "no driver"))")
    }
}

/// `vfio unbind ADDRESS`: gives a PCI device back to a host driver.
struct UnbindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unbind",
        abstract: "Unbind a PCI device from vfio-pci and give it back.",
        discussion: "Without --driver the PCI core probes the device for its usual driver."
    )

    @Argument(help: "The PCI address.")
    var address: String

    @Option(help: "The driver to give it to (as `vfio bind` reported).")
    var driver: String?

    @Option(name: .customLong("sysfs"), help: ArgumentHelp("The sysfs root.", visibility: .hidden))
    var sysfsRoot = "/sys"

    func run() throws {
        guard let normalized = DeviceName.normalizedPCIAddress(address) else {
            throw ValidationError("'\(address)' is not a PCI address (0000:00:04.0)")
        }
        try Sysfs(root: sysfsRoot).unbind(normalized, restoring: driver)
        let now = try Sysfs(root: sysfsRoot).pciDevice(normalized).driver ?? "no driver"
        print("\(normalized): \(now)")
    }
}
