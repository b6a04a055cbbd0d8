/// A `VFIODevice` whose transport carries migration v2: the device state feature, the
/// data stream, and dirty-page logging of the device's DMA.
///
/// Over the kernel the stream is the `data_fd` that `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`
/// returns; over vfio-user it is `VFIO_USER_MIG_DATA_READ` / `_WRITE`. Whether the device
/// itself migrates is `migrationFeatures()` (ENOTTY when it does not).
public protocol MigratableVFIODevice: VFIODevice {
    /// SET `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`: the device walks the arcs to `state`.
    ///
    /// Returns a new data stream when the move opened one: entering PRE_COPY,
    /// PRE_COPY_P2P, STOP_COPY or RESUMING from a state without a stream. A stream opened in
    /// PRE_COPY continues into STOP_COPY (no new stream is returned then): keep reading it.
    /// - Throws: `EINVAL` for a state the device does not support or an arc it refuses;
    ///   after a failed arc the device may be in ERROR (read it with `migrationState()`),
    ///   which only `reset()` leaves.
    func setMigrationState(_ state: MigrationState) throws(VFIOError) -> (any MigrationDataStream)?

    /// DMA_LOGGING_START: record the pages the device writes by DMA inside `ranges`, at
    /// `pageSize` (a power of two; the device may raise it: the one in use is returned).
    func startDirtyLogging(ranges: [DMALoggingRange], pageSize: UInt64) throws(VFIOError) -> UInt64

    /// DMA_LOGGING_STOP.
    func stopDirtyLogging() throws(VFIOError)

    /// DMA_LOGGING_REPORT: the pages written in `[iova, iova + length)` since the last
    /// report, one bit per `pageSize` page (little-endian 64-bit words, bit i = page i), and
    /// cleared.
    func reportDirtyPages(iova: UInt64, length: UInt64, pageSize: UInt64) throws(VFIOError) -> [UInt64]
}

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
