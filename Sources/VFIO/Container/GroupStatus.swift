/// `flags` of `struct vfio_group_status`.
public struct GroupStatusFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_GROUP_FLAGS_VIABLE`: every device in the group is bound to a VFIO driver (or
    /// to none), so the group can be used. A group that is not viable cannot be added to a
    /// container.
    public static let viable = GroupStatusFlags(rawValue: 1 << 0)
    /// `VFIO_GROUP_FLAGS_CONTAINER_SET`: the group has been added to a container.
    public static let containerSet = GroupStatusFlags(rawValue: 1 << 1)
}

/// `struct vfio_group_status`, the reply of `VFIO_GROUP_GET_STATUS` on `/dev/vfio/$GROUP`.
///
/// The caller sends it with `argsz` set and `flags` zero; the kernel fills `flags`.
public struct GroupStatus: ArgszStruct {
    public static let cName = "vfio_group_status"
    /// `sizeof(struct vfio_group_status)`
    public static let fixedSize = 8

    public var flags: GroupStatusFlags

    public init(flags: GroupStatusFlags = []) {
        self.flags = flags
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        flags = GroupStatusFlags(rawValue: try reader.u32())
        reader.offset = start + min(Int(argsz), reader.bytes.count - start)
    }
}
