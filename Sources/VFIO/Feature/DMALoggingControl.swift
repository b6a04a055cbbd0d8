/// `struct vfio_device_feature_dma_logging_control`: the data of a SET of
/// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` on the kernel transport.
///
/// The ranges are not inside the feature request: `rangesPointer` is the user-space
/// address of a separate array of `num_ranges` `DMALoggingRange`s (build it with
/// `DMALoggingRange.encodeArray(_:)`, keep it alive and pinned during the ioctl, and pass
/// its address). vfio-user has no pointers and carries the ranges inline; see
/// `VFIOUserDMALoggingControl`.
///
/// The kernel refuses `numRanges` = 0 (`EINVAL`) and more ranges than fit one page
/// (`E2BIG`: 256 with 4 KiB pages). On success it writes back the page size the device
/// chose into `pageSize`. Only one START may be active; STOP ends it.
public struct DMALoggingControl: KernelStruct {
    public static let cName = "vfio_device_feature_dma_logging_control"
    /// `sizeof(struct vfio_device_feature_dma_logging_control)`
    public static let fixedSize = 24

    /// `page_size`: the tracking granularity asked for; on return, the one chosen.
    public var pageSize: UInt64
    /// `num_ranges`: how many ranges the array at `rangesPointer` holds.
    public var numRanges: UInt32
    /// `ranges`: the user-space address of the range array, supplied by the caller.
    public var rangesPointer: UInt64

    public init(pageSize: UInt64, numRanges: UInt32, rangesPointer: UInt64) {
        self.pageSize = pageSize
        self.numRanges = numRanges
        self.rangesPointer = rangesPointer
    }

    /// Writes the fields and a zero `__reserved` word.
    public func encode(into writer: inout ByteWriter) {
        writer.u64(pageSize)
        writer.u32(numRanges)
        writer.u32(0)
        writer.u64(rangesPointer)
    }

    /// Reads the fields; `__reserved` is not checked (the kernel ignores it).
    public init(from reader: inout ByteReader) throws(VFIOError) {
        pageSize = try reader.u64()
        numRanges = try reader.u32()
        try reader.skip(4)
        rangesPointer = try reader.u64()
    }
}
