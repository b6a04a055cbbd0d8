// Conventions of the iommufd structs in this folder (Linux 6.14 `<linux/iommufd.h>`):
//
// - Every ioctl struct starts with `__u32 size`, which plays the part of `argsz`: the
//   kernel copies `size` bytes, requires at least the struct's first published size and
//   answers `E2BIG` when bytes beyond what it understands are non-zero. The types conform
//   to `ArgszStruct`; `encode` computes `size` and decoding requires `size` >= `fixedSize`.
// - Fields named `__reserved` must be 0 (the kernel answers `EOPNOTSUPP` or `EINVAL`);
//   encoders write 0 and decoders reject anything else.
// - Pointer fields (`data_uptr`, `allowed_iovas`, `user_va`, `data`) are `UInt64`
//   addresses the caller supplies, e.g. `UInt64(UInt(bitPattern: pointer))`. This module
//   never dereferences them; the memory must stay valid for the duration of the ioctl.
// - There is no iommufd header on the build machine, so no C layout check exists for these
//   structs. Every offset and size in the doc comments was read from the 6.14 header text
//   and is pinned by literal-offset tests in Tests/VFIOTests/IOMMUFDLayoutTests.swift.

extension ByteReader {
    /// Reads a `__u32 __reserved` field and rejects a non-zero value.
    mutating func iommufdReserved32(_ field: String = "__reserved") throws(VFIOError) {
        let value = try u32()
        if value != 0 { throw .malformed(context, "\(field) is 0x\(String(value, radix: 16)), must be 0") }
    }

    /// Reads a `__u16 __reserved` field and rejects a non-zero value.
    mutating func iommufdReserved16(_ field: String = "__reserved") throws(VFIOError) {
        let value = try u16()
        if value != 0 { throw .malformed(context, "\(field) is 0x\(String(value, radix: 16)), must be 0") }
    }

    /// Reads a `__u32` that must be one of `T`'s raw values.
    mutating func iommufdEnum<T: RawRepresentable>(_ type: T.Type, _ field: String) throws(VFIOError) -> T where T.RawValue == UInt32 {
        let raw = try u32()
        guard let value = T(rawValue: raw) else {
            throw .malformed(context, "\(field) \(raw) is not a known value")
        }
        return value
    }

    /// Reads a `__u32 flags` and rejects bits outside `known`.
    mutating func iommufdFlags<T: OptionSet>(_ type: T.Type, known: T) throws(VFIOError) -> T where T.RawValue == UInt32 {
        let flags = T(rawValue: try u32())
        let unknown = flags.subtracting(known)
        if !unknown.isEmpty {
            throw .malformed(context, "unknown flag bits 0x\(String(unknown.rawValue, radix: 16))")
        }
        return flags
    }

    /// Reads a `__u32 flags` that must be 0.
    mutating func iommufdZeroFlags() throws(VFIOError) {
        let flags = try u32()
        if flags != 0 { throw .malformed(context, "flags 0x\(String(flags, radix: 16)) must be 0") }
    }

    /// Moves past the rest of a struct whose `size` field is `size`, from `start`.
    mutating func iommufdFinish(start: Int, size: UInt32) {
        offset = max(offset, start + min(Int(size), bytes.count - start))
    }
}
