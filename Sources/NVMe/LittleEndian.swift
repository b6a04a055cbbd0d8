/// Little-endian field access on byte arrays: every NVMe structure is little-endian.
extension Array where Element == UInt8 {
    /// The `width`-byte little-endian unsigned value at `offset` (width 1...8).
    @inlinable
    package func le(_ offset: Int, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        for k in 0..<width { value |= UInt64(self[offset + k]) << (8 * UInt64(k)) }
        return value
    }

    /// Stores the low `width` bytes of `value` at `offset`, little-endian.
    @inlinable
    package mutating func putLE(_ value: UInt64, at offset: Int, width: Int) {
        for k in 0..<width { self[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
    }

    /// Stores `text` as ASCII at `offset`, padded with spaces to `width` (the Identify
    /// string fields: SN, MN, FR), cut at `width`.
    package mutating func putASCII(_ text: String, at offset: Int, width: Int) {
        let bytes = Array(text.utf8.prefix(width))
        for k in 0..<width { self[offset + k] = k < bytes.count ? bytes[k] : 0x20 }
    }
}
