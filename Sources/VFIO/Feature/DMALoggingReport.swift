/// `struct vfio_device_feature_dma_logging_report`: the data of a GET of
/// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` on the kernel transport, which reads and
/// clears the device's dirty log for `[iova, iova + length)`.
///
/// The bitmap is not inside the feature request: `bitmapPointer` is the user-space
/// address of an array of `UInt64` words, one bit per `pageSize` bytes of IOVA (bit
/// `n % 64` of word `n / 64` for page `n` from `iova`), at least
/// `bitmapWordCount` words long. The kernel only sets bits; the caller zeroes the bitmap
/// first. vfio-user returns the bitmap inline; see `VFIOUserDMALoggingReport`.
///
/// The kernel wants `pageSize` a power of two of at least 4096 (`EINVAL`) and
/// `iova + length` not to overflow (`EOVERFLOW`). After any error the log must be
/// treated as lost (all memory dirty).
public struct DMALoggingReport: KernelStruct {
    public static let cName = "vfio_device_feature_dma_logging_report"
    /// `sizeof(struct vfio_device_feature_dma_logging_report)`
    public static let fixedSize = 32

    /// `iova`: the first IOVA of the range to report.
    public var iova: UInt64
    /// `length`: the size of the range in bytes.
    public var length: UInt64
    /// `page_size`: the bytes of IOVA one bit stands for.
    public var pageSize: UInt64
    /// `bitmap`: the user-space address of the bitmap, supplied by the caller.
    public var bitmapPointer: UInt64

    public init(iova: UInt64, length: UInt64, pageSize: UInt64, bitmapPointer: UInt64) {
        self.iova = iova
        self.length = length
        self.pageSize = pageSize
        self.bitmapPointer = bitmapPointer
    }

    /// The number of 64-bit words the bitmap needs for `length` and `pageSize`
    /// (`nil` when `pageSize` is 0).
    public var bitmapWordCount: UInt64? {
        DMALoggingReport.bitmapWordCount(length: length, pageSize: pageSize)
    }

    /// `ceil(ceil(length / pageSize) / 64)`, or `nil` for a zero page size.
    public static func bitmapWordCount(length: UInt64, pageSize: UInt64) -> UInt64? {
        guard pageSize != 0 else { return nil }
        let pages = length / pageSize + (length % pageSize == 0 ? 0 : 1)
        return pages / 64 + (pages % 64 == 0 ? 0 : 1)
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(iova)
        writer.u64(length)
        writer.u64(pageSize)
        writer.u64(bitmapPointer)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        iova = try reader.u64()
        length = try reader.u64()
        pageSize = try reader.u64()
        bitmapPointer = try reader.u64()
    }
}
