import Glibc
import VFIO

/// A PCI device as sysfs describes it (`/sys/bus/pci/devices/ADDRESS`).
public struct PCIDeviceRecord: Sendable, Equatable {
    /// `DDDD:BB:DD.F`.
    public var address: String
    /// `vendor`, `device`, `class` (24 bits: class, subclass, programming interface).
    public var vendor: UInt16
    public var device: UInt16
    public var classCode: UInt32
    /// The bound driver's name (`driver` link), `nil` when unbound.
    public var driver: String?
    /// `driver_override`, `nil` when empty or absent.
    public var driverOverride: String?
    /// The IOMMU group number (`iommu_group` link), `nil` without an IOMMU.
    public var iommuGroup: Int?
    /// The device cdev's name under /dev/vfio/devices (`vfio-dev/vfioN`), when the kernel
    /// offers one (bound to a vfio driver with `CONFIG_VFIO_DEVICE_CDEV`).
    public var vfioDeviceName: String?
    /// The header type's layout (0 normal, 1 bridge, 2 CardBus), from `config` when
    /// readable, else 0.
    public var headerType: UInt8

    public init(address: String, vendor: UInt16, device: UInt16, classCode: UInt32, driver: String? = nil,
                driverOverride: String? = nil, iommuGroup: Int? = nil, vfioDeviceName: String? = nil, headerType: UInt8 = 0) {
        self.address = address
        self.vendor = vendor
        self.device = device
        self.classCode = classCode
        self.driver = driver
        self.driverOverride = driverOverride
        self.iommuGroup = iommuGroup
        self.vfioDeviceName = vfioDeviceName
        self.headerType = headerType
    }

    /// `/dev/vfio/devices/vfioN`, when the device has a cdev.
    public var cdevPath: String? { vfioDeviceName.map { "/dev/vfio/devices/\($0)" } }

    /// Whether the device lets its IOMMU group be used by VFIO: the kernel's rule (an
    /// unclaimed DMA owner): no driver, or a driver that manages DMA ownership itself
    /// (`driver_managed_dma`: vfio-pci and its variant drivers, pci-stub, pcieport).
    public var allowsVFIOGroup: Bool {
        guard let driver else { return true }
        return driver.contains("vfio") || Sysfs.dmaOwnerFreeDrivers.contains(driver)
    }

    /// Bound to vfio-pci or a vfio-pci variant driver.
    public var isBoundToVFIO: Bool { driver?.contains("vfio") ?? false }
}

/// An IOMMU group (`/sys/kernel/iommu_groups/N`).
public struct IOMMUGroupRecord: Sendable, Equatable {
    public var number: Int
    /// Addresses of the group's devices, sorted.
    public var deviceAddresses: [String]
    /// Every device in the group allows VFIO (see `PCIDeviceRecord.allowsVFIOGroup`), so
    /// `VFIO_GROUP_GET_STATUS` reports it viable. Non-PCI members count as not viable
    /// when bound to a driver.
    public var viable: Bool
    /// `/dev/vfio/N`.
    public var devicePath: String { "/dev/vfio/\(number)" }
}

/// What `bind(_:)` changed, so `giveBack(_:)` can undo it.
public struct BindRecord: Sendable, Equatable {
    public var address: String
    /// The driver the device was bound to before, `nil` when it was unbound.
    public var originalDriver: String?
    /// `driver_override` before, `nil` when empty.
    public var originalOverride: String?

    public init(address: String, originalDriver: String?, originalOverride: String?) {
        self.address = address
        self.originalDriver = originalDriver
        self.originalOverride = originalOverride
    }
}

/// Reads and writes sysfs, from a root that tests point at a fake tree.
public struct Sysfs: Sendable {
    /// Drivers with `driver_managed_dma`, which leave a group viable besides the vfio ones.
    public static let dmaOwnerFreeDrivers: Set<String> = ["pci-stub", "pcieport"]

    /// `/sys`, or the root of a fake tree.
    public var root: String

    public init(root: String = "/sys") { self.root = root }

    var devicesDirectory: String { root + "/bus/pci/devices" }
    var groupsDirectory: String { root + "/kernel/iommu_groups" }

    // MARK: Discovery

    /// Every PCI device, sorted by address.
    public func pciDevices() throws(VFIOError) -> [PCIDeviceRecord] {
        var result: [PCIDeviceRecord] = []
        for name in try Sysfs.list(devicesDirectory) {
            result.append(try pciDevice(name))
        }
        return result.sorted { $0.address < $1.address }
    }

    /// The PCI device at `address`.
    /// - Throws: `ENOENT` naming the sysfs path when there is no such device.
    public func pciDevice(_ address: String) throws(VFIOError) -> PCIDeviceRecord {
        let path = devicesDirectory + "/" + address
        guard Sysfs.exists(path) else { throw .errno("sysfs \(path)", ENOENT) }
        func hexValue(_ file: String) throws(VFIOError) -> UInt64 {
            let text = try Sysfs.readText(path + "/" + file)
            let digits = text.hasPrefix("0x") ? String(text.dropFirst(2)) : text
            guard let value = UInt64(digits, radix: 16) else {
                throw .malformed("sysfs \(path)/\(file)", "'\(text)' is not a hexadecimal number")
            }
            return value
        }
        var record = PCIDeviceRecord(
            address: address,
            vendor: UInt16(truncatingIfNeeded: try hexValue("vendor")),
            device: UInt16(truncatingIfNeeded: try hexValue("device")),
            classCode: UInt32(truncatingIfNeeded: try hexValue("class")))
        record.driver = Sysfs.linkName(path + "/driver")
        if let group = Sysfs.linkName(path + "/iommu_group") { record.iommuGroup = Int(group) }
        if let override = try? Sysfs.readText(path + "/driver_override"), !override.isEmpty, override != "(null)" {
            record.driverOverride = override
        }
        if let names = try? Sysfs.list(path + "/vfio-dev"), let first = names.first(where: { $0.hasPrefix("vfio") }) {
            record.vfioDeviceName = first
        }
        if let header = Sysfs.readBytes(path + "/config", count: 15), header.count == 15 {
            record.headerType = header[14] & 0x7f
        }
        return record
    }

