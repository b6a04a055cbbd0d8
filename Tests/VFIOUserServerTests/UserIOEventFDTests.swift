import Glibc
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

/// VFIO_USER_DEVICE_GET_REGION_IO_FDS: the server makes an eventfd per declared
/// `IOEventArea`, the client signals it, the model hears `ioEventSignalled`.
@Suite struct UserIOEventFDTests {
    /// The eventfd's identity (`eventfd-id` in /proc/self/fdinfo; every eventfd shares
    /// one anonymous inode).
    private func identity(_ fd: Int32) -> String {
        guard let file = fopen("/proc/self/fdinfo/\(fd)", "r") else { return "fd \(fd) unreadable" }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("eventfd-id:") { return text }
        }
        return "fd \(fd) is no eventfd"
    }

    @Test func signalsReachTheModelWithTheirCount() throws {
        let model = try HooksModel()
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        let events = try client.regionIOEventFDs(0)
        #expect(events.map(\.offset) == [0x100, 0x200])
        #expect(events.map(\.width) == [4, 4])
        #expect(events.map(\.dataMatch) == [nil, 7])
        #expect(identity(events[0].event.fd) != identity(events[1].event.fd))
        try events[0].event.signal(3)   // three writes coalesced
        #expect(try model.waitFor { $0.contains("ioevent 0 0x100 count 3") })
        try events[1].event.signal()
        #expect(try model.waitFor { $0.contains("ioevent 0 0x200 count 1") })
        // Asked again: the same eventfds (new descriptors of the same files).
        let (_, again) = try client.regionIOFDs(0)
        #expect(again.map { identity($0.raw) } == events.map { identity($0.event.fd) })
        // A region without areas, and the regular write path untouched.
        #expect(try client.regionIOEventFDs(1).isEmpty)
        try client.write(UInt32(5), region: 0, offset: 0x100)
        #expect(try model.waitFor { $0.contains("write 0 0x100 = 5") })
    }

    @Test func aShortArgszGetsTheSizeNeededAndNoDescriptors() throws {
        let fixture = try UserServerFixture(model: try HooksModel())
        let client = try fixture.connect()
        let reply = try #require(try client.rawRequest(command: VFIOUserCommand.deviceGetRegionIOFDs.rawValue,
                                                       payload: VFIOUserRegionIOFDs(argsz: 16, index: 0).encoded))
        #expect(!reply.header.isError)
        let answer = try VFIOUserRegionIOFDs(decoding: reply.payload)
        #expect(answer.argsz == 96 && answer.count == 2 && answer.subRegions.isEmpty && reply.fds.isEmpty)
        // flags or count set, an unknown region: EINVAL.
        for request in [VFIOUserRegionIOFDs(argsz: 96, flags: 1, index: 0), VFIOUserRegionIOFDs(argsz: 96, index: 0, count: 1),
                        VFIOUserRegionIOFDs(argsz: 96, index: 7)] {
            let refused = try #require(try client.rawRequest(command: VFIOUserCommand.deviceGetRegionIOFDs.rawValue, payload: request.encoded))
            #expect(refused.header.isError && refused.header.error == UInt32(EINVAL))
        }
    }

    @Test func moreAreasThanTheClientTakesDescriptorsIsE2BIG() throws {
        let fixture = try UserServerFixture(model: try HooksModel())
        var configuration = VFIOUserClient.Configuration()
        configuration.capabilities.maxMessageFDs = 1
        let client = try fixture.connect(configuration)
        expectErrno(E2BIG) { _ = try client.regionIOEventFDs(0) }
    }

    @Test func aNewClientGetsNewEventfdsAndTheOldOnesAreDropped() throws {
        let model = try HooksModel()
        let fixture = try UserServerFixture(model: model)
        let first = try fixture.connect()
        let old = try first.regionIOEventFDs(0)
        #expect(fixture.server.watches.withLock { $0.table.count } == 2)
        first.close()
        #expect(try model.waitFor { $0.contains("closed") })
        // sessionClosed comes after the watches went, in the same hold of the device lock.
        #expect(fixture.server.watches.withLock { $0.table.count } == 0)
        let second = try fixture.connect()
        let new = try second.regionIOEventFDs(0)
        #expect(identity(new[0].event.fd) != identity(old[0].event.fd))
        try new[0].event.signal()
        #expect(try model.waitFor { $0.contains("ioevent 0 0x100 count 1") })
    }

    @Test func modelsDeclaringBadAreasAreRefused() throws {
        func region(_ areas: [IOEventArea], mmap: [SparseMmapArea] = []) -> RegionDescriptor {
            RegionDescriptor(index: 0, size: 0x2000, flags: [.read, .write], backing: mmap.isEmpty ? .callbacks : .memory(mmapAreas: mmap),
                             ioEventAreas: areas)
        }
        let bad: [(String, RegionDescriptor)] = [
            ("width 3", region([IOEventArea(offset: 0, width: 3)])),
            ("data match without width", region([IOEventArea(offset: 0, width: 0, dataMatch: 1)])),
            ("data match too wide", region([IOEventArea(offset: 0, width: 2, dataMatch: 0x1_0000)])),
            ("past the end", region([IOEventArea(offset: 0x1ffe, width: 4)])),
            ("offset past the end", region([IOEventArea(offset: UInt64.max, width: 8)])),
            ("overlap", region([IOEventArea(offset: 0x10, width: 8), IOEventArea(offset: 0x14, width: 4)])),
            ("in an mmap area", region([IOEventArea(offset: 0x1000, width: 4)], mmap: [SparseMmapArea(offset: 0x1000, size: 0x1000)])),
        ]
        for (name, descriptor) in bad {
            #expect(throws: VFIOError.self, "\(name)") { _ = try VFIOUserServer(model: try HooksModel(regions: [descriptor])) }
        }
        // Good ones: any width at the last byte, a full 8-byte match, beside an mmap area.
        let good = region([IOEventArea(offset: 0xfff, width: 0), IOEventArea(offset: 0x8, width: 8, dataMatch: .max),
                           IOEventArea(offset: 0xff8, width: 4)], mmap: [SparseMmapArea(offset: 0x1000, size: 0x1000)])
        _ = try VFIOUserServer(model: try HooksModel(regions: [good]))
    }
}
