/// `flags` of `struct vfio_iommu_type1_info`.
public struct Type1InfoFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_IOMMU_INFO_PGSIZES`: `iova_pgsizes` is valid.
    public static let pageSizes = Type1InfoFlags(rawValue: 1 << 0)
    /// `VFIO_IOMMU_INFO_CAPS`: the container has capabilities; `cap_offset` points at the
    /// first one, or is 0 when the caller's `argsz` was too small to hold them.
    public static let caps = Type1InfoFlags(rawValue: 1 << 1)
}

/// The reply of `VFIO_IOMMU_GET_INFO` on a type1 container (`struct vfio_iommu_type1_info`),
/// with its capability chain.
///
/// Layout: `argsz` at 0, `flags` at 4, `iova_pgsizes` at 8, `cap_offset` at 16, `pad` at 20
/// (24 bytes), then the chain, which the kernel places at offset 24.
///
/// Querying: send `Type1Info.request(capacity:)`. When the container has capabilities that
/// do not fit, the kernel still succeeds, sets `VFIO_IOMMU_INFO_CAPS`, leaves `cap_offset`
/// 0 and raises `argsz` to the size it needs; `ArgszRetry.run` then asks again with that
/// size. Such a reply decodes with no capabilities and `needsLargerBuffer == true`.
public struct Type1Info: ArgszStruct {
    public static let cName = "vfio_iommu_type1_info"
    /// `sizeof(struct vfio_iommu_type1_info)` (with the explicit `pad` of Linux 6.14).
    public static let fixedSize = 24

    /// The flags as given or as read. `encode` adds `.caps` when `capabilities` is non-empty.
    public var flags: Type1InfoFlags
    /// The IOMMU page sizes the container maps with, one bit per size (bit n = 2^n bytes);
    /// valid with `.pageSizes`. The smallest set bit is the granularity of map and unmap.
    public var iovaPageSizes: UInt64
    /// The capability chain, in order.
    public var capabilities: [Type1InfoCapability]

    public init(flags: Type1InfoFlags = [.pageSizes], iovaPageSizes: UInt64, capabilities: [Type1InfoCapability] = []) {
        self.flags = flags
        self.iovaPageSizes = iovaPageSizes
        self.capabilities = capabilities
    }

    /// True when the kernel has capabilities it could not return (`.caps` set but no chain):
    /// repeat the query with the larger `argsz` the reply states.
    public var needsLargerBuffer: Bool { flags.contains(.caps) && capabilities.isEmpty }

    /// A `VFIO_IOMMU_GET_INFO` request: a zeroed struct whose `argsz` is `capacity`
    /// (at least the 24-byte fixed part), leaving room for the chain.
    public static func request(capacity: Int = 512) -> [UInt8] {
        Type1Info(flags: [], iovaPageSizes: 0).encoded(capacity: max(capacity, fixedSize))
    }

    /// The `argsz` a reply asks for when it exceeds the buffer's size, else `nil`.
    public static func requiredSize(inReply reply: [UInt8]) throws(VFIOError) -> Int? {
        let argsz = Int(try ByteReader(reply, context: cName).peekU32(at: 0))
        return argsz > reply.count ? argsz : nil
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        var wireFlags = flags
        if !capabilities.isEmpty { wireFlags.insert(.caps) }
        writer.u32(wireFlags.rawValue)
        writer.u64(iovaPageSizes)
        let capOffsetAt = writer.count
        writer.u32(0)
        writer.u32(0) // pad
        if !capabilities.isEmpty {
            let base = CapabilityChain.alignedStart(after: Self.fixedSize)
            writer.pad(toCount: start + base)
            writer.patchU32(at: capOffsetAt, UInt32(base))
            writer.append(contentsOf: CapabilityChain.build(capabilities.map(\.infoCapability), baseOffset: base))
        }
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` when `argsz` is below 24 or the buffer is shorter than the
    ///   fixed part, when `cap_offset` is set without `VFIO_IOMMU_INFO_CAPS`, and for any
    ///   fault of the chain (see `CapabilityChain.parse`) or of a known capability's body.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        flags = Type1InfoFlags(rawValue: try reader.u32())
        iovaPageSizes = try reader.u64()
        let capOffset = try reader.u32()
        try reader.skip(4) // pad
        capabilities = []
        if capOffset != 0 {
            if !flags.contains(.caps) {
                throw .malformed(Self.cName, "cap_offset \(capOffset) is set but VFIO_IOMMU_INFO_CAPS is not")
            }
            let chain = try CapabilityChain.parse(
                reader.bytes, structStart: start, firstOffset: capOffset,
                fixedSize: Self.fixedSize, length: Int(argsz), context: Self.cName)
            for entry in chain { capabilities.append(try Type1InfoCapability(entry)) }
        }
        reader.offset = start + min(Int(argsz), reader.bytes.count - start)
    }
}
