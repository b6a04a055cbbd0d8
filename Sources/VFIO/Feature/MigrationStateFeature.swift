/// `struct vfio_device_feature_mig_state`: the data of `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`.
///
/// SET moves the device to `deviceState` (through the kernel's combination path) and,
/// when the move starts a data transfer session (entering STOP_COPY, PRE_COPY,
/// PRE_COPY_P2P from outside the saving group, or RESUMING), returns the session's file
/// descriptor in `dataFD`, which the caller must close. GET returns the current state
/// with `dataFD` = -1. A failed SET may leave the device anywhere along the path, or in
/// ERROR. vfio-user does not use `dataFD` (migration data travels in
/// `VFIO_USER_MIG_DATA_READ/WRITE` messages).
public struct MigrationStateFeature: KernelStruct {
    public static let cName = "vfio_device_feature_mig_state"
    /// `sizeof(struct vfio_device_feature_mig_state)`
    public static let fixedSize = 8

    /// `device_state`, an `enum vfio_device_mig_state` value.
    public var deviceState: MigrationState
    /// `data_fd`: the data session's fd, or -1 (also what a caller sends on SET).
    public var dataFD: Int32

    public init(deviceState: MigrationState, dataFD: Int32 = -1) {
        self.deviceState = deviceState
        self.dataFD = dataFD
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(deviceState.rawValue)
        writer.i32(dataFD)
    }

    /// - Throws: `.malformed` when `device_state` is not one of the eight states of 6.14.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let raw = try reader.u32()
        guard let state = MigrationState(rawValue: raw) else {
            throw .malformed(Self.cName, "device_state \(raw) is not a vfio_device_mig_state (0...7)")
        }
        deviceState = state
        dataFD = try reader.i32()
    }
}
