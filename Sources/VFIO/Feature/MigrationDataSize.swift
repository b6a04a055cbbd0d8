/// `struct vfio_device_feature_mig_data_size`: the data of a GET of
/// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`, valid in any migration state.
public struct MigrationDataSize: KernelStruct {
    public static let cName = "vfio_device_feature_mig_data_size"
    /// `sizeof(struct vfio_device_feature_mig_data_size)`
    public static let fixedSize = 8

    /// `stop_copy_length`: the estimated bytes the STOP_COPY phase will produce.
    public var stopCopyLength: UInt64

    public init(stopCopyLength: UInt64) {
        self.stopCopyLength = stopCopyLength
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(stopCopyLength)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        stopCopyLength = try reader.u64()
    }
}
