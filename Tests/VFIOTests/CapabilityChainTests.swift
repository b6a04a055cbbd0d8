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
import TestSupport

@Suite struct CHeaderVisibilityTests {
    @Test func systemHeaderStructsAreVisible() {
        #expect(MemoryLayout<vfio_info_cap_header>.size == InfoCapability.headerSize)
        let header = asCStruct(vfio_info_cap_header.self, CapabilityChain.build([InfoCapability(id: 7, version: 3, body: [])], baseOffset: 0))
        #expect(header.id == 7 && header.version == 3 && header.next == 0)
    }
}

@Suite struct CapabilityChainLayoutTests {
    /// The kernel's vfio_info_cap_add() pads every capability to 8 bytes and links them in
    /// order; vfio_info_cap_shift() makes offsets count from the info struct's start.
    @Test func capabilitiesAreEightByteAlignedAndLinkedInOrder() {
        let caps = [
            InfoCapability(id: 2, version: 1, body: [1, 2, 3, 4, 5, 6, 7, 8]),   // 16 bytes
            InfoCapability(id: 3, version: 1, body: []),                          // 8 bytes
            InfoCapability(id: 1, version: 1, body: Array(repeating: 9, count: 3)), // 11 -> 16
        ]
        let chain = CapabilityChain.build(caps, baseOffset: 32)
        #expect(chain.count == 40)
        #expect(le32(chain, 4) == 48)       // first links to 32 + 16
        #expect(le32(chain, 16 + 4) == 56)  // second links to 48 + 8
        #expect(le32(chain, 24 + 4) == 0)   // last
        #expect(Array(chain[32..<40]) == [9, 9, 9, 0, 0, 0, 0, 0])
    }

    @Test func lastCapabilityBodyRunsToTheStatedLength() throws {
        var buffer = Array(repeating: UInt8(0), count: 24)
        buffer += CapabilityChain.build([InfoCapability(id: 5, version: 0, body: [1, 2, 3, 4, 5, 6, 7, 8])], baseOffset: 24)
        buffer += [0xEE, 0xEE]   // beyond argsz: must not be read
        let caps = try CapabilityChain.parse(buffer, firstOffset: 24, fixedSize: 24, length: 40, context: "t")
        #expect(caps == [InfoCapability(id: 5, version: 0, body: [1, 2, 3, 4, 5, 6, 7, 8])])
    }

    @Test func chainInsideALargerBufferIsReadFromItsStructStart() throws {
        let caps = [InfoCapability(id: 9, version: 4, body: [7, 7, 7, 7, 7, 7, 7, 7])]
        let prefix: [UInt8] = Array(repeating: 0xAA, count: 16)   // e.g. a vfio-user header
        let info = Array(repeating: UInt8(0), count: 32) + CapabilityChain.build(caps, baseOffset: 32)
        let parsed = try CapabilityChain.parse(prefix + info, structStart: 16, firstOffset: 32, fixedSize: 32, length: info.count, context: "t")
        #expect(parsed == caps)
    }

    @Test(arguments: [
        (first: UInt32(8), next: UInt32(0), length: 48, expect: "fixed part"),
        (first: UInt32(44), next: UInt32(0), length: 48, expect: "past the end"),
        (first: UInt32(32), next: UInt32(32), length: 48, expect: "itself"),
        (first: UInt32(40), next: UInt32(32), length: 56, expect: "backwards"),
        (first: UInt32(32), next: UInt32(36), length: 56, expect: "inside its own header"),
        (first: UInt32(32), next: UInt32(52), length: 56, expect: "past the end"),
    ])
    func badOffsetsAreRefusedWithTheirCause(first: UInt32, next: UInt32, length: Int, expect: String) {
        var buffer = Array(repeating: UInt8(0), count: 64)
        // A header at `first` whose next is `next`; a valid terminal header at 32 and 40.
        for at in [32, 40] where at != Int(first) {
            buffer[at] = 1
        }
        if Int(first) + 8 <= buffer.count {
            buffer[Int(first)] = 1
            withUnsafeBytes(of: next.littleEndian) { for i in 0..<4 { buffer[Int(first) + 4 + i] = $0[i] } }
        }
        if first == 40 {   // make 32 link to 40 so the walk reaches the backward link
            withUnsafeBytes(of: UInt32(40).littleEndian) { for i in 0..<4 { buffer[36 + i] = $0[i] } }
        }
        let start = first == 40 ? UInt32(32) : first
        do {
            _ = try CapabilityChain.parse(buffer, firstOffset: start, fixedSize: 32, length: length, context: "vfio_region_info")
            Issue.record("offset \(first) -> \(next) was accepted")
        } catch {
            #expect(error.operation == "vfio_region_info")
            #expect(error.description.contains(expect), "\(error)")
        }
    }
}

@Suite struct CapabilityChainStructStartTests {
    @Test(arguments: [-8, 17])
    func aStructStartOutsideTheBufferIsRefused(structStart: Int) {
        do {
            _ = try CapabilityChain.parse(Array(repeating: 0, count: 16), structStart: structStart, firstOffset: 1, fixedSize: 0, length: 100, context: "t")
            Issue.record("struct start \(structStart) was accepted")
        } catch {
            #expect(error.description.contains("outside the 16-byte buffer"))
        }
    }
}
