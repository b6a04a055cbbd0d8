/// One usable IOVA window of a type1 container (`struct vfio_iova_range`), reported in
/// the `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE` capability of `VFIO_IOMMU_GET_INFO`.
///
/// Both ends are inclusive: a range covering the whole 64-bit space is
/// `start: 0, end: UInt64.max`. A DMA map outside every reported range fails with `EINVAL`.
public struct Type1IOVARange: KernelStruct, Hashable {
    public static let cName = "vfio_iova_range"
    /// `sizeof(struct vfio_iova_range)`
    public static let fixedSize = 16

    /// The first usable IOVA.
    public var start: UInt64
    /// The last usable IOVA (inclusive).
    public var end: UInt64

    public init(start: UInt64, end: UInt64) {
        self.start = start
        self.end = end
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(start)
        writer.u64(end)
    }

    /// - Throws: `.malformed` when the buffer is short or `end` lies below `start`.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        start = try reader.u64()
        end = try reader.u64()
        if end < start {
            throw .malformed(Self.cName, "range end 0x\(String(end, radix: 16)) lies below its start 0x\(String(start, radix: 16))")
        }
    }
}
