/// Builds a byte buffer in the kernel's layout: little-endian integers at the offsets the
/// C struct has, with explicit padding.
///
/// The kernel uAPI is native-endian; swift-vfio supports little-endian hosts only (x86_64,
/// aarch64, riscv64), which is also the byte order of vfio-user messages.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// The number of bytes written so far.
    public var count: Int { bytes.count }

    public mutating func u8(_ value: UInt8) { bytes.append(value) }

    public mutating func u16(_ value: UInt16) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func u32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func u64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func i32(_ value: Int32) { u32(UInt32(bitPattern: value)) }

    public mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }

    /// Appends `count` zero bytes (C padding or reserved fields).
    public mutating func zeros(_ count: Int) {
        precondition(count >= 0, "negative padding")
        bytes.append(contentsOf: repeatElement(0, count: count))
    }

    public mutating func append<S: Sequence>(contentsOf data: S) where S.Element == UInt8 {
        bytes.append(contentsOf: data)
    }

    /// Appends `data` into a fixed-size C array of `size` bytes, zero-filling the rest.
    /// - Precondition: `data.count <= size`.
    public mutating func fixedArray(_ data: [UInt8], size: Int) {
        precondition(data.count <= size, "\(data.count) bytes do not fit a \(size)-byte array")
        bytes.append(contentsOf: data)
        zeros(size - data.count)
    }

    /// Zero-pads until `count` is a multiple of `alignment`.
    public mutating func align(to alignment: Int) {
        let rem = bytes.count % alignment
        if rem != 0 { zeros(alignment - rem) }
    }

    /// Zero-pads until `count` reaches `size` (no-op when already there or past it).
    public mutating func pad(toCount size: Int) {
        if bytes.count < size { zeros(size - bytes.count) }
    }

    /// Overwrites four bytes at `offset` (used to fill `argsz`, `next` and `cap_offset`
    /// once the total size is known).
    public mutating func patchU32(at offset: Int, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for i in 0..<4 { bytes[offset + i] = raw[i] }
        }
    }
}
