/// The data of `VFIO_DEVICE_FEATURE_PCI_VF_TOKEN` (`__u8 b[16]`): a UUID used as a
/// shared secret between the user of an SR-IOV PF and the users of its VFs.
///
/// SET only, on a PF with SR-IOV enabled and no VF open. The bytes are the UUID in its
/// text order (the kernel's `uuid_t`), the same token a VF user passes as
/// `vf_token=<uuid>` when opening the VF.
public struct VFToken: KernelStruct, Hashable, CustomStringConvertible {
    /// Not a C struct: the feature's data is a bare 16-byte array.
    public static let cName = "VFIO_DEVICE_FEATURE_PCI_VF_TOKEN data"
    public static let fixedSize = 16

    /// The UUID's 16 bytes in text order.
    public var bytes: [UInt8]

    /// - Precondition: `bytes.count == 16`.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == VFToken.fixedSize, "a VF token is 16 bytes")
        self.bytes = bytes
    }

    /// Parses the canonical text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (any case).
    public init?(uuid text: String) {
        let chars = Array(text.utf8)
        guard chars.count == 36 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(16)
        var i = 0
        while i < 36 {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard chars[i] == UInt8(ascii: "-") else { return nil }
                i += 1
                continue
            }
            guard let hi = VFToken.hexValue(chars[i]), let lo = VFToken.hexValue(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        self.bytes = out
    }

    /// The canonical lower-case text form.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    public func encode(into writer: inout ByteWriter) {
        writer.append(contentsOf: bytes)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        bytes = try reader.bytes(VFToken.fixedSize)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
