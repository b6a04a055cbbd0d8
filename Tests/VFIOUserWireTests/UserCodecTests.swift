import Glibc
import Testing
import VFIO
@testable import VFIOUserWire
import VFIOSystem

@Suite struct UserCodecTests {
    @Test func headerRoundTripAndFlags() throws {
        let header = VFIOUserHeader(messageID: 0xBEEF, command: 5, messageSize: 48, flags: [.reply, .error], error: UInt32(EINVAL))
        let bytes = header.encoded
        #expect(bytes.count == 16)
        #expect(bytes[0] == 0xEF && bytes[1] == 0xBE && bytes[2] == 5 && bytes[4] == 48 && bytes[8] == 0x21 && bytes[12] == UInt8(EINVAL))
        let decoded = try VFIOUserHeader(decoding: bytes)
        #expect(decoded == header)
        #expect(decoded.isReply && decoded.isError && !decoded.wantsReply)
        let command = VFIOUserHeader(messageID: 1, command: 9, messageSize: 32, flags: .noReply)
        #expect(command.isCommand && !command.wantsReply)
        #expect(throws: VFIOError.self) { _ = try VFIOUserHeader(decoding: Array(bytes.prefix(15))) }
        var small = bytes
        small[4] = 15
        #expect(throws: VFIOError.self) { _ = try VFIOUserHeader(decoding: small) }
        var badType = bytes
        badType[8] = 0x02
        #expect(throws: VFIOError.self) { _ = try VFIOUserHeader(decoding: badType) }
    }

