/// `struct vfio_device_ioeventfd`, the argument of `VFIO_DEVICE_IOEVENTFD`: when `fd` is
/// signalled, the kernel writes `data` (of `width`) at `offset` of the device fd, without a
/// round trip through the user.
///
/// vfio-pci supports it for BAR regions only (not the MSI-X table); other widths, regions
/// or drivers fail with `EINVAL` (or `ENOTTY` where unsupported). An `fd` of -1 removes the
/// ioeventfd that matches `offset`, `data` and `width`.
public struct IOEventfd: ArgszStruct {
    public static let cName = "vfio_device_ioeventfd"
    /// `sizeof(struct vfio_device_ioeventfd)`
    public static let fixedSize = 32

    /// `VFIO_DEVICE_IOEVENTFD_SIZE_MASK`: the bits of `flags` that give the width.
    public static let sizeMask: UInt32 = 0xf

    /// The width of the write: exactly one of the `VFIO_DEVICE_IOEVENTFD_{8,16,32,64}` bits.
    public enum Width: UInt32, Sendable, Hashable, CaseIterable {
        /// `VFIO_DEVICE_IOEVENTFD_8`
        case bits8 = 1
        /// `VFIO_DEVICE_IOEVENTFD_16`
        case bits16 = 2
        /// `VFIO_DEVICE_IOEVENTFD_32`
        case bits32 = 4
        /// `VFIO_DEVICE_IOEVENTFD_64`
        case bits64 = 8

        /// The write's size in bytes (1, 2, 4 or 8).
        public var byteCount: Int { Int(rawValue) }

        /// The width for a write of `bytes` bytes.
        public init?(byteCount bytes: Int) {
            self.init(rawValue: UInt32(truncatingIfNeeded: bytes))
        }
    }

    public var width: Width
    /// The device fd offset written (region offset plus the register's offset).
    public var offset: UInt64
    /// The value written; only the low `width` bytes are used.
    public var data: UInt64
    /// The eventfd, or -1 to remove.
    public var fd: Int32

    public init(width: Width, offset: UInt64, data: UInt64, fd: Int32) {
        self.width = width
        self.offset = offset
        self.data = data
        self.fd = fd
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(width.rawValue)
        writer.u64(offset)
        writer.u64(data)
        writer.i32(fd)
        writer.u32(0)  // reserved
        writer.finishArgsz(at: start)
    }

    /// Rejects flags with bits outside `sizeMask`, or with other than exactly one size bit,
    /// as the kernel does with `EINVAL`.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        let flags = try reader.u32()
        if flags & ~Self.sizeMask != 0 {
            throw .malformed(Self.cName, "flags 0x\(String(flags, radix: 16)) have bits outside VFIO_DEVICE_IOEVENTFD_SIZE_MASK")
        }
        guard flags.nonzeroBitCount == 1, let width = Width(rawValue: flags) else {
            throw .malformed(Self.cName, "flags 0x\(String(flags, radix: 16)) must have exactly one size bit, not \(flags.nonzeroBitCount)")
        }
        self.width = width
        offset = try reader.u64()
        data = try reader.u64()
        fd = try reader.i32()
        try reader.skip(4)  // reserved
        InfoChainCodec.finish(&reader, start: start, argsz: argsz)
    }
}
