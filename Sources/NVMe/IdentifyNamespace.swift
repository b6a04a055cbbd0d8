/// A LBA Format descriptor (NVMe 1.4, figure 249): metadata size 15:0, LBA data size 23:16
/// (a power of two: 9 = 512 bytes, 12 = 4096), relative performance 25:24.
public struct LBAFormat: Sendable, Hashable {
    public var metadataSize: UInt16
    public var dataSizeShift: UInt8
    public var relativePerformance: UInt8
    public init(metadataSize: UInt16 = 0, dataSizeShift: UInt8, relativePerformance: UInt8 = 0) {
        self.metadataSize = metadataSize
        self.dataSizeShift = dataSizeShift
        self.relativePerformance = relativePerformance
    }
    public var dword: UInt32 { UInt32(metadataSize) | UInt32(dataSizeShift) << 16 | UInt32(relativePerformance & 0x3) << 24 }
}

/// The Identify Namespace data structure (CNS 00h; NVMe 1.4, figure 245), 4096 bytes, with
/// the fields Linux reads. Fields not listed are zero.
public struct IdentifyNamespace: Sendable, Hashable {
    public static let size = 4096

    /// NSZE, bytes 7:0, in logical blocks.
    public var size: UInt64 = 0
    /// NCAP, bytes 15:8.
    public var capacity: UInt64 = 0
    /// NUSE, bytes 23:16.
    public var utilization: UInt64 = 0
    /// NSFEAT, byte 24 (bit 0 thin provisioning, bit 3 NGUID/EUI64 never reused).
    public var features: UInt8 = 0
    /// FLBAS, byte 26: bits 3:0 the format in use.
    public var formattedLBASize: UInt8 = 0
    /// DLFEAT, byte 33: bits 2:0 what deallocated blocks read (1: zeroes), bit 3 Write
    /// Zeroes may deallocate.
    public var deallocateFeatures: UInt8 = 0
    /// NOIOB, bytes 47:46, optimal I/O boundary in blocks.
    public var optimalIOBoundary: UInt16 = 0
    /// NGUID, bytes 119:104.
    public var nguid: [UInt8] = [UInt8](repeating: 0, count: 16)
    /// EUI64, bytes 127:120.
    public var eui64: [UInt8] = [UInt8](repeating: 0, count: 8)
    /// LBAF0..15, bytes 191:128; NLBAF (byte 25) is `formats.count - 1`.
    public var formats: [LBAFormat] = []

    public init() {}

    /// The 4096 bytes.
    /// - Precondition: 1...16 formats, NGUID 16 bytes, EUI64 8 bytes.
    public var encoded: [UInt8] {
        precondition((1...16).contains(formats.count) && nguid.count == 16 && eui64.count == 8)
        var b = [UInt8](repeating: 0, count: Self.size)
        b.putLE(size, at: 0, width: 8)
        b.putLE(capacity, at: 8, width: 8)
        b.putLE(utilization, at: 16, width: 8)
        b[24] = features
        b[25] = UInt8(formats.count - 1)
        b[26] = formattedLBASize
        b[33] = deallocateFeatures
        b.putLE(UInt64(optimalIOBoundary), at: 46, width: 2)
        b.replaceSubrange(104..<120, with: nguid)
        b.replaceSubrange(120..<128, with: eui64)
        for (k, format) in formats.enumerated() { b.putLE(UInt64(format.dword), at: 128 + 4 * k, width: 4) }
        return b
    }
}

/// The active namespace ID list (CNS 02h): up to 1024 ascending IDs, zero filled, 4096 bytes.
public enum ActiveNamespaceList {
    /// The list of the IDs in `active` greater than `after`.
    public static func encoded(active: [UInt32], after: UInt32) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 4096)
        for (k, id) in active.filter({ $0 > after }).sorted().prefix(1024).enumerated() {
            b.putLE(UInt64(id), at: 4 * k, width: 4)
        }
        return b
    }
}

/// A Namespace Identification Descriptor (CNS 03h; NVMe 1.4, figure 247): type (NIDT),
/// length (NIDL), two reserved bytes, the identifier. A list of them, ended by a zero
/// type, fills 4096 bytes.
public enum NamespaceIdentifier: Sendable, Hashable {
    /// NIDT 1, 8 bytes.
    case eui64([UInt8])
    /// NIDT 2, 16 bytes.
    case nguid([UInt8])
    /// NIDT 3, 16 bytes.
    case uuid([UInt8])
    /// NIDT 4, the command set identifier, 1 byte (0: NVM).
    case commandSet(UInt8)

    public var type: UInt8 {
        switch self {
        case .eui64: return 1
        case .nguid: return 2
        case .uuid: return 3
        case .commandSet: return 4
        }
    }

    public var identifier: [UInt8] {
        switch self {
        case .eui64(let b), .nguid(let b), .uuid(let b): return b
        case .commandSet(let v): return [v]
        }
    }

    /// The 4096-byte descriptor list.
    public static func encodedList(_ identifiers: [NamespaceIdentifier]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 4096)
        var at = 0
        for id in identifiers {
            let bytes = id.identifier
            b[at] = id.type
            b[at + 1] = UInt8(bytes.count)
            b.replaceSubrange((at + 4)..<(at + 4 + bytes.count), with: bytes)
            at += 4 + bytes.count
        }
        return b
    }
}
