/// Reads a byte buffer laid out as a kernel struct. Every read is bounds-checked and a
/// short buffer throws `VFIOError.malformed` naming the structure being decoded.
public struct ByteReader: Sendable {
    public let bytes: [UInt8]
    /// The offset of the next read.
    public var offset: Int
    /// Named in errors: the C struct (or message) being decoded.
    public var context: String

    public init(_ bytes: [UInt8], context: String = "decode") {
        self.bytes = bytes
        self.offset = 0
        self.context = context
    }

    public var remaining: Int { bytes.count - offset }

    /// Throws unless `count` more bytes are available.
    public func require(_ count: Int, _ what: @autoclosure () -> String = "") throws(VFIOError) {
        if count < 0 || count > remaining {
            let detail = what()
            throw .malformed(context,
                "needs \(count) byte(s) at offset \(offset)\(detail.isEmpty ? "" : " for \(detail)"), only \(max(remaining, 0)) left")
        }
    }

    public mutating func u8() throws(VFIOError) -> UInt8 {
        try require(1)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16() throws(VFIOError) -> UInt16 {
        try require(2)
        defer { offset += 2 }
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    public mutating func u32() throws(VFIOError) -> UInt32 {
        try require(4)
        defer { offset += 4 }
        return ByteReader.le32(bytes, offset)
    }

    public mutating func u64() throws(VFIOError) -> UInt64 {
        try require(8)
        defer { offset += 8 }
        return UInt64(ByteReader.le32(bytes, offset)) | UInt64(ByteReader.le32(bytes, offset + 4)) << 32
    }

    public mutating func i32() throws(VFIOError) -> Int32 { Int32(bitPattern: try u32()) }

    public mutating func i64() throws(VFIOError) -> Int64 { Int64(bitPattern: try u64()) }

    /// Reads `count` raw bytes.
    public mutating func bytes(_ count: Int) throws(VFIOError) -> [UInt8] {
        try require(count)
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Skips `count` bytes (padding or reserved fields).
    public mutating func skip(_ count: Int) throws(VFIOError) {
        try require(count)
        offset += count
    }

    /// Reads a little-endian `UInt32` at an absolute offset without moving the cursor.
    public func peekU32(at absolute: Int) throws(VFIOError) -> UInt32 {
        guard absolute >= 0, absolute + 4 <= bytes.count else {
            throw .malformed(context, "needs 4 bytes at offset \(absolute), buffer has \(bytes.count)")
        }
        return ByteReader.le32(bytes, absolute)
    }

    @inline(__always)
    static func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }
}
