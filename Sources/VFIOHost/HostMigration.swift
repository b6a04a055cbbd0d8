import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// Migration v2 through the kernel: `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE` moves the
/// device and may return a `data_fd`, which `HostMigrationStream` reads or writes;
/// dirty-page logging is `VFIO_DEVICE_FEATURE_DMA_LOGGING_*` with user pointers to the
/// range array and the bitmap.
extension HostDevice {
    /// The largest dirty bitmap `reportDirtyPages` allocates: 1 GiB (2^33 pages, 32 TiB
    /// of IOVA at 4 KiB). A larger request is `.invalidArgument`; report it in pieces.
    public static let maximumDirtyBitmapBytes: UInt64 = 1 << 30

    /// SET `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`. The kernel walks the arcs to `state`;
    /// when the walk opens a data session it returns its `data_fd`, wrapped here in a
    /// `HostMigrationStream` that owns it (closed with the stream). A move that opens no
    /// session (`data_fd` -1, e.g. PRE_COPY -> STOP_COPY, which keeps the stream PRE_COPY
    /// opened) returns `nil`.
    ///
    /// - Throws: the ioctl's errno, with the operation naming the feature, the target
    ///   state and the state the device is in afterwards (read back with a GET), e.g.
    ///   `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET STOP (the device is now in RESUMING)`.
    public func setMigrationState(_ state: MigrationState) throws(VFIOError) -> (any MigrationDataStream)? {
        try setMigrationStateReturningStream(state)
    }

    /// `setMigrationState(_:)` with the concrete stream type.
    public func setMigrationStateReturningStream(_ state: MigrationState) throws(VFIOError) -> HostMigrationStream? {
        let name = "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET \(state)"
        let fd = try descriptor.requireOpen(name)
        var bytes = DeviceFeature.set(.migrationDeviceState(MigrationStateFeature(deviceState: state))).encoded()
        do {
            try ioctl.call(name, fd, CVFIO_VFIO_DEVICE_FEATURE, &bytes)
        } catch {
            let now = (try? migrationState()).map { "the device is now in \($0)" } ?? "its state is unreadable"
            throw VFIOError("\(name) (\(now))", error.reason)
        }
        // struct vfio_device_feature_mig_state follows the 8-byte header: device_state,
        // then data_fd. Taken first, so that nothing below can leak it.
        let offset = DeviceFeature.fixedSize + 4
        let dataFD = Int32(bitPattern: UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8
                           | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24)
        guard dataFD >= 0 else { return nil }
        return HostMigrationStream(descriptor: OwnedDescriptor(dataFD), openedBy: state, system: ioctl.system)
    }

    /// SET `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`: the ranges go in a separate packed
    /// array whose address is the control's `ranges`; the array lives until the ioctl
    /// returns. Returns the page size the kernel wrote back.
    /// - Throws: `.invalidArgument` for more than 2^32-1 ranges; the ioctl's errno
    ///   (`EINVAL` for no ranges or unaligned ones, `E2BIG` for too many, `EBUSY` when
    ///   logging is on already, `ENOTTY` when the device cannot log).
    public func startDirtyLogging(ranges: [DMALoggingRange], pageSize: UInt64) throws(VFIOError) -> UInt64 {
        let name = "VFIO_DEVICE_FEATURE_DMA_LOGGING_START"
        guard let count = UInt32(exactly: ranges.count) else {
            throw .invalidArgument(name, "\(ranges.count) ranges do not fit num_ranges")
        }
        let fd = try descriptor.requireOpen(name)
        let encoded = DMALoggingRange.encodeArray(ranges)
        let array = UnsafeMutableRawBufferPointer.allocate(byteCount: max(encoded.count, DMALoggingRange.fixedSize), alignment: 8)
        defer { array.deallocate() }
        array.copyBytes(from: encoded)
        let pointer = UInt64(UInt(bitPattern: array.baseAddress))
        let control = DMALoggingControl(pageSize: pageSize, numRanges: count, rangesPointer: ranges.isEmpty ? 0 : pointer)
        var bytes = DeviceFeature.set(.dmaLoggingStart(control)).encoded()
        try ioctl.call(name, fd, CVFIO_VFIO_DEVICE_FEATURE, &bytes)
        let chosen = try DMALoggingControl(decoding: Array(bytes[DeviceFeature.fixedSize...]))
        return chosen.pageSize
    }

    /// SET `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP`.
    public func stopDirtyLogging() throws(VFIOError) {
        let name = "VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP"
        var bytes = DeviceFeature.set(.dmaLoggingStop).encoded()
        try ioctl.call(name, try descriptor.requireOpen(name), CVFIO_VFIO_DEVICE_FEATURE, &bytes)
    }

