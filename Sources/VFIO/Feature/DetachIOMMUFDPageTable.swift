/// `flags` of `struct vfio_device_detach_iommufd_pt`.
public struct DetachIOMMUFDPageTableFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_DEVICE_DETACH_PASID` (Linux 6.15): detach one PASID of the device, given in `pasid`.
    public static let pasid = DetachIOMMUFDPageTableFlags(rawValue: 1 << 0)
}

/// `struct vfio_device_detach_iommufd_pt` (`VFIO_DEVICE_DETACH_IOMMUFD_PT`, cdev fds
/// only): detaches the device, or one of its PASIDs, from its page table, leaving it
/// blocked from DMA.
///
/// Encoded as Linux 6.14 has it, 8 bytes (`argsz`, `flags`), unless a PASID is asked for:
/// then as 12 bytes with `pasid` and `VFIO_DEVICE_DETACH_PASID`, the form Linux 6.15
/// added (older kernels answer `EINVAL` to any flag). The decoder accepts both.
/// Errors: `EINVAL` for unknown flags or a short `argsz`, `EOPNOTSUPP` for a PASID
/// detach the driver cannot do.
public struct DetachIOMMUFDPageTable: ArgszStruct {
    public static let cName = "vfio_device_detach_iommufd_pt"
    /// `sizeof(struct vfio_device_detach_iommufd_pt)` in Linux 6.14 (`offsetofend(flags)`,
    /// also the smallest `argsz` every kernel accepts).
    public static let fixedSize = 8
    /// `offsetofend(flags)`: the smallest `argsz` the kernel accepts.
    public static let minimumSize = 8
    /// The size with `pasid` (Linux 6.15 and later).
    public static let pasidSize = 12

    /// `pasid` with `VFIO_DEVICE_DETACH_PASID`; `nil` detaches the whole device.
    public var pasid: UInt32?

    public init(pasid: UInt32? = nil) {
        self.pasid = pasid
    }

    /// `flags`, derived from `pasid`.
    public var flags: DetachIOMMUFDPageTableFlags { pasid == nil ? [] : .pasid }

    /// Writes 8 bytes, or 12 with `pasid`.
    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        if let pasid { writer.u32(pasid) }
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` when `argsz` is below 8, `flags` has unknown bits, the
    ///   PASID flag is set while `argsz` stops before `pasid`, or the buffer is shorter
    ///   than `argsz` says (up to 12 bytes).
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let argsz = try reader.argsz(fixedSize: Self.minimumSize)
        let flags = DetachIOMMUFDPageTableFlags(rawValue: try reader.u32())
        let unknown = flags.subtracting(.pasid)
        if !unknown.isEmpty {
            throw .malformed(Self.cName, "flags 0x\(String(flags.rawValue, radix: 16)) has unknown bits 0x\(String(unknown.rawValue, radix: 16))")
        }
        if flags.contains(.pasid) {
            if argsz < Self.pasidSize {
                throw .malformed(Self.cName, "VFIO_DEVICE_DETACH_PASID needs argsz of at least \(Self.pasidSize), got \(argsz)")
            }
            pasid = try reader.u32()
        } else {
            pasid = nil
            if argsz >= Self.pasidSize { try reader.skip(4) }
        }
    }
}
