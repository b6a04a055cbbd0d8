import Foundation
import Testing
import VFIO
import VFIOHost

/// A fake sysfs tree under a temp dir: PCI devices with driver and IOMMU group links,
/// drivers with bind/unbind files, and `drivers_probe`.
final class FakeSysfs {
    let root: String
    var sysfs: Sysfs { Sysfs(root: root) }
    private let files = FileManager.default

    init() throws {
        root = NSTemporaryDirectory() + "swift-vfio-sysfs-" + UUID().uuidString
        try files.createDirectory(atPath: root + "/bus/pci/devices", withIntermediateDirectories: true)
        try files.createDirectory(atPath: root + "/kernel/iommu_groups", withIntermediateDirectories: true)
        try write("", root + "/bus/pci/drivers_probe")
    }

    deinit { try? files.removeItem(atPath: root) }

    func write(_ text: String, _ path: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    /// The file's text (read with Glibc: Foundation's `String(contentsOfFile:)` leaks its
    /// 4 KiB read buffer here, which LeakSanitizer reports).
    func read(_ path: String) throws -> String {
        let fd = open(root + path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw VFIOError.errno("open \(path)", errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw VFIOError.errno("read \(path)", errno) }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func driver(_ name: String) throws -> String {
        let path = root + "/bus/pci/drivers/" + name
        if !files.fileExists(atPath: path) {
            try files.createDirectory(atPath: path, withIntermediateDirectories: true)
            try write("", path + "/bind")
            try write("", path + "/unbind")
        }
        return path
    }

    /// Adds a device; `driver` nil leaves it unbound, `group` nil leaves it without IOMMU.
    func addDevice(_ address: String, vendor: String = "0x1234", device: String = "0x11e8", classCode: String = "0x00ff00",
                   driver: String?, group: Int?, cdev: String? = nil) throws {
        let path = root + "/bus/pci/devices/" + address
        try files.createDirectory(atPath: path, withIntermediateDirectories: true)
        try write(vendor + "\n", path + "/vendor")
        try write(device + "\n", path + "/device")
        try write(classCode + "\n", path + "/class")
        try write("(null)\n", path + "/driver_override")
        try setDriver(address, driver)
        if let group {
            let groupPath = root + "/kernel/iommu_groups/\(group)/devices"
            try files.createDirectory(atPath: groupPath, withIntermediateDirectories: true)
            try files.createSymbolicLink(atPath: groupPath + "/" + address, withDestinationPath: path)
            try files.createSymbolicLink(atPath: path + "/iommu_group", withDestinationPath: "../../../../kernel/iommu_groups/\(group)")
        }
        if let cdev {
            try files.createDirectory(atPath: path + "/vfio-dev/" + cdev, withIntermediateDirectories: true)
        }
    }

    func setDriver(_ address: String, _ driver: String?) throws {
        let link = root + "/bus/pci/devices/" + address + "/driver"
        try? files.removeItem(atPath: link)
        if let driver { try files.createSymbolicLink(atPath: link, withDestinationPath: try self.driver(driver)) }
    }
}

@Suite struct HostSysfsTests {
    @Test func discoversDevicesWithTheirIdentityDriverGroupAndCdev() throws {
        let tree = try FakeSysfs()
        try tree.addDevice("0000:01:00.0", driver: "vfio-pci", group: 3, cdev: "vfio0")
        try tree.addDevice("0000:00:02.0", vendor: "0x8086", device: "0x10d3", classCode: "0x020000", driver: "e1000e", group: 1)
        try tree.addDevice("0000:00:00.0", vendor: "0x8086", device: "0x29c0", classCode: "0x060000", driver: nil, group: nil)

        let devices = try tree.sysfs.pciDevices()
        #expect(devices.map(\.address) == ["0000:00:00.0", "0000:00:02.0", "0000:01:00.0"])
        let edu = try tree.sysfs.pciDevice("0000:01:00.0")
        #expect(edu.vendor == 0x1234 && edu.device == 0x11e8 && edu.classCode == 0x00ff00)
        #expect(edu.driver == "vfio-pci")
        #expect(edu.driverOverride == nil)
        #expect(edu.iommuGroup == 3)
        #expect(edu.cdevPath == "/dev/vfio/devices/vfio0")
        #expect(edu.isBoundToVFIO)
        let nic = devices[1]
        #expect(nic.driver == "e1000e" && nic.iommuGroup == 1 && nic.cdevPath == nil && !nic.isBoundToVFIO)
        #expect(devices[0].driver == nil && devices[0].iommuGroup == nil)
    }

    @Test func missingDeviceIsENOENTNamingThePath() throws {
        let tree = try FakeSysfs()
        let error = #expect(throws: VFIOError.self) { try tree.sysfs.pciDevice("0000:09:00.0") }
        #expect(error?.errnoValue == ENOENT)
        #expect(error?.operation.contains("0000:09:00.0") == true)
    }

    @Test func aGroupIsViableOnlyWhenEveryDeviceIsUnclaimedOrManagedByVFIOPciStubOrPcieport() throws {
        let tree = try FakeSysfs()
        // Group 1: vfio-pci + pcieport + unbound: viable.
        try tree.addDevice("0000:00:1c.0", driver: "pcieport", group: 1)
        try tree.addDevice("0000:01:00.0", driver: "vfio-pci", group: 1)
        try tree.addDevice("0000:01:00.1", driver: nil, group: 1)
        // Group 2: vfio-pci + a host driver: not viable.
        try tree.addDevice("0000:02:00.0", driver: "vfio-pci", group: 2)
        try tree.addDevice("0000:02:00.1", driver: "snd_hda_intel", group: 2)
        // Group 3: pci-stub and a vfio-pci variant driver: viable.
        try tree.addDevice("0000:03:00.0", driver: "pci-stub", group: 3)
        try tree.addDevice("0000:03:00.1", driver: "mlx5_vfio_pci", group: 3)
        // Group 4: a single host-driven device: not viable.
        try tree.addDevice("0000:04:00.0", driver: "nvme", group: 4)

        let groups = try tree.sysfs.iommuGroups()
        #expect(groups.map(\.number) == [1, 2, 3, 4])
        #expect(groups.map(\.viable) == [true, false, true, false])
        #expect(groups[0].deviceAddresses == ["0000:00:1c.0", "0000:01:00.0", "0000:01:00.1"])
        #expect(groups[1].devicePath == "/dev/vfio/2")
    }

    @Test func bindWritesOverrideUnbindAndProbeAndRemembersTheDriver() throws {
        let tree = try FakeSysfs()
        try tree.addDevice("0000:01:00.0", driver: "e1000e", group: 5)
        let record = try tree.sysfs.bind("0000:01:00.0")
        #expect(record == BindRecord(address: "0000:01:00.0", originalDriver: "e1000e", originalOverride: nil))
        #expect(try tree.read("/bus/pci/devices/0000:01:00.0/driver_override") == "vfio-pci")
        #expect(try tree.read("/bus/pci/drivers/e1000e/unbind") == "0000:01:00.0")
        #expect(try tree.read("/bus/pci/drivers_probe") == "0000:01:00.0")

        // The kernel would now bind vfio-pci; give the device back.
        try tree.setDriver("0000:01:00.0", "vfio-pci")
        try tree.sysfs.giveBack(record)
        #expect(try tree.read("/bus/pci/drivers/vfio-pci/unbind") == "0000:01:00.0")
        #expect(try tree.read("/bus/pci/devices/0000:01:00.0/driver_override") == "\n")
        #expect(try tree.read("/bus/pci/drivers/e1000e/bind") == "0000:01:00.0")
    }

    @Test func bindingAnUnboundDeviceOnlyProbesAndUnbindWithoutADriverProbesAgain() throws {
        let tree = try FakeSysfs()
        try tree.addDevice("0000:01:00.0", driver: nil, group: 5)
        let record = try tree.sysfs.bind("0000:01:00.0")
        #expect(record.originalDriver == nil)
        #expect(try tree.read("/bus/pci/devices/0000:01:00.0/driver_override") == "vfio-pci")
        #expect(try tree.read("/bus/pci/drivers_probe") == "0000:01:00.0")
        try tree.setDriver("0000:01:00.0", "vfio-pci")
        try tree.write("", tree.root + "/bus/pci/drivers_probe")
        try tree.sysfs.unbind("0000:01:00.0")
        #expect(try tree.read("/bus/pci/drivers/vfio-pci/unbind") == "0000:01:00.0")
        #expect(try tree.read("/bus/pci/drivers_probe") == "0000:01:00.0")
    }

    @Test func bindingAlreadyBoundDeviceWritesNothing() throws {
        let tree = try FakeSysfs()
        try tree.addDevice("0000:01:00.0", driver: "vfio-pci", group: 5)
        let record = try tree.sysfs.bind("0000:01:00.0")
        #expect(record.originalDriver == "vfio-pci")
        #expect(try tree.read("/bus/pci/drivers_probe") == "")
        #expect(try tree.read("/bus/pci/devices/0000:01:00.0/driver_override") == "(null)\n")
    }

    @Test func aWriteThatFailsNamesTheFileAndErrno() throws {
        let tree = try FakeSysfs()
        try tree.addDevice("0000:01:00.0", driver: nil, group: 5)
        try FileManager.default.removeItem(atPath: tree.root + "/bus/pci/drivers_probe")
        let error = #expect(throws: VFIOError.self) { try tree.sysfs.bind("0000:01:00.0") }
        #expect(error?.errnoValue == ENOENT)
        #expect(error?.operation.hasSuffix("drivers_probe") == true)
    }
}
