/// `struct vfio_device_feature_dma_logging_range`: one IOVA range whose DMA writes a
/// device logs after `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`.
///
/// The kernel requires `iova` and `length` to be multiples of the control's page size,
/// the ranges not to overlap and `iova + length` not to overflow (else `EINVAL` /
/// `EOVERFLOW`).
public struct DMALoggingRange: KernelStruct, Hashable {
    public static let cName = "vfio_device_feature_dma_logging_range"
    /// `sizeof(struct vfio_device_feature_dma_logging_range)`
    public static let fixedSize = 16

    /// `iova`: the first IOVA of the range.
    public var iova: UInt64
    /// `length`: the range's size in bytes.
    public var length: UInt64

    public init(iova: UInt64, length: UInt64) {
        self.iova = iova
        self.length = length
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(iova)
        writer.u64(length)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        iova = try reader.u64()
        length = try reader.u64()
    }

    /// Encodes `ranges` as the packed C array the kernel reads through
    /// `DMALoggingControl.rangesPointer` (a separate buffer from the feature request).
    public static func encodeArray(_ ranges: [DMALoggingRange]) -> [UInt8] {
        var writer = ByteWriter(capacity: ranges.count * fixedSize)
        encodeArray(ranges, into: &writer)
        return writer.bytes
    }

    /// Appends `ranges` as a packed C array.
    public static func encodeArray(_ ranges: [DMALoggingRange], into writer: inout ByteWriter) {
        for range in ranges { range.encode(into: &writer) }
    }

    /// Decodes `count` packed ranges from the start of `bytes`.
    /// - Throws: `.malformed` when `bytes` holds fewer than `count` ranges.
    public static func decodeArray(_ bytes: [UInt8], count: Int) throws(VFIOError) -> [DMALoggingRange] {
        var reader = ByteReader(bytes, context: cName)
        return try decodeArray(from: &reader, count: count)
    }

    /// Decodes `count` packed ranges at the reader's offset, checking first that they fit.
    public static func decodeArray(from reader: inout ByteReader, count: Int) throws(VFIOError) -> [DMALoggingRange] {
        guard count >= 0, count <= reader.remaining / fixedSize else {
            throw .malformed(reader.context,
                "\(count) range(s) of \(fixedSize) bytes do not fit the \(max(reader.remaining, 0)) byte(s) left")
        }
        var ranges: [DMALoggingRange] = []
        ranges.reserveCapacity(count)
        for _ in 0..<count { ranges.append(try DMALoggingRange(from: &reader)) }
        return ranges
    }
}
