import Glibc
import Synchronization
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

// MIG_DATA_READ / MIG_DATA_WRITE as the server serves them from the message header on
// (the reply gathered from where the driver holds the stream, the data read straight into
// the resuming stream): the bytes are the stream's, in any piece sizes, and every bad
// request gets the error reply it got when the message was read whole, without consuming
// or appending anything.

@Suite struct UserMigrationDataTests {
    static let oddSizes = [1, 63, 64, 65, 4095, 1 << 20, (1 << 20) + 1, 777_777, 100_000]

    @Test func streamInOddPiecesBothWays() throws {
        let model = StateModel()
        let original = model.state
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        defer { client.close() }
        let saving = try #require(try client.setMigrationState(.stopCopy))
        var stream: [UInt8] = []
        for i in 0... {
            var buffer = [UInt8](repeating: 0, count: Self.oddSizes[i % Self.oddSizes.count])
            let n = try readSome(saving, &buffer)
            if n == 0 { break }
            stream += buffer[0..<n]
        }
        #expect(stream.count == MigrationStream.headerSize + StateModel.size)
        #expect(try MigrationStream.decode(stream, expecting: model.migrationIdentity).state == original)

        // Back in, in odd pieces, into the same device after a reset.
        try client.reset()
        model.state = []
        let resuming = try #require(try client.setMigrationState(.resuming))
        var at = 0
        var i = 0
        while at < stream.count {
            let n = min(Self.oddSizes[i % Self.oddSizes.count], stream.count - at)
            try writeAll(resuming, Array(stream[at..<(at + n)]))
            at += n
            i += 1
        }
        _ = try client.setMigrationState(.stop)
        #expect(model.state == original)
        _ = try client.setMigrationState(.running)
    }

    @Test func badReadsAreRefusedAndConsumeNothing() throws {
        let model = StateModel()
        let fixture = try UserServerFixture(model: model)
        let peer = try RawPeer(path: fixture.path)
        let read = VFIOUserCommand.migDataRead.rawValue
        let driver = try #require(fixture.server.device.migration)
        peer.expectError(try peer.request(read, VFIOUserMigData(argsz: 8, size: 16).encoded), EINVAL, "a read with no stream open")
        try driver.setState(.stopCopy)
        let expected = try MigrationDriverReference.stream(model.state, identity: model.migrationIdentity)

        var got: [UInt8] = []
        func readOK(_ size: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let reply = try peer.request(read, VFIOUserMigData(argsz: 8, size: UInt32(size)).encoded)
            #expect(!reply.header.isError, sourceLocation: sourceLocation)
            let answer = try VFIOUserMigData(decoding: reply.payload)
            #expect(answer.argsz == UInt32(8 + answer.data.count) && answer.size == UInt32(answer.data.count), sourceLocation: sourceLocation)
            got += answer.data
        }
        try readOK(100)
        peer.expectError(try peer.request(read, VFIOUserMigData(argsz: 12, size: 4, data: [1, 2, 3, 4]).encoded), EINVAL, "a read carrying data")
        peer.expectError(try peer.request(read, VFIOUserMigData(argsz: 8, size: 4, data: [1, 2]).encoded), EINVAL, "a read with 2 bytes after the structure")
        peer.expectError(try peer.request(read, VFIOUserMigData(argsz: 4, size: 4).encoded), EINVAL, "argsz 4")
        peer.expectError(try peer.request(read, [8, 0, 0, 0]), EINVAL, "half a structure")
        peer.expectError(try peer.request(read, VFIOUserMigData(argsz: 8, size: (1 << 20) + 1).encoded), E2BIG, "a read past max_data_xfer_size")
        let event = try EventFD()
        peer.expectError(try peer.request(read, VFIOUserMigData(argsz: 8, size: 16).encoded, fds: [event.fd]), EINVAL, "a read with a descriptor")
        // Without a reply the bytes are still taken.
        try peer.socket.send(id: 500, command: read, flags: .noReply, payload: VFIOUserMigData(argsz: 8, size: 50).encoded)
        let skipped = try driverBytes(expected, after: got.count, count: 50)
        got += skipped
        while got.count < expected.count { try readOK(1 << 20) }
        try readOK(1 << 20)   // the end: an empty reply
        #expect(got == expected)
        try Self.expectNextClientServed(fixture, leaving: peer)
    }

