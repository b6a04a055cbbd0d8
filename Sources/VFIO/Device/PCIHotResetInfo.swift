/// `flags` of `struct vfio_pci_hot_reset_info`.
public struct PCIHotResetInfoFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_PCI_HOT_RESET_FLAG_DEV_ID`: the entries carry iommufd devids (the calling
    /// device was opened as a cdev), not group ids.
    public static let devID = PCIHotResetInfoFlags(rawValue: 1 << 0)
    /// `VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED`: with `devID`, every affected device is in
    /// the caller's device set and owned by it, so `VFIO_DEVICE_PCI_HOT_RESET` may be called
    /// with an empty fd array. Reserved when `devID` is clear.
    public static let devIDOwned = PCIHotResetInfoFlags(rawValue: 1 << 1)
}

/// `struct vfio_pci_hot_reset_info`, the reply of `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`:
/// the devices a bus or slot reset of this device would also reset.
///
/// Unlike the info queries with capability chains, a buffer too small for the list makes
/// the kernel fail with `ENOSPC`, set `count` to the number of affected devices and leave
/// `argsz` as the caller gave it. So the size to retry with comes from `count`: use
/// `PCIHotResetInfo.reply(_:)` (or `neededSize(count:)`), not the reply's `argsz`.
/// `ENODEV` means the device supports neither slot nor bus reset.
public struct PCIHotResetInfo: ArgszStruct {
    public static let cName = "vfio_pci_hot_reset_info"
    /// `sizeof(struct vfio_pci_hot_reset_info)`, without `devices[]`.
    public static let fixedSize = 12

    public var flags: PCIHotResetInfoFlags
    /// The affected devices, the calling device included.
    public var devices: [PCIDependentDevice]

    public init(flags: PCIHotResetInfoFlags = [], devices: [PCIDependentDevice]) {
        self.flags = flags
        self.devices = devices
    }

    /// The buffer size that holds `count` entries.
    public static func neededSize(count: UInt32) -> Int {
        fixedSize + Int(count) * PCIDependentDevice.fixedSize
    }

    /// The request: `argsz` = `capacity` (at least the fixed part), everything else zero.
    /// Room for a few devices is usually enough; the default fits 8.
    public static func query(capacity: Int = neededSize(count: 8)) -> [UInt8] {
        var writer = ByteWriter(capacity: max(capacity, fixedSize))
        writer.u32(UInt32(max(capacity, fixedSize)))
        writer.pad(toCount: max(capacity, fixedSize))
        return writer.bytes
    }

    /// What a reply buffer says: the list, or (after `ENOSPC`) how many devices there are
    /// and the size to ask again with.
    public enum Reply: Sendable, Equatable {
        case complete(PCIHotResetInfo)
        case needsRoom(count: UInt32, neededSize: Int)
    }

    /// The buffer size a reply asks for: the kernel answers a too-small buffer with
    /// `ENOSPC` and the device count in `count`, leaving `argsz` as it was. Pass this to
    /// `ArgszRetry.run(_:request:neededSize:call:)`. A reply too short to hold `count`
    /// asks for nothing (0).
    public static func neededSize(_ reply: [UInt8]) -> Int {
        guard reply.count >= fixedSize else { return 0 }
        return fixedSize + Int(ByteReader.le32(reply, 8)) * PCIDependentDevice.fixedSize
    }

    /// Reads a reply buffer without reading past it: a `count` whose entries do not fit in
    /// `argsz` or the buffer gives `.needsRoom` (the kernel's `ENOSPC` answer).
    public static func reply(_ bytes: [UInt8]) throws(VFIOError) -> Reply {
        var reader = ByteReader(bytes, context: cName)
        let argsz = try reader.argsz(fixedSize: fixedSize)
        _ = try reader.u32()
        let count = try reader.u32()
        let needed = UInt64(fixedSize) + UInt64(count) * UInt64(PCIDependentDevice.fixedSize)
        if needed > UInt64(min(Int(argsz), bytes.count)) {
            return .needsRoom(count: count, neededSize: Int(needed))
        }
        return .complete(try PCIHotResetInfo(decoding: bytes))
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.u32(UInt32(devices.count))
        for device in devices { device.encode(into: &writer) }
        writer.finishArgsz(at: start)
    }

    /// Decodes a complete list. A `count` whose entries do not fit in `argsz` or the buffer
    /// throws `.malformed` stating the size needed (see `reply(_:)` for the retry case).
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        flags = PCIHotResetInfoFlags(rawValue: try reader.u32())
        let count = try reader.u32()
        let needed = UInt64(Self.fixedSize) + UInt64(count) * UInt64(PCIDependentDevice.fixedSize)
        if needed > UInt64(argsz) {
            throw .malformed(Self.cName, "count \(count) needs argsz \(needed), argsz is \(argsz) (an ENOSPC reply: retry with \(needed) bytes)")
        }
        if needed - UInt64(Self.fixedSize) > UInt64(reader.remaining) {
            throw .malformed(Self.cName, "count \(count) needs \(needed) bytes, the buffer has \(reader.remaining + Self.fixedSize)")
        }
        var list: [PCIDependentDevice] = []
        list.reserveCapacity(Int(count))
        for _ in 0..<count { list.append(try PCIDependentDevice(from: &reader)) }
        devices = list
        InfoChainCodec.finish(&reader, start: start, argsz: argsz)
    }
}
