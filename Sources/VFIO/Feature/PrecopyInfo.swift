/// `struct vfio_precopy_info`: the reply of `VFIO_MIG_GET_PRECOPY_INFO`, an ioctl on
/// the migration data fd (not the device fd) while the device is in PRE_COPY or
/// PRE_COPY_P2P (`EINVAL` in any other state).
///
/// Both sizes are estimates. `initialBytes` starts non-zero and falls as the initial
/// data is read; leaving PRE_COPY before it reaches 0 may slow the migration.
/// `dirtyBytes` starts at 0 and tracks state changed since it was last read. When both
/// are 0 the stream is at a temporary end: `read()` fails with `ENOMSG` until more data
/// appears (wait with `poll`). Devices offering `VFIO_MIGRATION_PRE_COPY` must support it.
public struct PrecopyInfo: ArgszStruct {
    public static let cName = "vfio_precopy_info"
    /// `sizeof(struct vfio_precopy_info)`
    public static let fixedSize = 24

    /// `flags`: none defined in 6.14; kept as given.
    public var flags: UInt32
    /// `initial_bytes`: initial pre-copy data still available, in bytes.
    public var initialBytes: UInt64
    /// `dirty_bytes`: data dirtied since last read, in bytes.
    public var dirtyBytes: UInt64

    public init(flags: UInt32 = 0, initialBytes: UInt64 = 0, dirtyBytes: UInt64 = 0) {
        self.flags = flags
        self.initialBytes = initialBytes
        self.dirtyBytes = dirtyBytes
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags)
        writer.u64(initialBytes)
        writer.u64(dirtyBytes)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` when `argsz` is below 24 or the buffer is shorter.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        _ = try reader.argsz(fixedSize: Self.fixedSize)
        flags = try reader.u32()
        initialBytes = try reader.u64()
        dirtyBytes = try reader.u64()
    }
}