    /// GET `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` into a zeroed bitmap of
    /// `ceil(ceil(length / pageSize) / 64)` words whose address is the report's `bitmap`.
    /// - Throws: `.invalidArgument` for a zero page size or a bitmap over
    ///   `maximumDirtyBitmapBytes`; the ioctl's errno (`EINVAL` for a page size that is
    ///   not a power of two of at least 4096 or logging that is off, `EOVERFLOW`).
    public func reportDirtyPages(iova: UInt64, length: UInt64, pageSize: UInt64) throws(VFIOError) -> [UInt64] {
        let name = "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT"
        guard let words = DMALoggingReport.bitmapWordCount(length: length, pageSize: pageSize) else {
            throw .invalidArgument(name, "page size 0")
        }
        guard words <= HostDevice.maximumDirtyBitmapBytes / 8 else {
            throw .invalidArgument(name, "a bitmap of \(words) words for \(length) bytes at \(pageSize)-byte pages is over \(HostDevice.maximumDirtyBitmapBytes) bytes; report smaller ranges")
        }
        let fd = try descriptor.requireOpen(name)
        let bitmap = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: max(Int(words), 1))
        defer { bitmap.deallocate() }
        bitmap.initialize(repeating: 0)
        let pointer = UInt64(UInt(bitPattern: bitmap.baseAddress))
        let report = DMALoggingReport(iova: iova, length: length, pageSize: pageSize, bitmapPointer: words == 0 ? 0 : pointer)
        var bytes = DeviceFeature.get(.dmaLoggingReport(report)).encoded()
        try ioctl.call(name, fd, CVFIO_VFIO_DEVICE_FEATURE, &bytes)
        return bitmap.prefix(Int(words)).map { UInt64(littleEndian: $0) }
    }
}

/// The `data_fd` of a kernel migration session, as a `MigrationDataStream`. Owns the
/// descriptor: `close()` or the last reference closes it (the kernel's end of the
/// session as far as this process goes; the device keeps its own reference until the
/// arc that ends the session).
///
/// The fd is a stream (`stream_open`): it is read and written with `read(2)` and
/// `write(2)`, never at an offset.
public final class HostMigrationStream: MigrationDataStream {
    public let descriptor: OwnedDescriptor
    /// The state whose move opened the stream (PRE_COPY, PRE_COPY_P2P, STOP_COPY or
    /// RESUMING).
    public let openedBy: MigrationState
    let system: HostSystem

    public init(descriptor: OwnedDescriptor, openedBy: MigrationState, system: HostSystem = .live) {
        self.descriptor = descriptor
        self.openedBy = openedBy
        self.system = system
    }

    /// `read(2)` of up to `buffer.count` bytes, retried on `EINTR`. 0 is the end of the
    /// data: in STOP_COPY the end of the stream; in PRE_COPY(_P2P) "nothing more for
    /// now", which the kernel answers either with 0 (mtty) or `ENOMSG` (mapped to 0).
    /// - Throws: `EBADF` once closed; any other errno of `read`, named
    ///   `migration data read`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int {
        let name = "migration data read"
        let fd = try descriptor.requireOpen(name)
        guard buffer.count > 0 else { return 0 }
        do {
            return try SystemCall.retryingNegatedErrno(name) { system.read(fd, buffer) }
        } catch where error.errnoValue == ENOMSG {
            return 0
        }
    }

    /// `write(2)` of all of `buffer`: short writes continue where they stopped, `EINTR`
    /// is retried.
    /// - Throws: `EBADF` once closed; any other errno of `write` (a device refusing the
    ///   data: mtty answers `EFAULT` for a header it does not accept, `ENOMEM` past its
    ///   state's size), or `EIO` for a write that takes nothing, named
    ///   `migration data write` with the bytes written so far.
    public func write(from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        let name = "migration data write"
        let fd = try descriptor.requireOpen(name)
        var done = 0
        while done < buffer.count {
            let put = try SystemCall.retryingNegatedErrno("\(name) (after \(done) of \(buffer.count) bytes)") {
                system.write(fd, UnsafeRawBufferPointer(rebasing: buffer[done...]))
            }
            if put == 0 { throw .errno("\(name) (after \(done) of \(buffer.count) bytes)", EIO) }
            done += put
        }
    }

    /// `VFIO_MIG_GET_PRECOPY_INFO` on the data fd.
    /// - Throws: `EINVAL` outside PRE_COPY and PRE_COPY_P2P, `ENOTTY` on a resuming
    ///   stream, `EBADF` once closed.
    public func precopyInfo() throws(VFIOError) -> PrecopyInfo {
        let name = "VFIO_MIG_GET_PRECOPY_INFO"
        let ioctl = Ioctl(system: system)
        var bytes = PrecopyInfo().encoded()
        try ioctl.call(name, try descriptor.requireOpen(name), CVFIO_VFIO_MIG_GET_PRECOPY_INFO, &bytes)
        return try PrecopyInfo(decoding: bytes)
    }

    public func close() { descriptor.close() }
}
