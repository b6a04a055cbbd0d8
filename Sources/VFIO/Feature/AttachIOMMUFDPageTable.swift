/// `flags` of `struct vfio_device_attach_iommufd_pt`.
public struct AttachIOMMUFDPageTableFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_DEVICE_ATTACH_PASID` (Linux 6.15): attach one PASID of the device, given in `pasid`.
    public static let pasid = AttachIOMMUFDPageTableFlags(rawValue: 1 << 0)
}

/// `struct vfio_device_attach_iommufd_pt` (`VFIO_DEVICE_ATTACH_IOMMUFD_PT`, cdev fds
/// only): attaches the device, or one of its PASIDs, to an IOAS or a hardware page table
/// of the bound iommufd.
///
/// In: `pageTableID` names an IOAS or HWPT. Out: the kernel rewrites it with the id of
/// the HWPT actually attached (for an IOAS, possibly one it created). Attaching again
/// without a detach replaces the page table. Errors: `EINVAL` for unknown flags or a
/// short `argsz`, `EOPNOTSUPP` for a PASID attach the driver cannot do, `EBUSY` while
/// the device or a sibling in its group is being reset.
///
/// Encoded as Linux 6.14 has it, 12 bytes (`argsz`, `flags`, `pt_id`), unless a PASID is
/// asked for: then as 16 bytes with `pasid` and `VFIO_DEVICE_ATTACH_PASID`, the form
/// Linux 6.15 added (older kernels answer `EINVAL` to any flag). The decoder accepts both.
public struct AttachIOMMUFDPageTable: ArgszStruct {
    public static let cName = "vfio_device_attach_iommufd_pt"
    /// `sizeof(struct vfio_device_attach_iommufd_pt)` in Linux 6.14 (`offsetofend(pt_id)`,
    /// also the smallest `argsz` every kernel accepts).
    public static let fixedSize = 12
    /// `offsetofend(pt_id)`: the smallest `argsz` the kernel accepts.
    public static let minimumSize = 12
    /// The size with `pasid` (Linux 6.15 and later).
    public static let pasidSize = 16

    /// `pt_id`: the IOAS or HWPT id in; the attached HWPT id out.
    public var pageTableID: UInt32
    /// `pasid` with `VFIO_DEVICE_ATTACH_PASID`; `nil` attaches the whole device.
    public var pasid: UInt32?

    public init(pageTableID: UInt32, pasid: UInt32? = nil) {
        self.pageTableID = pageTableID
        self.pasid = pasid
    }

    /// `flags`, derived from `pasid`.
    public var flags: AttachIOMMUFDPageTableFlags { pasid == nil ? [] : .pasid }

    /// Writes 12 bytes, or 16 with `pasid`.
    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.u32(pageTableID)
        if let pasid { writer.u32(pasid) }
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` when `argsz` is below 12, `flags` has unknown bits, the
    ///   PASID flag is set while `argsz` stops before `pasid`, or the buffer is shorter
    ///   than `argsz` says (up to 16 bytes).
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let argsz = try reader.argsz(fixedSize: Self.minimumSize)
        let flags = AttachIOMMUFDPageTableFlags(rawValue: try reader.u32())
        let unknown = flags.subtracting(.pasid)
        if !unknown.isEmpty {
            throw .malformed(Self.cName, "flags 0x\(String(flags.rawValue, radix: 16)) has unknown bits 0x\(String(unknown.rawValue, radix: 16))")
        }
        pageTableID = try reader.u32()
        if flags.contains(.pasid) {
            if argsz < Self.pasidSize {
                throw .malformed(Self.cName, "VFIO_DEVICE_ATTACH_PASID needs argsz of at least \(Self.pasidSize), got \(argsz)")
            }
            pasid = try reader.u32()
        } else {
            pasid = nil
            if argsz >= Self.pasidSize { try reader.skip(4) }
        }
    }
}
