/// A value with an exact byte encoding in the kernel's layout of one C struct from
/// `<linux/vfio.h>` or `<linux/iommufd.h>`.
///
/// The same encoding serves ioctl buffers and vfio-user message payloads. Decoding checks
/// sizes and rejects what the kernel would reject; it never reads past the buffer.
public protocol KernelStruct: Sendable, Equatable {
    /// The C struct's name, without `struct`, e.g. `vfio_region_info`. Used in errors.
    static var cName: String { get }
    /// `sizeof(struct ...)`: the fixed part, without any trailing `data[]` payload or
    /// capability chain.
    static var fixedSize: Int { get }
    /// Appends the encoding (fixed part, then any trailing payload) to `writer`.
    func encode(into writer: inout ByteWriter)
    /// Decodes one value starting at `reader.offset` and leaves the reader after it.
    init(from reader: inout ByteReader) throws(VFIOError)
}

extension KernelStruct {
    /// The encoding as a fresh byte array.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.fixedSize)
        encode(into: &writer)
        return writer.bytes
    }

    /// Decodes a value from the start of `bytes`. Trailing bytes beyond what the struct
    /// describes are allowed (a buffer larger than needed is normal with `argsz`).
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        try self.init(from: &reader)
    }
}

/// A struct whose first field is `__u32 argsz`: the caller states the size of its buffer,
/// and the kernel (or a vfio-user peer) may answer that it needs more.
public protocol ArgszStruct: KernelStruct {}

extension ArgszStruct {
    /// The encoding with `argsz` raised to `capacity` and the buffer zero-padded to it,
    /// so that the callee may write a capability chain or `data[]` into the extra room.
    /// A capacity smaller than the encoding leaves the encoding unchanged.
    public func encoded(capacity: Int) -> [UInt8] {
        var writer = ByteWriter(capacity: max(capacity, Self.fixedSize))
        encode(into: &writer)
        if writer.count < capacity {
            writer.pad(toCount: capacity)
            writer.patchU32(at: 0, UInt32(capacity))
        }
        return writer.bytes
    }
}

/// Helpers shared by the encoders of argsz structs.
extension ByteWriter {
    /// Writes a placeholder `argsz` and returns its offset, for `finishArgsz(at:)`.
    public mutating func beginArgsz() -> Int {
        let at = count
        u32(0)
        return at
    }

    /// Fills the `argsz` written by `beginArgsz()` with the bytes written since.
    public mutating func finishArgsz(at start: Int) {
        patchU32(at: start, UInt32(count - start))
    }
}

extension ByteReader {
    /// Reads `argsz` and checks it covers at least `fixedSize` bytes. Returns it.
    ///
    /// The buffer itself may be shorter than `argsz` (a reply that asks for more room);
    /// callers that need the trailing part check `remaining` themselves.
    public mutating func argsz(fixedSize: Int) throws(VFIOError) -> UInt32 {
        let value = try u32()
        if Int(value) < fixedSize {
            throw .malformed(context, "argsz \(value) is smaller than the \(fixedSize)-byte structure")
        }
        return value
    }
}
