/// One mmap-able area of a region (`struct vfio_region_sparse_mmap_area`), relative to the
/// region's start.
public struct SparseMmapArea: Sendable, Hashable {
    /// `sizeof(struct vfio_region_sparse_mmap_area)`
    public static let size = 16

    public var offset: UInt64
    public var size: UInt64

    public init(offset: UInt64, size: UInt64) {
        self.offset = offset
        self.size = size
    }
}

/// One capability of a `vfio_region_info` reply, typed when this package knows its id,
/// else kept raw.
///
/// The NVLink2 capabilities are deprecated (Linux no longer provides them) and are kept so
/// that replies from old kernels and peers still decode.
public enum RegionInfoCapability: Sendable, Equatable {
    /// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`: only these areas of the region may be mapped
    /// (mapping elsewhere, e.g. over an MSI-X table, fails or misbehaves).
    case sparseMmap([SparseMmapArea])
    /// `VFIO_REGION_INFO_CAP_TYPE`: what a device-specific region is.
    case type(RegionType)
    /// `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`: the MSI-X table and PBA of this BAR may be
    /// mapped (MSI-X is still configured with `VFIO_DEVICE_SET_IRQS`). No body.
    case msixMappable
    /// `VFIO_REGION_INFO_CAP_NVLINK2_SSATGT` (deprecated): the GPU RAM's system address.
    case nvlink2SSATarget(UInt64)
    /// `VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD` (deprecated): the NVLink link speed.
    case nvlink2LinkSpeed(UInt32)
    /// Any other id or version.
    case unknown(InfoCapability)

    /// `VFIO_REGION_INFO_CAP_SPARSE_MMAP`
    public static let sparseMmapID: UInt16 = 1
    /// `VFIO_REGION_INFO_CAP_TYPE`
    public static let typeID: UInt16 = 2
    /// `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`
    public static let msixMappableID: UInt16 = 3
    /// `VFIO_REGION_INFO_CAP_NVLINK2_SSATGT`
    public static let nvlink2SSATargetID: UInt16 = 4
    /// `VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD`
    public static let nvlink2LinkSpeedID: UInt16 = 5

    /// Decodes a raw capability; every known id is version 1. A known id whose body is too
    /// short, or a sparse-mmap `nr_areas` larger than the body, throws `.malformed`.
    public init(_ raw: InfoCapability) throws(VFIOError) {
        guard raw.version == 1 else {
            self = .unknown(raw)
            return
        }
        switch raw.id {
        case Self.sparseMmapID:
            var reader = ByteReader(raw.body, context: "vfio_region_info_cap_sparse_mmap")
            let count = try reader.u32()
            try reader.skip(4)  // reserved
            if UInt64(count) * UInt64(SparseMmapArea.size) > UInt64(reader.remaining) {
                throw .malformed(reader.context, "nr_areas \(count) needs \(UInt64(count) * 16) bytes, the capability has \(reader.remaining)")
            }
            var areas: [SparseMmapArea] = []
            areas.reserveCapacity(Int(count))
            for _ in 0..<count {
                areas.append(SparseMmapArea(offset: try reader.u64(), size: try reader.u64()))
            }
            self = .sparseMmap(areas)
        case Self.typeID:
            var reader = ByteReader(raw.body, context: "vfio_region_info_cap_type")
            self = .type(RegionType(type: try reader.u32(), subtype: try reader.u32()))
        case Self.msixMappableID:
            self = .msixMappable
        case Self.nvlink2SSATargetID:
            var reader = ByteReader(raw.body, context: "vfio_region_info_cap_nvlink2_ssatgt")
            self = .nvlink2SSATarget(try reader.u64())
        case Self.nvlink2LinkSpeedID:
            var reader = ByteReader(raw.body, context: "vfio_region_info_cap_nvlink2_lnkspd")
            self = .nvlink2LinkSpeed(try reader.u32())
        default:
            self = .unknown(raw)
        }
    }

    /// The raw capability (id, version, body without the chain's padding).
    public var infoCapability: InfoCapability {
        var writer = ByteWriter(capacity: 16)
        switch self {
        case .sparseMmap(let areas):
            writer.u32(UInt32(areas.count))
            writer.u32(0)
            for area in areas {
                writer.u64(area.offset)
                writer.u64(area.size)
            }
            return InfoCapability(id: Self.sparseMmapID, version: 1, body: writer.bytes)
        case .type(let type):
            writer.u32(type.type)
            writer.u32(type.subtype)
            return InfoCapability(id: Self.typeID, version: 1, body: writer.bytes)
        case .msixMappable:
            return InfoCapability(id: Self.msixMappableID, version: 1, body: [])
        case .nvlink2SSATarget(let target):
            writer.u64(target)
            return InfoCapability(id: Self.nvlink2SSATargetID, version: 1, body: writer.bytes)
        case .nvlink2LinkSpeed(let speed):
            writer.u32(speed)
            writer.u32(0)  // __pad
            return InfoCapability(id: Self.nvlink2LinkSpeedID, version: 1, body: writer.bytes)
        case .unknown(let raw):
            return raw
        }
    }
}
