/// `flags` of `struct vfio_device_bind_iommufd`.
///
/// Linux 6.14 defines none (the kernel wants 0); `VFIO_DEVICE_BIND_FLAG_TOKEN` came in
/// Linux 6.17 and is here so that newer requests decode.
public struct BindIOMMUFDFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_DEVICE_BIND_FLAG_TOKEN` (Linux 6.17+): `token_uuid_ptr` points to a VF token.
    public static let token = BindIOMMUFDFlags(rawValue: 1 << 0)
}

/// `struct vfio_device_bind_iommufd` (`VFIO_DEVICE_BIND_IOMMUFD`, on a
/// `/dev/vfio/devices/vfioN` cdev fd only): binds the device to an iommufd and returns
/// the device's id within it.
///
/// Nothing else may be done with the cdev fd before the bind; closing the fd unbinds.
/// The kernel answers `EINVAL` for flags it does not know, a negative `iommufd`, a group
/// fd, or a second bind.
///
/// Linux 6.14's struct is 16 bytes. Linux 6.17 appends `token_uuid_ptr` (the address of
/// a 16-byte VF token, read only with `VFIO_DEVICE_BIND_FLAG_TOKEN`); it is encoded, and
/// `argsz` grows to 24, only when `tokenUUIDPointer` is set.
public struct BindIOMMUFD: ArgszStruct {
    public static let cName = "vfio_device_bind_iommufd"
    /// `sizeof(struct vfio_device_bind_iommufd)` in Linux 6.14.
    public static let fixedSize = 16
    /// The size with Linux 6.17's `token_uuid_ptr`.
    public static let sizeWithToken = 24

    /// `iommufd`: the fd of `/dev/iommu` to bind to.
    public var iommufd: Int32
    /// `out_devid`: written by the kernel, the device's id for iommufd commands.
    public var outDeviceID: UInt32
    /// `token_uuid_ptr` (6.17+): the caller-supplied address of a 16-byte `VFToken`.
    /// Setting it sets `VFIO_DEVICE_BIND_FLAG_TOKEN`.
    public var tokenUUIDPointer: UInt64?

    public init(iommufd: Int32, outDeviceID: UInt32 = 0, tokenUUIDPointer: UInt64? = nil) {
        self.iommufd = iommufd
        self.outDeviceID = outDeviceID
        self.tokenUUIDPointer = tokenUUIDPointer
    }

    /// `flags`, derived from the fields.
    public var flags: BindIOMMUFDFlags { tokenUUIDPointer == nil ? [] : .token }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.i32(iommufd)
        writer.u32(outDeviceID)
        if let tokenUUIDPointer { writer.u64(tokenUUIDPointer) }
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` when `argsz` is below 16, `flags` has unknown bits, or
    ///   `VFIO_DEVICE_BIND_FLAG_TOKEN` is set while `argsz` or the buffer stops before
    ///   `token_uuid_ptr`.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        let flags = BindIOMMUFDFlags(rawValue: try reader.u32())
        let unknown = flags.subtracting(.token)
        if !unknown.isEmpty {
            throw .malformed(Self.cName, "flags 0x\(String(flags.rawValue, radix: 16)) has unknown bits 0x\(String(unknown.rawValue, radix: 16))")
        }
        iommufd = try reader.i32()
        outDeviceID = try reader.u32()
        if flags.contains(.token) {
            if argsz < Self.sizeWithToken {
                throw .malformed(Self.cName, "VFIO_DEVICE_BIND_FLAG_TOKEN needs argsz of at least \(Self.sizeWithToken), got \(argsz)")
            }
            tokenUUIDPointer = try reader.u64()
        } else {
            tokenUUIDPointer = nil
        }
    }
}
