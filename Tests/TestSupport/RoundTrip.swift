import Testing
import VFIO

/// Checks that `value` survives encode then decode, that the encoding is at least the
/// fixed size, and, for argsz structs, that argsz states the encoding's length.
package func expectRoundTrip<T: KernelStruct>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let bytes = value.encoded()
    #expect(bytes.count >= T.fixedSize, "\(T.cName) encodes to \(bytes.count) bytes, below sizeof \(T.fixedSize)", sourceLocation: sourceLocation)
    let decoded = try T(decoding: bytes)
    #expect(decoded == value, "\(T.cName) did not survive a round trip", sourceLocation: sourceLocation)
    #expect(decoded.encoded() == bytes, "\(T.cName) re-encoding differs", sourceLocation: sourceLocation)
    // Every strict prefix of the fixed part must be refused, never read past.
    for cut in [0, T.fixedSize / 2, T.fixedSize - 1] where cut < T.fixedSize {
        #expect(throws: VFIOError.self, "\(T.cName) accepted a \(cut)-byte buffer", sourceLocation: sourceLocation) {
            _ = try T(decoding: Array(bytes.prefix(cut)))
        }
    }
}

/// Reads the little-endian u32 at `offset` of `bytes`.
package func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
}

/// Loads `bytes` (zero-extended to the C struct's size) as the system header's C struct
/// `C`, so a test can compare the Swift encoding with the header's field offsets.
package func asCStruct<C>(_ type: C.Type, _ bytes: [UInt8]) -> C {
    let size = max(MemoryLayout<C>.size, bytes.count)
    return withUnsafeTemporaryAllocation(byteCount: size, alignment: 16) { raw in
        raw.initializeMemory(as: UInt8.self, repeating: 0)
        raw.copyBytes(from: bytes)
        return raw.load(as: C.self)
    }
}
