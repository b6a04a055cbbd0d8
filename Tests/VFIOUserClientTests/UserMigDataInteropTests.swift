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

// MIG_DATA_READ / MIG_DATA_WRITE in the byte forms libvfio-user's servers use (see
// Support/ScriptedMigrationServer.swift), against a scripted server on a real socket pair.

@Suite struct UserMigDataInteropTests {
    static let stream: [UInt8] = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }

    /// How the scripted server shapes its MIG_DATA_READ replies.
    enum ReplyShape: Sendable {
        /// libvfio-user's: payload 8 + the size asked for, `size` what there is.
        case padded
        /// 100 bytes more than that (the client reads the message whole).
        case longer
        /// `size` one more than asked for, the payload carrying that much.
        case sizeOverAsked
        /// `size` one more than asked for, the payload 8 + the size asked for.
        case sizeOverAskedPadded
        /// `size` 100, 50 data bytes.
        case sizeOverData
    }

    struct ReadScript: Sendable {
        var at = 0
        var shape = ReplyShape.padded
        var requests: [[UInt8]] = []
    }

    /// Answers MIG_DATA_READ from `stream`, shaped as `script.shape` says, recording the
    /// request payloads.
    private static func readServer(_ script: Shared<ReadScript>) throws -> ScriptedMigrationServer {
        try ScriptedMigrationServer(maxDataTransferSize: 4096) { message in
            guard message.header.command == VFIOUserCommand.migDataRead.rawValue,
                  let (_, asked) = migDataFields(message.payload) else {
                return .failure(.errno("scripted server: not a MIG_DATA_READ", EINVAL))
            }
            return .success(script.with { s in
                s.requests.append(message.payload)
                let n = min(Int(asked), stream.count - s.at)
                let data = Array(stream[s.at..<(s.at + n)])
                let junk = { (count: Int) in [UInt8](repeating: 0xA5, count: count) }
                switch s.shape {
                case .padded:
                    s.at += n
                    return u32le(UInt32(8 + n)) + u32le(UInt32(n)) + data + junk(Int(asked) - n)
                case .longer:
                    s.at += n
                    return u32le(UInt32(8 + n)) + u32le(UInt32(n)) + data + junk(Int(asked) - n + 100)
                case .sizeOverAsked:
                    return u32le(asked + 9) + u32le(asked + 1) + junk(Int(asked) + 1)
                case .sizeOverAskedPadded:
                    return u32le(asked + 9) + u32le(asked + 1) + junk(Int(asked))
                case .sizeOverData:
                    return u32le(108) + u32le(100) + junk(50)
                }
            })
        }
    }

    /// libvfio-user pads every MIG_DATA_READ reply to 8 + the size asked for while its
    /// `size` says how much data there is: the client takes `size` bytes (as the reply is
    /// read into the caller's buffer, and as a whole message when it is longer still),
    /// sends `argsz` 8 + size, and still refuses a `size` over what it asked for or over
    /// the data present, the connection staying in step.
    @Test func paddedReadRepliesAreTakenForTheirSize() throws {
        let script = Shared(ReadScript())
        let server = try Self.readServer(script)
        defer { server.close() }
        let client = server.client
        #expect(client.transferChunk == 4096)

        #expect(try client.migrationDataRead(size: 4096) == Array(Self.stream[0..<4096]))
        #expect(try client.migrationDataRead(size: 4096) == Array(Self.stream[4096..<8192]))
        #expect(try client.migrationDataRead(size: 4096) == Array(Self.stream[8192..<10_000]))   // 2192 bytes of padding
        #expect(try client.migrationDataRead(size: 4096) == [])                                  // size 0, 4096 of padding
        script.with { $0 = ReadScript(at: 0, shape: .longer) }
        #expect(try client.migrationDataRead(size: 1000) == Array(Self.stream[0..<1000]))
        script.with { $0.at = 9000 }
        #expect(try client.migrationDataRead(size: 3000) == Array(Self.stream[9000..<10_000]))

        for shape in [ReplyShape.sizeOverAsked, .sizeOverAskedPadded, .sizeOverData] {
            script.with { $0.shape = shape }
            do {
                _ = try client.migrationDataRead(size: 64)
                Issue.record("\(shape): accepted")
            } catch {
                guard case .malformed = error.reason else { Issue.record("\(shape): \(error)"); continue }
            }
        }
        // Still in step: the stream through VFIOUserMigrationStream, in 4096-byte requests,
        // ends at the padded short reply.
        script.with { $0 = ReadScript(at: 0, shape: .padded) }
        let saving = VFIOUserMigrationStream(client: client, direction: .saving, openedBy: .stopCopy)
        var buffer = [UInt8](repeating: 0, count: 16_384)
        let count = try buffer.withUnsafeMutableBytes { try saving.read(into: $0) }
        #expect(count == Self.stream.count && Array(buffer[0..<count]) == Self.stream)
        #expect(script.with { $0.requests } == [[UInt8]](repeating: u32le(4104) + u32le(4096), count: 3))
    }

    /// libvfio-user refuses a MIG_DATA_WRITE whose `argsz` is below 8 + `size` (EINVAL):
    /// the client states the whole structure, for every piece, the empty one included.
    @Test func writesStateTheWholeStructureInArgsz() throws {
        struct WriteScript: Sendable {
            var fields: [[UInt32]] = []
            var received: [UInt8] = []
        }
        let script = Shared(WriteScript())
        let server = try ScriptedMigrationServer(maxDataTransferSize: 4096) { message in
            guard message.header.command == VFIOUserCommand.migDataWrite.rawValue,
                  let (argsz, size) = migDataFields(message.payload) else {
                return .failure(.errno("scripted server: not a MIG_DATA_WRITE", EINVAL))
            }
            return script.with { s in
                s.fields.append([argsz, size])
                guard UInt64(argsz) >= 8 + UInt64(size), message.payload.count == 8 + Int(size) else {
                    return .failure(.errno("argsz too small", EINVAL))
                }
                s.received += message.payload[8...]
                return .success([])
            }
        }
        defer { server.close() }
        let client = server.client
        try client.migrationDataWrite([])
        try client.migrationDataWrite([0x42])
        try client.migrationDataWrite(Array(Self.stream[0..<4096]))
        let resuming = VFIOUserMigrationStream(client: client, direction: .resuming, openedBy: .resuming)
        try Self.stream.withUnsafeBytes { try resuming.write(from: $0) }
        let (fields, received) = script.with { ($0.fields, $0.received) }
        #expect(fields == [[8, 0], [9, 1], [4104, 4096], [4104, 4096], [4104, 4096], [1816, 1808]])
        #expect(received == [0x42] + Self.stream[0..<4096] + Self.stream)
    }
}