    /// Every IOMMU group with its devices and viability, sorted by number.
    public func iommuGroups() throws(VFIOError) -> [IOMMUGroupRecord] {
        var result: [IOMMUGroupRecord] = []
        for name in try Sysfs.list(groupsDirectory) {
            guard let number = Int(name) else { continue }
            result.append(try iommuGroup(number))
        }
        return result.sorted { $0.number < $1.number }
    }

    /// IOMMU group `number`.
    public func iommuGroup(_ number: Int) throws(VFIOError) -> IOMMUGroupRecord {
        let members = try Sysfs.list(groupsDirectory + "/\(number)/devices").sorted()
        var viable = true
        for member in members {
            if let device = try? pciDevice(member) {
                if !device.allowsVFIOGroup { viable = false }
            } else if Sysfs.linkName(groupsDirectory + "/\(number)/devices/\(member)/driver") != nil {
                viable = false
            }
        }
        return IOMMUGroupRecord(number: number, deviceAddresses: members, viable: viable)
    }

    /// The PCI address of the device behind a cdev name such as `vfio0`
    /// (`/sys/class/vfio-dev/vfio0/device`).
    public func addressOfCdev(_ name: String) throws(VFIOError) -> String {
        let link = root + "/class/vfio-dev/\(name)/device"
        guard let address = Sysfs.linkName(link) else { throw .errno("sysfs \(link)", ENOENT) }
        return address
    }

    // MARK: Binding

    /// Binds the device at `address` to `driver` (vfio-pci by default): sets
    /// `driver_override`, unbinds the current driver, and asks the PCI core to probe.
    /// - Returns: what to restore with `giveBack(_:)`.
    /// - Throws: `ENOENT` for no such device; the write's errno (e.g. `EACCES` unless root).
    @discardableResult
    public func bind(_ address: String, to driver: String = "vfio-pci") throws(VFIOError) -> BindRecord {
        let device = try pciDevice(address)
        let record = BindRecord(address: address, originalDriver: device.driver, originalOverride: device.driverOverride)
        let path = devicesDirectory + "/" + address
        if device.driver == driver { return record }
        try Sysfs.write(driver, to: path + "/driver_override")
        if device.driver != nil {
            try Sysfs.write(address, to: path + "/driver/unbind")
        }
        try Sysfs.write(address, to: root + "/bus/pci/drivers_probe")
        return record
    }

    /// Undoes `bind(_:)`: unbinds from the current driver, restores `driver_override` and
    /// binds the original driver (or lets the PCI core probe when there was none known).
    public func giveBack(_ record: BindRecord) throws(VFIOError) {
        let path = devicesDirectory + "/" + record.address
        let device = try pciDevice(record.address)
        if device.driver != nil {
            try Sysfs.write(record.address, to: path + "/driver/unbind")
        }
        try Sysfs.write(record.originalOverride ?? "\n", to: path + "/driver_override")
        if let original = record.originalDriver {
            try Sysfs.write(record.address, to: root + "/bus/pci/drivers/\(original)/bind")
        } else {
            try Sysfs.write(record.address, to: root + "/bus/pci/drivers_probe")
        }
    }

    /// Unbinds the device from vfio-pci and gives it to `driver`, or to whatever the PCI
    /// core probes when `driver` is nil (a `giveBack` without a remembered record).
    public func unbind(_ address: String, restoring driver: String? = nil) throws(VFIOError) {
        try giveBack(BindRecord(address: address, originalDriver: driver, originalOverride: nil))
    }

    // MARK: File helpers

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Directory entries other than `.` and `..`.
    static func list(_ path: String) throws(VFIOError) -> [String] {
        guard let dir = opendir(path) else { throw .errno("sysfs \(path)", errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The last path component of a symlink's target, `nil` when it is not a link.
    static func linkName(_ path: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { readlink(path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4095) }
        guard count > 0 else { return nil }
        let target = String(decoding: buffer[0..<count], as: UTF8.self)
        return target.split(separator: "/").last.map(String.init)
    }

    /// Up to `count` bytes of a file, `nil` when unreadable.
    static func readBytes(_ path: String, count: Int) -> [UInt8]? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, count) }
        guard got >= 0 else { return nil }
        return Array(buffer[0..<got])
    }

    /// A small text file, without trailing whitespace.
    static func readText(_ path: String) throws(VFIOError) -> String {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .errno("sysfs \(path)", errno) }
        defer { _ = Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) }
        guard got >= 0 else { throw .errno("sysfs \(path)", errno) }
        var text = String(decoding: buffer[0..<got], as: UTF8.self)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }

    /// Writes `text` to an existing file (sysfs attributes are never created).
    static func write(_ text: String, to path: String) throws(VFIOError) {
        let fd = Glibc.open(path, O_WRONLY | O_CLOEXEC | O_TRUNC)
        guard fd >= 0 else { throw .errno("sysfs write \(path)", errno) }
        defer { _ = Glibc.close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if written < 0 { throw .errno("sysfs write \(path)", errno) }
    }
}
