/// `struct vfio_pci_hot_reset`, the argument of `VFIO_DEVICE_PCI_HOT_RESET`: reset the bus
/// or slot of this device, with proof that the caller owns every affected device.
///
/// Two calling conventions (Linux 6.14, `vfio_pci_ioctl_pci_hot_reset`):
/// - group-opened device: `fds` holds one fd per group of the affected devices
///   (VFIO group fds, or device fds that prove ownership), between 1 and the number of
///   affected devices; a group left out makes the kernel fail with `EINVAL`.
/// - cdev-opened device: `fds` is empty (count 0, no array, not one fd of -1). Ownership is
///   taken from the iommufd context, so it works when `PCIHotResetInfo` reported
///   `devIDOwned`. A non-empty array on a cdev-opened device is `EINVAL`.
/// `flags` must be 0 (`EINVAL` otherwise), so it is not stored.
public struct PCIHotReset: ArgszStruct {
    public static let cName = "vfio_pci_hot_reset"
    /// `sizeof(struct vfio_pci_hot_reset)`, without `group_fds[]`.
    public static let fixedSize = 12

    /// `group_fds[]`: the proof-of-ownership fds; empty for the cdev convention.
    public var fds: [Int32]

    public init(fds: [Int32]) {
        self.fds = fds
    }

    /// The cdev-path request (no fds).
    public static var cdev: PCIHotReset { PCIHotReset(fds: []) }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(0)  // flags
        writer.u32(UInt32(fds.count))
        for fd in fds { writer.i32(fd) }
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        let flags = try reader.u32()
        if flags != 0 {
            throw .malformed(Self.cName, "flags must be 0, got 0x\(String(flags, radix: 16))")
        }
        let count = try reader.u32()
        let needed = UInt64(count) * 4
        if needed > UInt64(argsz) - UInt64(Self.fixedSize) {
            throw .malformed(Self.cName, "count \(count) needs \(needed) byte(s) of group_fds, argsz \(argsz) leaves \(argsz - UInt32(Self.fixedSize))")
        }
        if needed > UInt64(reader.remaining) {
            throw .malformed(Self.cName, "count \(count) needs \(needed) byte(s) of group_fds, the buffer has \(reader.remaining)")
        }
        var list: [Int32] = []
        list.reserveCapacity(Int(count))
        for _ in 0..<count { list.append(try reader.i32()) }
        fds = list
        InfoChainCodec.finish(&reader, start: start, argsz: argsz)
    }
}
