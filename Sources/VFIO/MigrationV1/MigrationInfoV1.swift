/// `struct vfio_device_migration_info`: the registers at offset 0 of the deprecated v1
/// migration region (region type `VFIO_REGION_TYPE_MIGRATION_DEPRECATED` = 3, subtype
/// `VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED` = 1; named `..._MIGRATION` before Linux
/// 5.18). Linux 5.8–5.17 drivers and older QEMU releases used it; protocol v2
/// (`VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`) replaced it.
///
/// A v1 user does not transfer this struct at once: it reads and writes single fields
/// at their `Field` offsets, at their own width and alignment (other accesses are
/// undefined and drivers should fail them). This value is for tools and device models
/// that hold the whole register block.
///
/// Saving (pre-copy or stop-and-copy): read `pending_bytes` (starts an iteration; 0
/// means nothing to send); read `data_offset` (the driver returns once data is ready
/// there); read `data_size`; read that many bytes at `data_offset` in the region; read
/// `pending_bytes` again and repeat while non-zero. In stop-and-copy the user iterates
/// until `pending_bytes` is 0. Resuming: read `data_offset`, write the data there,
/// write `data_size` (the driver consumes the data before the write returns).
/// `data_offset` is never 0: the data section follows this struct in the region.
public struct MigrationInfoV1: KernelStruct {
    public static let cName = "vfio_device_migration_info"
    /// `sizeof(struct vfio_device_migration_info)`
    public static let fixedSize = 32

    /// One register of the block: where it is in the region, how wide, and who writes it.
    public enum Field: Sendable, CaseIterable {
        /// `device_state` (read/write, 4 bytes at 0)
        case deviceState
        /// `reserved` (reads 0, writes ignored; 4 bytes at 4)
        case reserved
        /// `pending_bytes` (read only, 8 bytes at 8)
        case pendingBytes
        /// `data_offset` (read only, 8 bytes at 16)
        case dataOffset
        /// `data_size` (read while saving, written while resuming; 8 bytes at 24)
        case dataSize

        /// The field's offset from the start of the migration region.
        public var offset: Int {
            switch self {
            case .deviceState: return 0
            case .reserved: return 4
            case .pendingBytes: return 8
            case .dataOffset: return 16
            case .dataSize: return 24
            }
        }

        /// The field's width in bytes, which is also the only access width allowed.
        public var size: Int {
            switch self {
            case .deviceState, .reserved: return 4
            case .pendingBytes, .dataOffset, .dataSize: return 8
            }
        }

        /// Whether the user may write the field.
        public var isUserWritable: Bool {
            switch self {
            case .deviceState, .dataSize: return true
            case .reserved, .pendingBytes, .dataOffset: return false
            }
        }

        /// The C field name.
        public var cName: String {
            switch self {
            case .deviceState: return "device_state"
            case .reserved: return "reserved"
            case .pendingBytes: return "pending_bytes"
            case .dataOffset: return "data_offset"
            case .dataSize: return "data_size"
            }
        }
    }

    /// `device_state`: the v1 state bits, reserved bits included.
    public var deviceState: MigrationStateV1
    /// `pending_bytes`: bytes still to be migrated.
    public var pendingBytes: UInt64
    /// `data_offset`: where in the region the current data buffer is.
    public var dataOffset: UInt64
    /// `data_size`: bytes in the current data buffer.
    public var dataSize: UInt64

    public init(deviceState: MigrationStateV1 = .running, pendingBytes: UInt64 = 0, dataOffset: UInt64 = 0, dataSize: UInt64 = 0) {
        self.deviceState = deviceState
        self.pendingBytes = pendingBytes
        self.dataOffset = dataOffset
        self.dataSize = dataSize
    }

    /// Writes all fields, `reserved` as 0.
    public func encode(into writer: inout ByteWriter) {
        writer.u32(deviceState.rawValue)
        writer.u32(0)
        writer.u64(pendingBytes)
        writer.u64(dataOffset)
        writer.u64(dataSize)
    }

    /// Reads all fields as they are; `reserved` is skipped and `device_state` is not
    /// judged (a device may report the error state; see `MigrationStateV1.isValid`).
    public init(from reader: inout ByteReader) throws(VFIOError) {
        deviceState = MigrationStateV1(rawValue: try reader.u32())
        try reader.skip(4)
        pendingBytes = try reader.u64()
        dataOffset = try reader.u64()
        dataSize = try reader.u64()
    }
}
