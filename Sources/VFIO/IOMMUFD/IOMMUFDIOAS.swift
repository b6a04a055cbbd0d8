/// `IOMMU_IOAS_ALLOC` (`struct iommu_ioas_alloc`, 12 bytes): create an empty I/O address
/// space (IOAS).
///
/// Layout: `size` at 0, `flags` at 4 (must be 0), `out_ioas_id` at 8.
public struct IOMMUFDIOASAlloc: ArgszStruct {
    public static let cName = "iommu_ioas_alloc"
    /// `sizeof(struct iommu_ioas_alloc)`
    public static let fixedSize = 12

    /// Out: the new IOAS's id (0 in a request).
    public var outIOASID: UInt32

    public init(outIOASID: UInt32 = 0) { self.outIOASID = outIOASID }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(0) // flags
        writer.u32(outIOASID)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        try reader.iommufdZeroFlags()
        outIOASID = try reader.u32()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// An inclusive IOVA interval (`struct iommu_iova_range`, 16 bytes): `start` at 0,
/// `last` at 8. The whole 64-bit space is `start: 0, last: UInt64.max`.
public struct IOMMUFDIOVARange: KernelStruct, Hashable {
    public static let cName = "iommu_iova_range"
    /// `sizeof(struct iommu_iova_range)`
    public static let fixedSize = 16

    public var start: UInt64
    /// The last IOVA of the range (inclusive).
    public var last: UInt64

    public init(start: UInt64, last: UInt64) {
        self.start = start
        self.last = last
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(start)
        writer.u64(last)
    }

    /// - Throws: `.malformed` when `last` lies below `start`.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        start = try reader.u64()
        last = try reader.u64()
        if last < start {
            throw .malformed(Self.cName, "last 0x\(String(last, radix: 16)) lies below start 0x\(String(start, radix: 16))")
        }
    }

    /// Encodes `ranges` back to back, the array `allowed_iovas` points at.
    public static func encodeArray(_ ranges: [IOMMUFDIOVARange]) -> [UInt8] {
        var writer = ByteWriter(capacity: ranges.count * fixedSize)
        for range in ranges { range.encode(into: &writer) }
        return writer.bytes
    }

    /// Decodes `count` ranges from an `allowed_iovas` array.
    /// - Throws: `.malformed` when `bytes` holds fewer than `count` ranges.
    public static func decodeArray(_ bytes: [UInt8], count: Int) throws(VFIOError) -> [IOMMUFDIOVARange] {
        if count < 0 || count > bytes.count / fixedSize {
            throw .malformed(cName, "\(count) ranges need \(count * fixedSize) bytes, the array holds \(bytes.count)")
        }
        var reader = ByteReader(bytes, context: cName)
        var result: [IOMMUFDIOVARange] = []
        result.reserveCapacity(count)
        for _ in 0..<count { result.append(try IOMMUFDIOVARange(from: &reader)) }
        return result
    }
}

/// `IOMMU_IOAS_IOVA_RANGES` (`struct iommu_ioas_iova_ranges`, 32 bytes): read the IOVA
/// ranges an IOAS currently allows.
///
/// Layout: `size` at 0, `ioas_id` at 4, `num_iovas` at 8, `__reserved` at 12,
/// `allowed_iovas` at 16, `out_iova_alignment` at 24.
///
/// On input `numIOVAs` is the capacity of the array at `allowedIOVAs`; on output the number
/// of ranges. When the array is too small the kernel fails with `EMSGSIZE` after setting
/// `numIOVAs` to the count needed: allocate that many and ask again. The ranges change as
/// devices attach and detach, so query after each.
public struct IOMMUFDIOASIOVARanges: ArgszStruct {
    public static let cName = "iommu_ioas_iova_ranges"
    /// `sizeof(struct iommu_ioas_iova_ranges)`
    public static let fixedSize = 32

    public var ioasID: UInt32
    /// In: the array's capacity in ranges. Out: the number of ranges the IOAS has.
    public var numIOVAs: UInt32
    /// The user address of an array of `numIOVAs` `struct iommu_iova_range` (16 bytes each).
    public var allowedIOVAs: UInt64
    /// Out: the alignment every mapped IOVA and length must have (1 means any; at most
    /// the CPU page size).
    public var outIOVAAlignment: UInt64

    public init(ioasID: UInt32, numIOVAs: UInt32, allowedIOVAs: UInt64, outIOVAAlignment: UInt64 = 0) {
        self.ioasID = ioasID
        self.numIOVAs = numIOVAs
        self.allowedIOVAs = allowedIOVAs
        self.outIOVAAlignment = outIOVAAlignment
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(ioasID)
        writer.u32(numIOVAs)
        writer.u32(0)
        writer.u64(allowedIOVAs)
        writer.u64(outIOVAAlignment)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        ioasID = try reader.u32()
        numIOVAs = try reader.u32()
        try reader.iommufdReserved32()
        allowedIOVAs = try reader.u64()
        outIOVAAlignment = try reader.u64()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `IOMMU_IOAS_ALLOW_IOVAS` (`struct iommu_ioas_allow_iovas`, 24 bytes): replace the list
/// of IOVA ranges an IOAS guarantees to keep usable (device attachments that would narrow
/// them then fail). Fails if the IOAS's ranges are already narrower.
///
/// Layout: `size` at 0, `ioas_id` at 4, `num_iovas` at 8, `__reserved` at 12,
/// `allowed_iovas` at 16.
public struct IOMMUFDIOASAllowIOVAs: ArgszStruct {
    public static let cName = "iommu_ioas_allow_iovas"
    /// `sizeof(struct iommu_ioas_allow_iovas)`
    public static let fixedSize = 24

    public var ioasID: UInt32
    /// The number of ranges in the array.
    public var numIOVAs: UInt32
    /// The user address of an array of `numIOVAs` `struct iommu_iova_range`.
    public var allowedIOVAs: UInt64

    public init(ioasID: UInt32, numIOVAs: UInt32, allowedIOVAs: UInt64) {
        self.ioasID = ioasID
        self.numIOVAs = numIOVAs
        self.allowedIOVAs = allowedIOVAs
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(ioasID)
        writer.u32(numIOVAs)
        writer.u32(0)
        writer.u64(allowedIOVAs)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        ioasID = try reader.u32()
        numIOVAs = try reader.u32()
        try reader.iommufdReserved32()
        allowedIOVAs = try reader.u64()
        reader.iommufdFinish(start: start, size: size)
    }
}
