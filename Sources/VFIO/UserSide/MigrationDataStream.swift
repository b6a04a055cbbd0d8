/// The data stream of a device in a saving or resuming migration state.
public protocol MigrationDataStream: AnyObject, Sendable {
    /// Reads up to `buffer.count` bytes of the device's state. Returns 0 at the end of
    /// the data: in STOP_COPY the end of the stream; in PRE_COPY(_P2P) only "nothing more for
    /// now" (the kernel's ENOMSG), more may come.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int

    /// Writes all of `buffer` to a device in RESUMING.
    func write(from buffer: UnsafeRawBufferPointer) throws(VFIOError)

    /// `VFIO_MIG_GET_PRECOPY_INFO`: pre-copy progress (PRE_COPY states only).
    func precopyInfo() throws(VFIOError) -> PrecopyInfo

    /// Ends the stream early (the kernel's close of `data_fd`). Released streams close too.
    func close()
}

extension VFIODevice {
    /// GET `VFIO_DEVICE_FEATURE_MIGRATION`: the migration features the device offers.
    /// - Throws: `ENOTTY` when the device does not migrate.
    public func migrationFeatures() throws(VFIOError) -> MigrationFeatures {
        let reply = try feature(.get(.migration(MigrationFeatureInfo())))
        guard case .migration(let info) = reply else {
            throw .malformed("VFIO_DEVICE_FEATURE_MIGRATION", "the reply carries no migration data")
        }
        return info.features
    }

    /// GET `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`: the current migration state.
    public func migrationState() throws(VFIOError) -> MigrationState {
        let reply = try feature(.get(.migrationDeviceState(MigrationStateFeature(deviceState: .error))))
        guard case .migrationDeviceState(let state) = reply else {
            throw .malformed("VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE", "the reply carries no state")
        }
        return state.deviceState
    }

    /// GET `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`: the estimated size of the stop-copy data.
    public func migrationDataSize() throws(VFIOError) -> UInt64 {
        let reply = try feature(.get(.migrationDataSize(MigrationDataSize(stopCopyLength: 0))))
        guard case .migrationDataSize(let size) = reply else {
            throw .malformed("VFIO_DEVICE_FEATURE_MIG_DATA_SIZE", "the reply carries no size")
        }
        return size.stopCopyLength
    }
}
