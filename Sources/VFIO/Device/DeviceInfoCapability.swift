/// One capability of a `vfio_device_info` reply, typed when this package knows its id and
/// version, else kept raw.
///
/// Device-info capability ids (Linux 6.14): 1-4 are the s390 zPCI capabilities of
/// `<linux/vfio_zdev.h>`, 5 is `VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP`.
public enum DeviceInfoCapability: Sendable, Equatable {
    /// `VFIO_DEVICE_INFO_CAP_ZPCI_BASE` (versions 1 and 2).
    case zpciBase(ZPCIBase)
    /// `VFIO_DEVICE_INFO_CAP_ZPCI_GROUP` (versions 1 and 2).
    case zpciGroup(ZPCIGroup)
    /// `VFIO_DEVICE_INFO_CAP_ZPCI_UTIL` (version 1): the utility string, in EBCDIC.
    case zpciUtility([UInt8])
    /// `VFIO_DEVICE_INFO_CAP_ZPCI_PFIP` (version 1): the PCI function path bytes.
    case zpciFunctionPath([UInt8])
    /// `VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP` (version 1): the AtomicOp completer widths the
    /// root port supports.
    case pciAtomicCompletion(PCIAtomicCompletion)
    /// Any other id, or a version of a known id this package does not decode.
    case unknown(InfoCapability)

    /// `VFIO_DEVICE_INFO_CAP_ZPCI_BASE`
    public static let zpciBaseID: UInt16 = 1
    /// `VFIO_DEVICE_INFO_CAP_ZPCI_GROUP`
    public static let zpciGroupID: UInt16 = 2
    /// `VFIO_DEVICE_INFO_CAP_ZPCI_UTIL`
    public static let zpciUtilityID: UInt16 = 3
    /// `VFIO_DEVICE_INFO_CAP_ZPCI_PFIP`
    public static let zpciFunctionPathID: UInt16 = 4
    /// `VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP`
    public static let pciAtomicCompletionID: UInt16 = 5

    /// Decodes a raw capability. Known ids with a known version must have a body long enough
    /// for that version, else this throws `.malformed` naming the capability.
    public init(_ raw: InfoCapability) throws(VFIOError) {
        switch (raw.id, raw.version) {
        case (Self.zpciBaseID, 1), (Self.zpciBaseID, 2):
            self = .zpciBase(try ZPCIBase(body: raw.body, version: raw.version))
        case (Self.zpciGroupID, 1), (Self.zpciGroupID, 2):
            self = .zpciGroup(try ZPCIGroup(body: raw.body, version: raw.version))
        case (Self.zpciUtilityID, 1):
            self = .zpciUtility(try Self.sizedBytes(raw.body, "vfio_device_info_cap_zpci_util"))
        case (Self.zpciFunctionPathID, 1):
            self = .zpciFunctionPath(try Self.sizedBytes(raw.body, "vfio_device_info_cap_zpci_pfip"))
        case (Self.pciAtomicCompletionID, 1):
            self = .pciAtomicCompletion(try PCIAtomicCompletion(body: raw.body))
        default:
            self = .unknown(raw)
        }
    }

    /// The raw capability (id, version, body without the chain's padding).
    public var infoCapability: InfoCapability {
        switch self {
        case .zpciBase(let base):
            return InfoCapability(id: Self.zpciBaseID, version: base.version, body: base.body)
        case .zpciGroup(let group):
            return InfoCapability(id: Self.zpciGroupID, version: group.version, body: group.body)
        case .zpciUtility(let bytes):
            return InfoCapability(id: Self.zpciUtilityID, version: 1, body: Self.sizedBody(bytes))
        case .zpciFunctionPath(let bytes):
            return InfoCapability(id: Self.zpciFunctionPathID, version: 1, body: Self.sizedBody(bytes))
        case .pciAtomicCompletion(let atomic):
            return InfoCapability(id: Self.pciAtomicCompletionID, version: 1, body: atomic.body)
        case .unknown(let raw):
            return raw
        }
    }

    /// A `__u32 size` followed by that many bytes (the zPCI util and pfip layouts).
    static func sizedBytes(_ body: [UInt8], _ context: String) throws(VFIOError) -> [UInt8] {
        var reader = ByteReader(body, context: context)
        let size = try reader.u32()
        if Int(size) > reader.remaining {
            throw .malformed(context, "size \(size) runs past the \(reader.remaining) byte(s) after it")
        }
        return try reader.bytes(Int(size))
    }

    static func sizedBody(_ bytes: [UInt8]) -> [UInt8] {
        var writer = ByteWriter(capacity: 4 + bytes.count)
        writer.u32(UInt32(bytes.count))
        writer.append(contentsOf: bytes)
        return writer.bytes
    }
}

/// `flags` of `struct vfio_device_info_cap_pci_atomic_comp`.
public struct PCIAtomicCompletion: Sendable, Hashable, OptionSet {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_PCI_ATOMIC_COMP32`: 32-bit AtomicOp completion to the root bus.
    public static let comp32 = PCIAtomicCompletion(rawValue: 1 << 0)
    /// `VFIO_PCI_ATOMIC_COMP64`: 64-bit AtomicOp completion.
    public static let comp64 = PCIAtomicCompletion(rawValue: 1 << 1)
    /// `VFIO_PCI_ATOMIC_COMP128`: 128-bit CAS completion.
    public static let comp128 = PCIAtomicCompletion(rawValue: 1 << 2)

    /// The body after the capability header: `flags`, then a reserved `__u32`.
    public var body: [UInt8] {
        var writer = ByteWriter(capacity: 8)
        writer.u32(rawValue)
        writer.u32(0)
        return writer.bytes
    }

    /// Decodes the body of `struct vfio_device_info_cap_pci_atomic_comp` (8 bytes).
    public init(body: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(body, context: "vfio_device_info_cap_pci_atomic_comp")
        rawValue = try reader.u32()
        try reader.skip(4)
    }
}
