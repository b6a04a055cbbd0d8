/// `VFIO_IOMMU_SPAPR_REGISTER_MEMORY` and `VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY`
/// (`struct vfio_iommu_spapr_register_memory`, 24 bytes): pre-register (pin and account)
/// process memory of a v2 sPAPR TCE container so later maps are fast, or undo it.
///
/// Layout: `argsz` at 0, `flags` at 4 (must be 0), `vaddr` at 8, `size` at 16. `vaddr` and
/// `size` must be page aligned; registering overlapping memory gives `EINVAL`, going past
/// the locked-memory limit `ENOMEM`, unregistering memory still mapped `EBUSY`.
public struct SPAPRRegisterMemory: ArgszStruct {
    public static let cName = "vfio_iommu_spapr_register_memory"
    /// `sizeof(struct vfio_iommu_spapr_register_memory)`
    public static let fixedSize = 24

    /// The process address of the memory, an integer the caller supplies.
    public var vaddr: UInt64
    /// The length in bytes.
    public var size: UInt64

    public init(vaddr: UInt64, size: UInt64) {
        self.vaddr = vaddr
        self.size = size
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(0) // flags
        writer.u64(vaddr)
        writer.u64(size)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for a short buffer, `argsz` below 24, or non-zero `flags`
    ///   (the kernel's `EINVAL`).
    public init(from reader: inout ByteReader) throws(VFIOError) {
        _ = try reader.argsz(fixedSize: Self.fixedSize)
        let flags = try reader.u32()
        if flags != 0 { throw .malformed(Self.cName, "flags 0x\(String(flags, radix: 16)) must be 0") }
        vaddr = try reader.u64()
        size = try reader.u64()
    }
}
