import VFIO

/// A model attached to a server through the kit: the one object a server keeps per
/// device. It puts a `TrackingContext` between the model and the server's context (DMA
/// dirty logging, interrupts held while stopped) and, when the model migrates, a
/// `MigrationDriver`.
///
/// ```swift
/// let device = try AttachedDevice(model: EduDevice(), context: serverContext)
/// // DEVICE_FEATURE MIGRATION:       device.migration?.features (absent: ENOTTY)
/// // MIG_DEVICE_STATE GET / SET:     migration.currentState / migration.setState(_:)
/// // MIG_DATA_SIZE:                  migration.dataSize()
/// // MIG_DATA_READ / WRITE:          migration.readData(max:) / migration.writeData(_:)
/// // DMA_LOGGING_START / STOP:       device.tracker.startDMALogging(ranges:pageSize:) / stopDMALogging()
/// // DMA_LOGGING_REPORT:             device.tracker.reportDirtyPages(iova:length:pageSize:)
/// // DEVICE_RESET:                   device.reset()
/// ```
public final class AttachedDevice: Sendable {
    public let model: any DeviceModel
    /// The context the model is attached to (wrapping the server's).
    public let tracker: TrackingContext
    /// The migration driver, or `nil` when the model does not migrate.
    public let migration: MigrationDriver?

    /// Wraps `context`, attaches `model` to the wrapper (`attach(_:)` is called here: the
    /// server must not call it itself) and builds the migration driver, which keeps a
    /// resuming stream (up to `maximumStreamSize` bytes) in memory from `bufferAllocator`.
    /// - Throws: `VFIOError.invalidArgument` when the model's migration features lack
    ///   STOP_COPY.
    public init(model: any DeviceModel, context: any DeviceContext, maximumStreamSize: Int = 1 << 30,
                bufferAllocator: any BufferAllocator = HeapBufferAllocator()) throws(VFIOError) {
        self.model = model
        let tracker = TrackingContext(wrapping: context)
        self.tracker = tracker
        model.attach(tracker)
        if let migratable = model.migration {
            migration = try MigrationDriver(device: migratable, tracker: tracker, maximumStreamSize: maximumStreamSize,
                                            bufferAllocator: bufferAllocator)
        } else {
            migration = nil
        }
    }

    /// `VFIO_DEVICE_RESET`: the migration state back to RUNNING (streams dropped, the
    /// model running), then the model's own `reset()`. DMA logging stays on.
    public func reset() throws(VFIOError) {
        try migration?.reset()
        try model.reset()
    }
}
