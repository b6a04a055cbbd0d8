/// One entry of an info capability chain (`struct vfio_info_cap_header` and its body).
///
/// Device info, region info and type1 IOMMU info replies may carry a chain of these after
/// their fixed part: each header holds the capability's `id`, its `version` and the offset
/// of the next header (`next`, 0 for the last), counted from the start of the info struct.
public struct InfoCapability: Sendable, Equatable {
    /// `sizeof(struct vfio_info_cap_header)`.
    public static let headerSize = 8

    public var id: UInt16
    public var version: UInt16
    /// The bytes after the 8-byte header, up to the next capability (or the end of the
    /// reply for the last one). The builder pads bodies to a multiple of 8 bytes.
    public var body: [UInt8]

    public init(id: UInt16, version: UInt16, body: [UInt8]) {
        self.id = id
        self.version = version
        self.body = body
    }
}

/// Building and parsing capability chains, with the semantics of the kernel's
/// `vfio_info_cap_add()` and `vfio_info_cap_shift()`: every capability starts on an
/// 8-byte boundary, they follow each other in the order added, and offsets count from the
/// start of the info struct whose fixed part precedes the chain.
public enum CapabilityChain {
    /// Lays out `capabilities` as a chain whose first header sits at `baseOffset` bytes
    /// from the start of the info struct (normally the struct's `fixedSize`, rounded up
    /// to 8). Returns the chain's bytes, to append after the fixed part and any padding.
    ///
    /// - Precondition: `baseOffset` is a multiple of 8, and the chain ends below 4 GiB.
    public static func build(_ capabilities: [InfoCapability], baseOffset: Int) -> [UInt8] {
        precondition(baseOffset % 8 == 0, "capability chains start on an 8-byte boundary")
        var writer = ByteWriter(capacity: capabilities.reduce(0) { $0 + 8 + $1.body.count + 7 })
        for (index, capability) in capabilities.enumerated() {
            let size = (InfoCapability.headerSize + capability.body.count + 7) & ~7
            let isLast = index == capabilities.count - 1
            let next = isLast ? 0 : baseOffset + writer.count + size
            precondition(next <= Int(UInt32.max), "capability chain exceeds 4 GiB")
            writer.u16(capability.id)
            writer.u16(capability.version)
            writer.u32(UInt32(next))
            writer.append(contentsOf: capability.body)
            writer.align(to: 8)
        }
        return writer.bytes
    }

    /// Rounds `fixedSize` up to the 8-byte boundary where a chain after it begins.
    public static func alignedStart(after fixedSize: Int) -> Int { (fixedSize + 7) & ~7 }

    /// Parses the chain of the info struct that starts at `structStart` in `buffer`.
    ///
    /// - Parameters:
    ///   - buffer: the reply bytes.
    ///   - structStart: where the info struct begins in `buffer`.
    ///   - firstOffset: the struct's `cap_offset`; 0 means no chain.
    ///   - fixedSize: the struct's fixed part; no capability may start inside it.
    ///   - length: the reply's extent from `structStart` (its `argsz`); clipped to the buffer.
    ///   - context: the struct's C name, for errors.
    /// - Throws: `VFIOError.malformed` when an offset points into the fixed part, past the
    ///   end of the reply, at or before the capability that names it (a loop or a backward
    ///   link), or into the middle of that capability's header.
    public static func parse(
        _ buffer: [UInt8],
        structStart: Int = 0,
        firstOffset: UInt32,
        fixedSize: Int,
        length: Int,
        context: String
    ) throws(VFIOError) -> [InfoCapability] {
        if firstOffset == 0 { return [] }
        guard structStart >= 0, structStart <= buffer.count else {
            throw .malformed(context, "struct start offset \(structStart) is outside the \(buffer.count)-byte buffer")
        }
        let limit = min(length, buffer.count - structStart)
        var result: [InfoCapability] = []
        var offset = Int(firstOffset)
        if offset < fixedSize {
            throw .malformed(context, "capability offset \(offset) points into the \(fixedSize)-byte fixed part")
        }
        while true {
            if offset + InfoCapability.headerSize > limit {
                throw .malformed(context, "capability at offset \(offset) runs past the end of the \(limit)-byte reply")
            }
            let at = structStart + offset
            let id = UInt16(buffer[at]) | UInt16(buffer[at + 1]) << 8
            let version = UInt16(buffer[at + 2]) | UInt16(buffer[at + 3]) << 8
            let next = Int(ByteReader.le32(buffer, at + 4))
            let end: Int
            if next == 0 {
                end = limit
            } else if next == offset {
                throw .malformed(context, "capability \(id) at offset \(offset) links to itself (a loop)")
            } else if next < offset {
                throw .malformed(context, "capability \(id) at offset \(offset) links backwards to offset \(next) (a loop)")
            } else if next < offset + InfoCapability.headerSize {
                throw .malformed(context, "capability \(id) at offset \(offset) links to offset \(next), inside its own header")
            } else if next + InfoCapability.headerSize > limit {
                throw .malformed(context, "capability \(id) at offset \(offset) links to offset \(next), past the end of the \(limit)-byte reply")
            } else {
                end = next
            }
            let body = Array(buffer[(at + InfoCapability.headerSize)..<(structStart + end)])
            result.append(InfoCapability(id: id, version: version, body: body))
            if next == 0 { return result }
            offset = next
        }
    }
}

extension InfoCapability {
    /// A reader over the body, for decoding a known capability; errors name `context`.
    public func bodyReader(_ context: String) -> ByteReader {
        ByteReader(body, context: context)
    }
}
