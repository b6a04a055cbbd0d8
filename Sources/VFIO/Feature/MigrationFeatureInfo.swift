/// `struct vfio_device_feature_migration`: the data of a GET of
/// `VFIO_DEVICE_FEATURE_MIGRATION`, saying which v2 migration states the device offers.
///
/// A successful GET means the device migrates; `features` then contains at least
/// `.stopCopy`. A device without migration fails the GET with `ENOTTY`.
public struct MigrationFeatureInfo: KernelStruct {
    public static let cName = "vfio_device_feature_migration"
    /// `sizeof(struct vfio_device_feature_migration)`
    public static let fixedSize = 8

    /// `flags`: `VFIO_MIGRATION_STOP_COPY`, `_P2P`, `_PRE_COPY`.
    public var features: MigrationFeatures

    public init(features: MigrationFeatures = []) {
        self.features = features
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(features.rawValue)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        features = MigrationFeatures(rawValue: try reader.u64())
    }
}
