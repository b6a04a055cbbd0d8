/// The shared shape of the two device-side info replies with capability chains
/// (`vfio_device_info`, `vfio_region_info`): a fixed part whose size is a multiple of 8,
/// then the chain right after it, as `vfio_info_cap_shift(&caps, sizeof(info))` lays it out.
enum InfoChainCodec {
    /// Appends the chain for `capabilities`, which starts at `fixedSize` from the struct.
    static func appendChain(_ capabilities: [InfoCapability], fixedSize: Int, to writer: inout ByteWriter) {
        if capabilities.isEmpty { return }
        writer.append(contentsOf: CapabilityChain.build(capabilities, baseOffset: fixedSize))
    }

    /// Parses the chain of an info struct decoded from `reader`, starting at `start`.
    ///
    /// A reply with the CAPS flag and `cap_offset` 0 is how the kernel says the chain did not
    /// fit in `argsz`; that yields no capabilities (the caller retries with the new `argsz`).
    static func parseChain(
        _ reader: ByteReader,
        start: Int,
        argsz: UInt32,
        hasCaps: Bool,
        capOffset: UInt32,
        fixedSize: Int,
        context: String
    ) throws(VFIOError) -> [InfoCapability] {
        if !hasCaps {
            if capOffset != 0 {
                throw .malformed(context, "cap_offset is \(capOffset) but the CAPS flag is clear")
            }
            return []
        }
        return try CapabilityChain.parse(
            reader.bytes, structStart: start, firstOffset: capOffset,
            fixedSize: fixedSize, length: Int(argsz), context: context)
    }

    /// Moves `reader` past the struct: to `start + argsz`, or the end of the buffer when a
    /// reply states a larger `argsz` than the bytes at hand.
    static func finish(_ reader: inout ByteReader, start: Int, argsz: UInt32) {
        reader.offset = start + min(Int(argsz), reader.bytes.count - start)
    }
}
