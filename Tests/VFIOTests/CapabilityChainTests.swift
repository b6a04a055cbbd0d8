import Testing
@testable import VFIO

@Suite struct CapabilityChainTests {
    @Test func buildThenParseRoundTrips() throws {
        let caps = [
            InfoCapability(id: 1, version: 1, body: [1, 2, 3, 4, 5, 6, 7, 8]),
            InfoCapability(id: 3, version: 2, body: Array(repeating: 0xAB, count: 16)),
        ]
        var buffer = Array(repeating: UInt8(0), count: 32)
        buffer += CapabilityChain.build(caps, baseOffset: 32)
        let parsed = try CapabilityChain.parse(buffer, firstOffset: 32, fixedSize: 32, length: buffer.count, context: "t")
        #expect(parsed == caps)
    }
}

import CVFIO

@Suite struct CHeaderVisibilityTests {
    @Test func systemHeaderStructsAreVisible() {
        #expect(MemoryLayout<vfio_info_cap_header>.size == InfoCapability.headerSize)
        let header = asCStruct(vfio_info_cap_header.self, CapabilityChain.build([InfoCapability(id: 7, version: 3, body: [])], baseOffset: 0))
        #expect(header.id == 7 && header.version == 3 && header.next == 0)
    }
}
