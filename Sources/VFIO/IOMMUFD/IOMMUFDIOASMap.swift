/// `flags` of `struct iommu_ioas_map`, `iommu_ioas_map_file` and `iommu_ioas_copy`
/// (`enum iommufd_ioas_map_flags`).
public struct IOMMUFDIOASMapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IOMMU_IOAS_MAP_FIXED_IOVA`: map at the given `iova` (which must be free); without
    /// it the kernel picks an IOVA inside the allowed ranges and returns it.
    public static let fixedIOVA = IOMMUFDIOASMapFlags(rawValue: 1 << 0)
    /// `IOMMU_IOAS_MAP_WRITEABLE`: devices may write the memory.
    public static let writeable = IOMMUFDIOASMapFlags(rawValue: 1 << 1)
    /// `IOMMU_IOAS_MAP_READABLE`: devices may read the memory.
    public static let readable = IOMMUFDIOASMapFlags(rawValue: 1 << 2)

    /// READABLE and WRITEABLE as `access` asks, with FIXED_IOVA when `fixedIOVA`.
    public init(_ access: DMAAccess, fixedIOVA: Bool) {
        self = fixedIOVA ? .fixedIOVA : []
        if access.contains(.read) { insert(.readable) }
        if access.contains(.write) { insert(.writeable) }
    }

    /// Every flag Linux 6.14 accepts; other bits give `EOPNOTSUPP`.
    public static let known: IOMMUFDIOASMapFlags = [.fixedIOVA, .writeable, .readable]

    /// What map, map-file and copy refuse before looking at the IOAS.
    var problem: String? {
        let unknown = subtracting(.known)
        if !unknown.isEmpty { return "unknown flag bits 0x\(String(unknown.rawValue, radix: 16))" }
        if intersection([.readable, .writeable]).isEmpty { return "a mapping needs IOMMU_IOAS_MAP_READABLE and/or WRITEABLE" }
        return nil
    }
}

/// `IOMMU_IOAS_MAP` (`struct iommu_ioas_map`, 40 bytes): map process memory into an IOAS.
///
/// Layout: `size` at 0, `flags` at 4, `ioas_id` at 8, `__reserved` at 12, `user_va` at 16,
/// `length` at 24, `iova` at 32 (in with FIXED_IOVA, out otherwise). The IOVA and length
/// must respect `out_iova_alignment` of `IOMMU_IOAS_IOVA_RANGES`; an occupied fixed IOVA
/// gives `EEXIST`.
public struct IOMMUFDIOASMap: ArgszStruct {
    public static let cName = "iommu_ioas_map"
    /// `sizeof(struct iommu_ioas_map)`
    public static let fixedSize = 40

    public var flags: IOMMUFDIOASMapFlags
    public var ioasID: UInt32
    /// The process address of the memory, an integer the caller supplies.
    public var userVA: UInt64
    /// The length in bytes.
    public var length: UInt64
    /// In with `.fixedIOVA`: where to map. Out: where the mapping was placed.
    public var iova: UInt64

    public init(flags: IOMMUFDIOASMapFlags = [.readable, .writeable], ioasID: UInt32, userVA: UInt64, length: UInt64, iova: UInt64 = 0) {
        self.flags = flags
        self.ioasID = ioasID
        self.userVA = userVA
        self.length = length
        self.iova = iova
    }

    /// Throws `.invalidArgument` for unknown flags or a map that is neither readable nor writeable.
    public func validate() throws(VFIOError) {
        if let why = flags.problem { throw .invalidArgument(Self.cName, why) }
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.u32(ioasID)
        writer.u32(0)
        writer.u64(userVA)
        writer.u64(length)
        writer.u64(iova)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        flags = IOMMUFDIOASMapFlags(rawValue: try reader.u32())
        if let why = flags.problem { throw .malformed(Self.cName, why) }
        ioasID = try reader.u32()
        try reader.iommufdReserved32()
        userVA = try reader.u64()
        length = try reader.u64()
        iova = try reader.u64()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `IOMMU_IOAS_MAP_FILE` (`struct iommu_ioas_map_file`, 40 bytes): map a range of a memfd
/// into an IOAS; otherwise as `IOMMU_IOAS_MAP`.
///
/// Layout: `size` at 0, `flags` at 4, `ioas_id` at 8, `fd` at 12 (`__s32`), `start` at 16,
/// `length` at 24, `iova` at 32.
public struct IOMMUFDIOASMapFile: ArgszStruct {
    public static let cName = "iommu_ioas_map_file"
    /// `sizeof(struct iommu_ioas_map_file)`
    public static let fixedSize = 40

    public var flags: IOMMUFDIOASMapFlags
    public var ioasID: UInt32
    /// The memfd to map.
    public var fd: Int32
    /// The byte offset in the file where the mapping begins (C field `start`).
    public var fileOffset: UInt64
    public var length: UInt64
    /// In with `.fixedIOVA`: where to map. Out: where the mapping was placed.
    public var iova: UInt64

    public init(flags: IOMMUFDIOASMapFlags = [.readable, .writeable], ioasID: UInt32, fd: Int32, fileOffset: UInt64, length: UInt64, iova: UInt64 = 0) {
        self.flags = flags
        self.ioasID = ioasID
        self.fd = fd
        self.fileOffset = fileOffset
        self.length = length
        self.iova = iova
    }

    /// Throws `.invalidArgument` for unknown flags or a map that is neither readable nor writeable.
    public func validate() throws(VFIOError) {
        if let why = flags.problem { throw .invalidArgument(Self.cName, why) }
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.u32(ioasID)
        writer.i32(fd)
        writer.u64(fileOffset)
        writer.u64(length)
        writer.u64(iova)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        flags = IOMMUFDIOASMapFlags(rawValue: try reader.u32())
        if let why = flags.problem { throw .malformed(Self.cName, why) }
        ioasID = try reader.u32()
        fd = try reader.i32()
        fileOffset = try reader.u64()
        length = try reader.u64()
        iova = try reader.u64()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `IOMMU_IOAS_COPY` (`struct iommu_ioas_copy`, 40 bytes): map into one IOAS the pages
/// already pinned by a mapping of another, without pinning them again. The source range
/// must match exactly one earlier map.
///
/// Layout: `size` at 0, `flags` at 4, `dst_ioas_id` at 8, `src_ioas_id` at 12, `length`
/// at 16, `dst_iova` at 24 (in with FIXED_IOVA, out otherwise), `src_iova` at 32.
public struct IOMMUFDIOASCopy: ArgszStruct {
    public static let cName = "iommu_ioas_copy"
    /// `sizeof(struct iommu_ioas_copy)`
    public static let fixedSize = 40

    public var flags: IOMMUFDIOASMapFlags
    public var destinationIOASID: UInt32
    public var sourceIOASID: UInt32
    public var length: UInt64
    /// In with `.fixedIOVA`, else out.
    public var destinationIOVA: UInt64
    public var sourceIOVA: UInt64

    public init(flags: IOMMUFDIOASMapFlags = [.readable, .writeable], destinationIOASID: UInt32, sourceIOASID: UInt32,
                length: UInt64, destinationIOVA: UInt64 = 0, sourceIOVA: UInt64) {
        self.flags = flags
        self.destinationIOASID = destinationIOASID
        self.sourceIOASID = sourceIOASID
        self.length = length
        self.destinationIOVA = destinationIOVA
        self.sourceIOVA = sourceIOVA
    }

    /// Throws `.invalidArgument` for unknown flags or a map that is neither readable nor writeable.
    public func validate() throws(VFIOError) {
        if let why = flags.problem { throw .invalidArgument(Self.cName, why) }
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.u32(destinationIOASID)
        writer.u32(sourceIOASID)
        writer.u64(length)
        writer.u64(destinationIOVA)
        writer.u64(sourceIOVA)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        flags = IOMMUFDIOASMapFlags(rawValue: try reader.u32())
        if let why = flags.problem { throw .malformed(Self.cName, why) }
        destinationIOASID = try reader.u32()
        sourceIOASID = try reader.u32()
        length = try reader.u64()
        destinationIOVA = try reader.u64()
        sourceIOVA = try reader.u64()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `IOMMU_IOAS_UNMAP` (`struct iommu_ioas_unmap`, 24 bytes): unmap a range of an IOAS.
///
/// Layout: `size` at 0, `ioas_id` at 4, `iova` at 8, `length` at 16 (out: bytes unmapped).
/// The range must cover whole earlier maps or copies (no splitting, else `ENOENT`);
/// `iova` 0 with `length` `UInt64.max` unmaps everything.
public struct IOMMUFDIOASUnmap: ArgszStruct {
    public static let cName = "iommu_ioas_unmap"
    /// `sizeof(struct iommu_ioas_unmap)`
    public static let fixedSize = 24

    public var ioasID: UInt32
    public var iova: UInt64
    /// In: the length to unmap. Out: the bytes unmapped.
    public var length: UInt64

    public init(ioasID: UInt32, iova: UInt64, length: UInt64) {
        self.ioasID = ioasID
        self.iova = iova
        self.length = length
    }

    /// Unmaps every mapping of the IOAS.
    public static func all(ioasID: UInt32) -> IOMMUFDIOASUnmap {
        IOMMUFDIOASUnmap(ioasID: ioasID, iova: 0, length: .max)
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(ioasID)
        writer.u64(iova)
        writer.u64(length)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        ioasID = try reader.u32()
        iova = try reader.u64()
        length = try reader.u64()
        reader.iommufdFinish(start: start, size: size)
    }
}
