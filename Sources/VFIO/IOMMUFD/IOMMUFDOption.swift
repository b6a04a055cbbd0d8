/// `option_id` of `struct iommu_option` (`enum iommufd_option`).
public enum IOMMUFDOptionID: UInt32, Sendable, CaseIterable {
    /// `IOMMU_OPTION_RLIMIT_MODE`: 0 accounts pinned memory per user (default), 1 per
    /// process. Global: `object_id` must be 0; setting it needs `CAP_SYS_RESOURCE`.
    case rlimitMode = 0
    /// `IOMMU_OPTION_HUGE_PAGES`: 1 (default) lets contiguous pages map as huge IOMMU
    /// pages, 0 maps everything at `PAGE_SIZE`. Per IOAS: `object_id` is the IOAS id.
    case hugePages = 1
}

/// `op` of `struct iommu_option` (`enum iommufd_option_ops`).
public enum IOMMUFDOptionOperation: UInt16, Sendable, CaseIterable {
    /// `IOMMU_OPTION_OP_SET`: store `val64`.
    case set = 0
    /// `IOMMU_OPTION_OP_GET`: the kernel returns the value in `val64`.
    case get = 1
}

/// `IOMMU_OPTION` (`struct iommu_option`, 24 bytes): read or change an iommufd option.
///
/// Layout: `size` at 0, `option_id` at 4, `op` at 8 (`__u16`), `__reserved` at 10
/// (`__u16`), `object_id` at 12, `val64` at 16.
public struct IOMMUFDOption: ArgszStruct {
    public static let cName = "iommu_option"
    /// `sizeof(struct iommu_option)`
    public static let fixedSize = 24

    public var option: IOMMUFDOptionID
    public var operation: IOMMUFDOptionOperation
    /// The object the option applies to (0 for global options).
    public var objectID: UInt32
    /// The value to set, or the value read.
    public var value: UInt64

    public init(option: IOMMUFDOptionID, operation: IOMMUFDOptionOperation, objectID: UInt32 = 0, value: UInt64 = 0) {
        self.option = option
        self.operation = operation
        self.objectID = objectID
        self.value = value
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(option.rawValue)
        writer.u16(operation.rawValue)
        writer.u16(0)
        writer.u32(objectID)
        writer.u64(value)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for an unknown `option_id` or `op` (the kernel's
    ///   `EOPNOTSUPP`), or a non-zero `__reserved`.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        option = try reader.iommufdEnum(IOMMUFDOptionID.self, "option_id")
        let op = try reader.u16()
        guard let operation = IOMMUFDOptionOperation(rawValue: op) else {
            throw .malformed(Self.cName, "op \(op) is not a known value")
        }
        self.operation = operation
        try reader.iommufdReserved16()
        objectID = try reader.u32()
        value = try reader.u64()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `op` of `struct iommu_vfio_ioas` (`enum iommufd_vfio_ioas_op`).
public enum IOMMUFDVFIOIOASOperation: UInt16, Sendable, CaseIterable {
    /// `IOMMU_VFIO_IOAS_GET`: return the compatibility IOAS id.
    case get = 0
    /// `IOMMU_VFIO_IOAS_SET`: make `ioas_id` the compatibility IOAS.
    case set = 1
    /// `IOMMU_VFIO_IOAS_CLEAR`: turn VFIO container compatibility off.
    case clear = 2
}

/// `IOMMU_VFIO_IOAS` (`struct iommu_vfio_ioas`, 12 bytes): choose the IOAS an iommufd
/// used as a VFIO container (through `VFIO_GROUP_SET_CONTAINER`) works on.
///
/// Layout: `size` at 0, `ioas_id` at 4, `op` at 8 (`__u16`), `__reserved` at 10 (`__u16`).
public struct IOMMUFDVFIOIOAS: ArgszStruct {
    public static let cName = "iommu_vfio_ioas"
    /// `sizeof(struct iommu_vfio_ioas)`
    public static let fixedSize = 12

    /// In for SET, out for GET.
    public var ioasID: UInt32
    public var operation: IOMMUFDVFIOIOASOperation

    public init(ioasID: UInt32 = 0, operation: IOMMUFDVFIOIOASOperation) {
        self.ioasID = ioasID
        self.operation = operation
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(ioasID)
        writer.u16(operation.rawValue)
        writer.u16(0)
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` for an unknown `op` or a non-zero `__reserved`.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        ioasID = try reader.u32()
        let op = try reader.u16()
        guard let operation = IOMMUFDVFIOIOASOperation(rawValue: op) else {
            throw .malformed(Self.cName, "op \(op) is not a known value")
        }
        self.operation = operation
        try reader.iommufdReserved16()
        reader.iommufdFinish(start: start, size: size)
    }
}