    @Test func badWritesAreRefusedAndAppendNothing() throws {
        let model = StateModel()
        let original = model.state
        let fixture = try UserServerFixture(model: model)
        let peer = try RawPeer(path: fixture.path)
        let write = VFIOUserCommand.migDataWrite.rawValue
        let driver = try #require(fixture.server.device.migration)
        let stream = try MigrationDriverReference.stream(original, identity: model.migrationIdentity)
        func piece(_ range: Range<Int>) -> [UInt8] {
            VFIOUserMigData(argsz: 8, size: UInt32(range.count), data: Array(stream[range])).encoded
        }
        peer.expectError(try peer.request(write, piece(0..<10)), EINVAL, "a write with no stream open")
        try driver.setState(.resuming)
        model.state = []

        peer.expectError(try peer.request(write, VFIOUserMigData(argsz: 8, size: 8, data: [1, 2, 3, 4]).encoded + [5, 6, 7]), EINVAL, "size 8, 7 data bytes")
        peer.expectError(try peer.request(write, VFIOUserMigData(argsz: 8, size: 4).encoded), EINVAL, "size 4, no data")
        peer.expectError(try peer.request(write, VFIOUserMigData(argsz: 4, size: 1, data: [1]).encoded), EINVAL, "argsz 4")
        let tooLarge = (1 << 20) + 1
        peer.expectError(try peer.request(write, VFIOUserMigData(argsz: 8, size: UInt32(tooLarge), data: [UInt8](repeating: 0xEE, count: tooLarge)).encoded),
                         E2BIG, "a write past max_data_xfer_size")
        let event = try EventFD()
        peer.expectError(try peer.request(write, piece(0..<100), fds: [event.fd]), EINVAL, "a write with a descriptor")
        // Past what the server reads at all: drained, E2BIG, the stream in step.
        let limit = Int(fixture.server.configuration.capabilities.maxDataTransferSize) + 4096
        peer.writeRaw(VFIOUserHeader(messageID: 77, command: write, messageSize: UInt32(16 + limit + 1), flags: []).encoded
                      + [UInt8](repeating: 0xEE, count: limit + 1))
        peer.expectError(try peer.receive(id: 77), E2BIG, "a message past the limit")

        // None of that was appended: the good stream, in odd pieces (one without a
        // reply, one empty), loads.
        try peer.socket.send(id: 600, command: write, flags: .noReply, payload: piece(0..<1000))
        #expect(!(try peer.request(write, piece(1000..<1000))).header.isError)
        var at = 1000
        var i = 0
        while at < stream.count {
            let n = min(Self.oddSizes[i % Self.oddSizes.count], 1 << 20, stream.count - at)
            let reply = try peer.request(write, piece(at..<(at + n)))
            #expect(!reply.header.isError && reply.payload.isEmpty)
            at += n
            i += 1
        }
        try driver.setState(.stop)
        #expect(model.state == original)
        try Self.expectNextClientServed(fixture, leaving: peer)
    }

    /// The server still answers: `leaving` disconnects, a fresh client is served.
    static func expectNextClientServed(_ fixture: UserServerFixture, leaving peer: RawPeer) throws {
        peer.socket.close()
        let client = try fixture.connect()
        defer { client.close() }
        #expect(try client.migrationState() == .running)   // the server reset what the peer left
        #expect(try client.deviceInfo().numRegions == 0)
    }

    /// The `count` bytes of `expected` after the first `after` (checking they exist).
    private func driverBytes(_ expected: [UInt8], after: Int, count: Int) throws -> [UInt8] {
        try #require(after + count <= expected.count)
        return Array(expected[after..<(after + count)])
    }
}

/// The stream a fresh kit driver saves for `state` (STOP -> STOP_COPY), read whole.
enum MigrationDriverReference {
    final class Holder: MigratableDevice {
        let migrationFeatures: MigrationFeatures = [.stopCopy]
        let migrationIdentity: MigrationIdentity
        let state: [UInt8]
        init(_ state: [UInt8], _ identity: MigrationIdentity) {
            self.state = state
            migrationIdentity = identity
        }
        func setMigrationRunState(_ state: MigrationRunState) throws(VFIOError) {}
        func saveState() throws(VFIOError) -> [UInt8] { state }
        func loadState(_ state: [UInt8], version: UInt32) throws(VFIOError) {}
    }

    static func stream(_ state: [UInt8], identity: MigrationIdentity) throws -> [UInt8] {
        let driver = try MigrationDriver(device: Holder(state, identity))
        try driver.setState(.stopCopy)
        var all: [UInt8] = []
        while true {
            let part = try driver.readData(max: 1 << 20)
            if part.isEmpty { return all }
            all += part
        }
    }
}
