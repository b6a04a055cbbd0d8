/// The data of `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` as vfio-user carries it
/// (QEMU's docs/interop/vfio-user.rst): the kernel's control struct with the range
/// array inline at offset 16, where the kernel has the `ranges` pointer.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | page_size |
/// | 8 | 4 | num_ranges (the count of `ranges`) |
/// | 12 | 4 | reserved (0) |
/// | 16 | 16 × num_ranges | ranges (`DMALoggingRange`) |
///
/// The spec lets `num_ranges` be 0 to ask for logging of all writes (the kernel refuses
/// 0). The reply carries the same data, with the page size the server chose.
public struct VFIOUserDMALoggingControl: KernelStruct {
    /// The spec's name for this layout (not a struct of `<linux/vfio.h>`).
    public static let cName = "vfio_user_device_feature_dma_logging_control"
    /// The part before the inline ranges.
    public static let fixedSize = 16

    /// `page_size`: the tracking granularity asked for; in the reply, the one chosen.
    public var pageSize: UInt64
    /// The ranges to log; `num_ranges` is their count.
    public var ranges: [DMALoggingRange]

    public init(pageSize: UInt64, ranges: [DMALoggingRange]) {
        self.pageSize = pageSize
        self.ranges = ranges
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(pageSize)
        writer.u32(UInt32(ranges.count))
        writer.u32(0)
        DMALoggingRange.encodeArray(ranges, into: &writer)
    }

    /// - Throws: `.malformed` when the data is shorter than `num_ranges` ranges.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        pageSize = try reader.u64()
        let count = try reader.u32()
        try reader.skip(4)
        ranges = try DMALoggingRange.decodeArray(from: &reader, count: Int(count))
    }
}

/// The data of `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` as vfio-user carries it
/// (QEMU's docs/interop/vfio-user.rst): the request is the kernel's struct without the
/// `bitmap` pointer; the reply repeats it and appends the bitmap inline at offset 24.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | iova |
/// | 8 | 8 | length |
/// | 16 | 8 | page_size (a power of two) |
/// | 24 | 8 × words | bitmap (reply only) |
///
/// `words` is `DMALoggingReport.bitmapWordCount(length:pageSize:)`: one bit per page,
/// rounded up to whole 64-bit words; bits past the range are zero.
public struct VFIOUserDMALoggingReport: KernelStruct {
    /// The spec's name for this layout (not a struct of `<linux/vfio.h>`).
    public static let cName = "vfio_user_device_feature_dma_logging_report"
    /// The request part (iova, length, page_size).
    public static let fixedSize = 24

    /// `iova`: the first IOVA of the range.
    public var iova: UInt64
    /// `length`: the size of the range in bytes.
    public var length: UInt64
    /// `page_size`: the bytes of IOVA one bit stands for.
    public var pageSize: UInt64
    /// The dirty bitmap: `nil` in a request, the words in a reply.
    public var bitmap: [UInt64]?

    public init(iova: UInt64, length: UInt64, pageSize: UInt64, bitmap: [UInt64]? = nil) {
        self.iova = iova
        self.length = length
        self.pageSize = pageSize
        self.bitmap = bitmap
    }

    /// Writes the three fields, then the bitmap words when present.
    public func encode(into writer: inout ByteWriter) {
        writer.u64(iova)
        writer.u64(length)
        writer.u64(pageSize)
        if let bitmap {
            for word in bitmap { writer.u64(word) }
        }
    }

    /// Reads a request when nothing follows the three fields, else a reply whose bitmap
    /// must hold exactly the words `length` and `pageSize` call for.
    ///
    /// - Throws: `.malformed` for a reply whose page size is not a power of two, or whose
    ///   bitmap is shorter than needed. Bytes after the bitmap are ignored.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        iova = try reader.u64()
        length = try reader.u64()
        pageSize = try reader.u64()
        if reader.remaining == 0 {
            bitmap = nil
            return
        }
        guard pageSize != 0, pageSize & (pageSize - 1) == 0,
              let words = DMALoggingReport.bitmapWordCount(length: length, pageSize: pageSize) else {
            throw .malformed(Self.cName, "page_size \(pageSize) is not a power of two, so the bitmap's size is unknown")
        }
        guard words <= UInt64(reader.remaining / 8) else {
            throw .malformed(Self.cName,
                "bitmap of \(length) bytes at page size \(pageSize) needs \(words) word(s), only \(reader.remaining) byte(s) follow")
        }
        var result: [UInt64] = []
        result.reserveCapacity(Int(words))
        for _ in 0..<Int(words) { result.append(try reader.u64()) }
        bitmap = result
    }
}