    @Test func commandNumbersMatchTheSpecification() {
        let expected: [(VFIOUserCommand, UInt16)] = [
            (.version, 1), (.dmaMap, 2), (.dmaUnmap, 3), (.deviceGetInfo, 4), (.deviceGetRegionInfo, 5),
            (.deviceGetRegionIOFDs, 6), (.deviceGetIRQInfo, 7), (.deviceSetIRQs, 8), (.regionRead, 9),
            (.regionWrite, 10), (.dmaRead, 11), (.dmaWrite, 12), (.deviceReset, 13), (.dirtyPages, 14),
            (.regionWriteMulti, 15), (.deviceFeature, 16), (.migDataRead, 17), (.migDataWrite, 18),
        ]
        for (command, number) in expected { #expect(command.rawValue == number) }
        #expect(VFIOUserCommand.allCases.count == 18)
    }

    @Test func jsonParsesAndWrites() throws {
        let text = #"{"capabilities": {"pgsizes": 4096, "max_msg_fds": 16, "max_dma_maps": 65535, "max_data_xfer_size": 1048576, "migration": {"max_bitmap_size": 268435456, "pgsize": 4096}, "write_multiple": true}}"#
        let value = try JSONValue.parse(text)
        #expect(value["capabilities"]?["max_msg_fds"]?.uint64 == 16)
        #expect(value["capabilities"]?["migration"]?["pgsize"]?.uint64 == 4096)
        #expect(try JSONValue.parse(value.description) == value)
        let odd = try JSONValue.parse(#" [ -1, 1.5e3, "a\"\u00e9\n", null, false, {}, [], 18446744073709551615 ] "#)
        guard case .array(let items) = odd else { Issue.record("not an array"); return }
        #expect(items[0] == .integer(-1))
        #expect(items[1] == .double(1500))
        #expect(items[2] == .string("a\"é\n"))
        #expect(items[7].uint64 == UInt64.max)
        for bad in ["", "{", "{\"a\":}", "[1,]", "tru", "\"x", "{\"a\" 1}", "01x", "[1] 2", String(repeating: "[", count: 100)] {
            #expect(throws: JSONError.self, "accepted \(bad)") { _ = try JSONValue.parse(bad) }
        }
    }

    @Test func capabilitiesDefaultsUnknownKeysAndBadValues() throws {
        let none = try VFIOUserCapabilities(json: try JSONValue.parse("{}"))
        #expect(none == .defaults)
        #expect(none.maxMessageFDs == 1 && none.maxDataTransferSize == 1 << 20 && none.maxDMAMaps == 65535 && none.pageSizes == 4096)
        let extra = try VFIOUserCapabilities(json: try JSONValue.parse(#"{"capabilities": {"max_msg_fds": 8, "future": [1,2], "twin_socket": {"supported": true, "fd_index": 0}}, "other": 1}"#))
        #expect(extra.maxMessageFDs == 8 && extra.twinSocketSupported && extra.twinSocketFDIndex == 0)
        for bad in [#"[1]"#, #"{"capabilities": 3}"#, #"{"capabilities": {"max_msg_fds": -1}}"#,
                    #"{"capabilities": {"max_data_xfer_size": 0}}"#, #"{"capabilities": {"write_multiple": 1}}"#,
                    #"{"capabilities": {"migration": true}}"#, #"{"capabilities": {"pgsizes": "4096"}}"#] {
            #expect(throws: VFIOError.self, "accepted \(bad)") { _ = try VFIOUserCapabilities(json: try JSONValue.parse(bad)) }
        }
    }

    @Test func versionRoundTripEndsWithNUL() throws {
        let caps = VFIOUserCapabilities(maxMessageFDs: 16, maxDataTransferSize: 1 << 20, maxDMAMaps: 1000, pageSizes: 4096,
                                        migration: .init(pageSize: 4096, maxBitmapSize: 1 << 20), writeMultiple: true)
        let version = VFIOUserVersion(major: 0, minor: 3, capabilities: caps)
        let bytes = version.encoded
        #expect(bytes.last == 0)
        #expect(try VFIOUserVersion(decoding: bytes) == version)
        #expect(try VFIOUserVersion(decoding: [0, 0, 0, 0]).capabilities == .defaults)
        #expect(throws: VFIOError.self) { _ = try VFIOUserVersion(decoding: [0, 0, 0]) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserVersion(decoding: [0, 0, 0, 0] + Array("{nope".utf8)) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserVersion(decoding: [0, 0, 0, 0] + Array("{}".utf8) + [0] + Array("{}".utf8)) }
    }

    func roundTrip<P: VFIOUserPayload>(_ value: P) throws {
        let bytes = value.encoded
        #expect(try P(decoding: bytes) == value, "\(P.cName)")
        // Every strict prefix is refused or decodes to something else, never crashes.
        for cut in 0..<bytes.count {
            _ = try? P(decoding: Array(bytes.prefix(cut)))
        }
    }

    @Test func everyPayloadRoundTrips() throws {
        try roundTrip(VFIOUserDMAMap(flags: [.read, .write], offset: 0x1000, address: 0x10000, size: 0x2000))
        try roundTrip(VFIOUserDMAUnmap(address: 0x10000, size: 0x2000))
        try roundTrip(VFIOUserDMAUnmap(flags: .all, address: 0, size: 0))
        try roundTrip(VFIOUserDMAUnmap(flags: .getDirtyBitmap, address: 0x10000, size: 0x2000, bitmap: VFIOUserBitmap(pageSize: 4096, size: 1)))
        try roundTrip(VFIOUserDMAUnmap(flags: .getDirtyBitmap, address: 0x10000, size: 0x2000, bitmap: VFIOUserBitmap(pageSize: 4096, size: 1, data: [3])))
        try roundTrip(VFIOUserDeviceInfo(flags: [.pci, .reset], numRegions: 9, numIRQs: 5))
        try roundTrip(VFIOUserRegionAccess(offset: 8, region: 7, count: 4))
        try roundTrip(VFIOUserRegionAccess(offset: 8, region: 7, count: 4, data: [1, 2, 3, 4]))
        try roundTrip(VFIOUserWriteMulti(writes: [VFIOUserWriteOne(offset: 4, region: 0, data: [1, 2, 3, 4]),
                                                  VFIOUserWriteOne(offset: 0x80, region: 0, data: [9, 8, 7, 6, 5, 4, 3, 2])]))
        try roundTrip(VFIOUserWriteMultiReply(completed: 2))
        try roundTrip(VFIOUserRegionIOFDs(argsz: 16, index: 0))
        try roundTrip(VFIOUserRegionIOFDs(argsz: 96, index: 0, count: 2, subRegions: [
            VFIOUserIOFD(offset: 0x100, size: 4, fdIndex: 0, type: .ioeventfd, flags: 1, data: 7),
            VFIOUserIOFD(offset: 0x200, size: 0, fdIndex: 0, type: .ioregionfd, flags: 2, data: 9)]))
        try roundTrip(VFIOUserMigData(argsz: 8 + 64, size: 64))
        try roundTrip(VFIOUserMigData(argsz: 8, size: 3, data: [1, 2, 3]))
        try roundTrip(VFIOUserDirtyPages(flags: .start))
        try roundTrip(VFIOUserDirtyPages(argsz: 40, flags: .getBitmap, range: (0x1000, 0x8000, VFIOUserBitmap(pageSize: 4096, size: 8))))
        try roundTrip(VFIOUserDMAAccess(address: 0x4000, count: 5))
        try roundTrip(VFIOUserDMAAccess(address: 0x4000, count: 5, data: [1, 2, 3, 4, 5]))
        let spec = VFIOUserDMAAccess(address: 1, count: 2, data: [0xAA, 0xBB]).encoded
        #expect(spec.count == 18 && spec[8] == 2 && spec[16] == 0xAA)
    }

    @Test func malformedPayloadsAreRefused() {
        #expect(throws: VFIOError.self) { _ = try VFIOUserDMAMap(decoding: VFIOUserDMAMap(flags: [.read], offset: 0, address: 0, size: 0).encoded) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserDMAMap(decoding: VFIOUserDMAMap(flags: .init(rawValue: 8), offset: 0, address: 0, size: 4096).encoded) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserDMAMap(decoding: VFIOUserDMAMap(flags: [.read], offset: 0, address: UInt64.max, size: 4096).encoded) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserDMAMap(decoding: VFIOUserDMAMap(argsz: 8, flags: [.read], offset: 0, address: 0, size: 4096).encoded) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserDMAUnmap(decoding: VFIOUserDMAUnmap(flags: .all, address: 4096, size: 0).encoded) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserDMAUnmap(decoding: VFIOUserDMAUnmap(address: 0, size: 0).encoded) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserDMAUnmap(decoding: VFIOUserDMAUnmap(flags: .getDirtyBitmap, address: 0, size: 4096).encoded) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserRegionAccess(decoding: VFIOUserRegionAccess(offset: 0, region: 0, count: 8, data: [1, 2]).encoded) }
        var multi = VFIOUserWriteMulti(writes: [VFIOUserWriteOne(offset: 0, region: 0, data: [1])]).encoded
        multi[0] = 2
        #expect(throws: VFIOError.self) { _ = try VFIOUserWriteMulti(decoding: multi) }
        multi[0] = 1
        multi[8 + 12] = 9  // count 9
        #expect(throws: VFIOError.self) { _ = try VFIOUserWriteMulti(decoding: multi) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserWriteMulti(decoding: [201, 0, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserMigData(decoding: VFIOUserMigData(argsz: 8, size: 5, data: [1]).encoded) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserDirtyPages(decoding: VFIOUserDirtyPages(flags: [.start, .stop]).encoded) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserDMAAccess(decoding: VFIOUserDMAAccess(address: 0, count: 9, data: [1]).encoded) }
        #expect(throws: VFIOError.self) { _ = try VFIOUserRegionIOFDs(decoding: VFIOUserRegionIOFDs(argsz: 56, index: 0, count: 2).encoded + [UInt8](repeating: 0, count: 40)) }
    }
}
