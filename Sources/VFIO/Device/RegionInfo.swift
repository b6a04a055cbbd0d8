/// `flags` of `struct vfio_region_info`.
public struct RegionInfoFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_REGION_INFO_FLAG_READ`: `pread` on the device fd works in this region.
    public static let read = RegionInfoFlags(rawValue: 1 << 0)
    /// `VFIO_REGION_INFO_FLAG_WRITE`: `pwrite` works in this region.
    public static let write = RegionInfoFlags(rawValue: 1 << 1)
    /// `VFIO_REGION_INFO_FLAG_MMAP`: the region (or the areas of its sparse-mmap capability)
    /// can be mapped with `mmap` at `offset`.
    public static let mmap = RegionInfoFlags(rawValue: 1 << 2)
    /// `VFIO_REGION_INFO_FLAG_CAPS`: the reply has a capability chain at `cap_offset`.
    public static let caps = RegionInfoFlags(rawValue: 1 << 3)
}

/// `struct vfio_region_info`, the reply of `VFIO_DEVICE_GET_REGION_INFO`, with its
/// capability chain.
///
/// Ask with `RegionInfo.query(index:capacity:)`. A region of size 0 is unimplemented (an
/// absent PCI BAR). When the chain does not fit in the offered `argsz`, the kernel succeeds
/// with CAPS set, `cap_offset` 0 and `argsz` raised to what it needs: such a reply decodes
/// with no capabilities and `capabilitiesOmitted` true, and `ArgszRetry.run` asks again.
public struct RegionInfo: ArgszStruct {
    public static let cName = "vfio_region_info"
    /// `sizeof(struct vfio_region_info)`; the capability chain, if any, starts here.
    public static let fixedSize = 32

    /// The flags as reported. `init` and encoding add `.caps` whenever `capabilities` is
    /// not empty; `.caps` with no capabilities is a reply whose chain did not fit.
    public var flags: RegionInfoFlags
    /// The region index asked about (`PCIRegionIndex` for vfio-pci, or a device-specific
    /// index at or above `num` identified by its type capability).
    public var index: UInt32
    /// The region's size in bytes.
    public var size: UInt64
    /// Where the region starts in the device fd, for `pread`/`pwrite`/`mmap`.
    public var offset: UInt64
    /// The capability chain, in order.
    public var capabilities: [RegionInfoCapability]

    public init(flags: RegionInfoFlags, index: UInt32, size: UInt64, offset: UInt64, capabilities: [RegionInfoCapability] = []) {
        self.flags = capabilities.isEmpty ? flags : flags.union(.caps)
        self.index = index
        self.size = size
        self.offset = offset
        self.capabilities = capabilities
    }

    /// True when the reply set CAPS without a chain: the buffer was too small for it.
    public var capabilitiesOmitted: Bool { flags.contains(.caps) && capabilities.isEmpty }

    /// The region type capability, if the chain has one.
    public var regionType: RegionType? {
        for capability in capabilities { if case .type(let type) = capability { return type } }
        return nil
    }

    /// The sparse-mmap areas, if the chain has that capability.
    public var sparseMmapAreas: [SparseMmapArea]? {
        for capability in capabilities { if case .sparseMmap(let areas) = capability { return areas } }
        return nil
    }

    /// The request for `VFIO_DEVICE_GET_REGION_INFO`: only `index` set, `argsz` = `capacity`
    /// (at least `fixedSize`) so the kernel may write a chain into the extra room.
    public static func query(index: UInt32, capacity: Int = 256) -> [UInt8] {
        RegionInfo(flags: [], index: index, size: 0, offset: 0).encoded(capacity: max(capacity, fixedSize))
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        let raw = capabilities.map(\.infoCapability)
        writer.u32((raw.isEmpty ? flags : flags.union(.caps)).rawValue)
        writer.u32(index)
        writer.u32(raw.isEmpty ? 0 : UInt32(Self.fixedSize))
        writer.u64(size)
        writer.u64(offset)
        InfoChainCodec.appendChain(raw, fixedSize: Self.fixedSize, to: &writer)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        flags = RegionInfoFlags(rawValue: try reader.u32())
        index = try reader.u32()
        let capOffset = try reader.u32()
        size = try reader.u64()
        offset = try reader.u64()
        let raw = try InfoChainCodec.parseChain(
            reader, start: start, argsz: argsz, hasCaps: flags.contains(.caps),
            capOffset: capOffset, fixedSize: Self.fixedSize, context: Self.cName)
        var typed: [RegionInfoCapability] = []
        for capability in raw { typed.append(try RegionInfoCapability(capability)) }
        capabilities = typed
        InfoChainCodec.finish(&reader, start: start, argsz: argsz)
    }
}
