/// One capability in the chain of a `VFIO_IOMMU_GET_INFO` reply (`struct vfio_iommu_type1_info`).
///
/// Known capabilities (version 1) are decoded into typed cases; any other id, or a known
/// id with another version, is kept verbatim as `.unknown`. An `.unknown` value whose id
/// and version match a known capability decodes as that capability after a round trip.
public enum Type1InfoCapability: Sendable, Equatable {
    /// `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE` (id 1,
    /// `struct vfio_iommu_type1_info_cap_iova_range`): the IOVA windows DMA maps may use,
    /// after removing the reserved regions of every device in the container.
    case iovaRanges([Type1IOVARange])
    /// `VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION` (id 2): dirty page logging is available.
    case migration(Type1MigrationCapability)
    /// `VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL` (id 3, `struct vfio_iommu_type1_info_dma_avail`):
    /// how many more DMA mappings the container accepts right now
    /// (the `dma_entry_limit` module parameter minus the mappings in place).
    case dmaAvailable(UInt32)
    /// A capability this library does not model.
    case unknown(InfoCapability)

    /// `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`
    public static let iovaRangeID: UInt16 = 1
    /// `VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION`
    public static let migrationID: UInt16 = Type1MigrationCapability.id
    /// `VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL`
    public static let dmaAvailableID: UInt16 = 3

    /// The generic chain entry (id, version and body) for this capability.
    public var infoCapability: InfoCapability {
        switch self {
        case .iovaRanges(let ranges):
            var writer = ByteWriter(capacity: 8 + ranges.count * Type1IOVARange.fixedSize)
            writer.u32(UInt32(ranges.count))
            writer.u32(0)
            for range in ranges { range.encode(into: &writer) }
            return InfoCapability(id: Self.iovaRangeID, version: 1, body: writer.bytes)
        case .migration(let migration):
            return InfoCapability(id: Self.migrationID, version: Type1MigrationCapability.version, body: migration.body)
        case .dmaAvailable(let avail):
            var writer = ByteWriter(capacity: 4)
            writer.u32(avail)
            return InfoCapability(id: Self.dmaAvailableID, version: 1, body: writer.bytes)
        case .unknown(let capability):
            return capability
        }
    }

    /// Interprets a parsed chain entry.
    ///
    /// - Throws: `.malformed` when a known capability's body is too short, or when the
    ///   IOVA range capability's `nr_iovas` needs more ranges than its body holds.
    public init(_ capability: InfoCapability) throws(VFIOError) {
        guard capability.version == 1 else {
            self = .unknown(capability)
            return
        }
        switch capability.id {
        case Self.iovaRangeID:
            let context = "vfio_iommu_type1_info_cap_iova_range"
            var reader = capability.bodyReader(context)
            let count = try reader.u32()
            try reader.skip(4)
            if UInt64(count) * UInt64(Type1IOVARange.fixedSize) > UInt64(reader.remaining) {
                throw .malformed(context, "nr_iovas \(count) needs \(UInt64(count) * 16) bytes of ranges, the capability body holds \(reader.remaining)")
            }
            var ranges: [Type1IOVARange] = []
            ranges.reserveCapacity(Int(count))
            for _ in 0..<count {
                var one = ByteReader(try reader.bytes(Type1IOVARange.fixedSize), context: context)
                ranges.append(try Type1IOVARange(from: &one))
            }
            self = .iovaRanges(ranges)
        case Self.migrationID:
            self = .migration(try Type1MigrationCapability(body: capability.body))
        case Self.dmaAvailableID:
            var reader = capability.bodyReader("vfio_iommu_type1_info_dma_avail")
            self = .dmaAvailable(try reader.u32())
        default:
            self = .unknown(capability)
        }
    }
}
