import Testing
@testable import VFIOUserWire

/// `copyBytes`, the socket's copy of small pieces (two overlapping loads and stores up to
/// 16 bytes, `memcpy` beyond): every count from 0 to 40, at every offset of 8, copies
/// exactly `count` bytes and touches nothing around them.
@Suite struct UserByteCopyTests {
    @Test func everyCountCopiesExactlyItsBytes() {
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
        let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
        defer { source.deallocate(); destination.deallocate() }
        for i in 0..<64 { source[i] = UInt8(i + 1) }
        for count in 0...40 {
            for at in 0..<8 {
                destination.initializeMemory(as: UInt8.self, repeating: 0xEE)
                copyBytes(destination.baseAddress! + at, source.baseAddress! + at, count)
                for i in 0..<64 {
                    let expected: UInt8 = i >= at && i < at + count ? UInt8(i + 1) : 0xEE
                    #expect(destination[i] == expected, "count \(count), offset \(at), byte \(i)")
                }
            }
        }
    }
}
