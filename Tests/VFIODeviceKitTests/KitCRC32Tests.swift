import Testing
import VFIO
@testable import VFIODeviceKit

/// The kit's CRC-32 against its definition: known vectors, and the bitwise computation on
/// every path (bytes one at a time, eight at a time, and the four-block split of large
/// buffers that are joined with `combine`).
@Suite struct KitCRC32Tests {
    /// CRC-32 one bit at a time, straight from the definition.
    static func bitwise(_ bytes: some Collection<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

    static let data: [UInt8] = {
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        return (0..<200_000).map { _ in
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: x >> 33)
        }
    }()

    @Test func knownVectors() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        #expect(CRC32.checksum(Array("a".utf8)) == 0xE8B7_BE43)
        #expect(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x414F_A339)
        #expect(CRC32.checksum([UInt8](repeating: 0, count: 32)) == 0x190A_55AD)
        #expect(CRC32.checksum([UInt8](repeating: 0xFF, count: 32)) == 0xFF6C_AB0B)
    }

    @Test(arguments: [0, 1, 7, 8, 9, 63, 64, 1000, 16_383, 16_384, 16_385, 16_391, 16_392, 16_400, 65_536 + 13, 199_990])
    func everyLengthAgreesWithTheDefinition(length: Int) {
        for offset in [0, 1, 5] where offset + length <= Self.data.count {
            let slice = Self.data[offset..<(offset + length)]
            #expect(CRC32.checksum(slice) == Self.bitwise(slice), "length \(length) at offset \(offset)")
            // A collection without contiguous storage takes the copying path.
            #expect(CRC32.checksum(slice.lazy.map { $0 }) == Self.bitwise(slice))
        }
    }

    @Test func combineJoinsTwoChecksums() {
        for (split, end) in [(0, 10), (10, 10), (1, 2), (5000, 70_000), (100, 100_101)] {
            let a = Self.data[0..<split]
            let b = Self.data[split..<end]
            #expect(CRC32.combine(CRC32.checksum(a), CRC32.checksum(b), secondLength: b.count) == Self.bitwise(Self.data[0..<end]))
        }
    }
}
