/// `IOMMU_DESTROY` (`struct iommu_destroy`, 8 bytes): destroy any iommufd object by id.
///
/// Layout: `size` at 0, `id` at 4. `EBUSY` while the object is still in use
/// (an IOAS with attached devices, a HWPT referenced by a nested one).
public struct IOMMUFDDestroy: ArgszStruct {
    public static let cName = "iommu_destroy"
    /// `sizeof(struct iommu_destroy)`
    public static let fixedSize = 8

    /// The object's id.
    public var id: UInt32

    public init(id: UInt32) { self.id = id }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(id)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        id = try reader.u32()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `IOMMU_IOAS_CHANGE_PROCESS` (`struct iommu_ioas_change_process`, 8 bytes): move the
/// pinned-memory accounting of every IOAS to the calling process (live update). Only maps
/// made with `IOMMU_IOAS_MAP_FILE` may exist, else `EINVAL`.
///
/// Layout: `size` at 0, `__reserved` at 4 (must be 0).
public struct IOMMUFDIOASChangeProcess: ArgszStruct {
    public static let cName = "iommu_ioas_change_process"
    /// `sizeof(struct iommu_ioas_change_process)`
    public static let fixedSize = 8

    public init() {}

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(0)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        try reader.iommufdReserved32()
        reader.iommufdFinish(start: start, size: size)
    }
}
