/// One device affected by a PCI hot reset (`struct vfio_pci_dependent_device`).
///
/// The first word is a union: an IOMMU group id when the calling device was opened through
/// a group (`VFIO_PCI_HOT_RESET_FLAG_DEV_ID` clear in the reply), or an iommufd device id
/// when it was opened as a cdev (flag set). `rawID` holds the word; read it through
/// `groupID` or `deviceID` according to that flag.
public struct PCIDependentDevice: KernelStruct, Hashable {
    public static let cName = "vfio_pci_dependent_device"
    /// `sizeof(struct vfio_pci_dependent_device)`
    public static let fixedSize = 8

    /// `VFIO_PCI_DEVID_OWNED`: the device has no devid in the caller's iommufd context but
    /// is owned through a device that does (same IOMMU group).
    public static let devidOwned: UInt32 = 0
    /// `VFIO_PCI_DEVID_NOT_OWNED` (-1): the device is not in the caller's device set, or its
    /// ownership cannot be established; it blocks the cdev form of the hot reset.
    public static let devidNotOwned = UInt32(bitPattern: -1)

    /// The cdev reading of the union word.
    public enum DeviceID: Sendable, Hashable {
        /// A devid in the caller's iommufd context (greater than zero).
        case id(UInt32)
        /// `VFIO_PCI_DEVID_OWNED`
        case owned
        /// `VFIO_PCI_DEVID_NOT_OWNED`
        case notOwned

        public var rawValue: UInt32 {
            switch self {
            case .id(let value): return value
            case .owned: return PCIDependentDevice.devidOwned
            case .notOwned: return PCIDependentDevice.devidNotOwned
            }
        }

        public init(rawValue: UInt32) {
            switch rawValue {
            case PCIDependentDevice.devidOwned: self = .owned
            case PCIDependentDevice.devidNotOwned: self = .notOwned
            default: self = .id(rawValue)
            }
        }
    }

    /// The union word (`group_id` / `devid`).
    public var rawID: UInt32
    /// PCI segment (domain).
    public var segment: UInt16
    public var bus: UInt8
    /// Device and function, as `PCI_DEVFN(slot, function)`.
    public var devfn: UInt8

    public init(rawID: UInt32, segment: UInt16, bus: UInt8, devfn: UInt8) {
        self.rawID = rawID
        self.segment = segment
        self.bus = bus
        self.devfn = devfn
    }

    /// A group-path entry.
    public init(groupID: UInt32, segment: UInt16, bus: UInt8, devfn: UInt8) {
        self.init(rawID: groupID, segment: segment, bus: bus, devfn: devfn)
    }

    /// A cdev-path entry.
    public init(deviceID: DeviceID, segment: UInt16, bus: UInt8, devfn: UInt8) {
        self.init(rawID: deviceID.rawValue, segment: segment, bus: bus, devfn: devfn)
    }

    /// The word read as an IOMMU group id (group-opened caller).
    public var groupID: UInt32 { rawID }
    /// The word read as an iommufd devid (cdev-opened caller).
    public var deviceID: DeviceID { DeviceID(rawValue: rawID) }

    /// `PCI_SLOT(devfn)`
    public var slot: UInt8 { devfn >> 3 }
    /// `PCI_FUNC(devfn)`
    public var function: UInt8 { devfn & 7 }

    /// The device's address as `ssss:bb:dd.f`, the form sysfs uses.
    public var address: String {
        func hex(_ value: UInt64, _ width: Int) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(hex(UInt64(segment), 4)):\(hex(UInt64(bus), 2)):\(hex(UInt64(slot), 2)).\(function)"
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(rawID)
        writer.u16(segment)
        writer.u8(bus)
        writer.u8(devfn)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        rawID = try reader.u32()
        segment = try reader.u16()
        bus = try reader.u8()
        devfn = try reader.u8()
    }
}
