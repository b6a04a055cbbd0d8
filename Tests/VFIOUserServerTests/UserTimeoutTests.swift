import CVFIO
import Glibc
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

// Slow or stalled clients: one that stops inside a message, or stops reading what the
// server sends, is dropped after the configured limit and the next client is served; one
// that idles between messages is not. The waits are for events (the server's log line,
// the connection's end, the next client's answer), each bounded by 10 s; only the idle
// client's test waits for a close that must not come.

/// A server (BulkMemoryModel) on a real socket whose log is kept, with the given limits.
final class TimeoutFixture {
    let directory: String
    let path: String
    let server: VFIOUserServer
    let log = LogBook()

    init(partialMessage: Duration?, send: Duration?) throws {
        directory = try makeTemporaryDirectory("/tmp/swift-vfio-timeout-XXXXXX")
        path = directory + "/device.sock"
        var configuration = VFIOUserServer.Configuration()
        configuration.partialMessageTimeout = partialMessage
        configuration.sendTimeout = send
        server = try VFIOUserServer(model: BulkMemoryModel(), configuration: configuration, logger: log.logger)
        try server.listen(path: path)
    }

    /// A negotiated raw peer whose own blocking sends give up after 10 s (so that a server
    /// that never drops it cannot hang the test).
    func stalledPeer() throws -> RawPeer {
        let peer = try RawPeer(path: path)
        #expect(setSocketTimeout(peer.socket.fd, SO_SNDTIMEO, 10_000_000_000) == 0)
        return peer
    }

    /// The warning that dropped a client, within 10 s.
    func dropWarning() -> LogBook.Entry? {
        log.wait(for: { $0.level == .warning && $0.message.hasPrefix("client dropped") })?.first
    }

    /// A fresh client is answered.
    func expectNextClientServed(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let client = try VFIOUserClient(path: path)
        defer { client.close() }
        #expect(try client.deviceInfo().numRegions == 1, "the next client is not served", sourceLocation: sourceLocation)
    }

    deinit {
        server.stop()
        unlink(path)
        rmdir(directory)
    }
}

/// Reads `fd` until the peer closes it (what arrives is dropped); false when that takes
/// more than `seconds`.
func waitForEndOfStream(_ fd: Int32, seconds: Int = 10) -> Bool {
    let deadline = monotonicNanoseconds() + UInt64(seconds) * 1_000_000_000
    var scratch = [UInt8](repeating: 0, count: 65536)
    while true {
        let now = monotonicNanoseconds()
        guard now < deadline else { return false }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&p, 1, Int32((deadline - now) / 1_000_000) + 1)
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { return false }
        let n = recv(fd, &scratch, scratch.count, Int32(MSG_DONTWAIT))
        if n == 0 || (n < 0 && errno == ECONNRESET) { return true }
    }
}

/// A region access to region 0 of `BulkMemoryModel` (REGION_WRITE with `data`).
func regionAccess(_ command: VFIOUserCommand, id: UInt16, count: Int, data: [UInt8] = []) -> [UInt8] {
    let payload = VFIOUserRegionAccess(offset: 0, region: 0, count: UInt32(count), data: data).encoded
    return VFIOUserHeader(messageID: id, command: command.rawValue, messageSize: UInt32(16 + payload.count), flags: []).encoded + payload
}

@Suite struct UserTimeoutTests {
    static let limit = Duration.milliseconds(200)

    /// Parts of a message, after which the client sends nothing more.
    static let partialMessages: [(String, [UInt8])] = [
        ("half a header", Array(VFIOUserHeader(messageID: 7, command: VFIOUserCommand.deviceGetInfo.rawValue, messageSize: 32, flags: []).encoded.prefix(8))),
        ("a header and half a small payload", Array(regionAccess(.regionWrite, id: 7, count: 4, data: [1, 2, 3, 4]).prefix(26))),
        ("a header and half a 64 KiB payload", Array(regionAccess(.regionWrite, id: 7, count: 65536, data: [UInt8](repeating: 0xA5, count: 65536)).prefix(16 + 16 + 32768))),
        // The rest (512 KiB) is read blocking under a receive timeout (`blockingReadMinimum`).
        ("a header and half a 1 MiB payload", Array(regionAccess(.regionWrite, id: 7, count: 1 << 20, data: [UInt8](repeating: 0xA5, count: 1 << 20)).prefix(16 + 16 + (1 << 19)))),
    ]

    @Test(arguments: 0..<partialMessages.count)
    func aClientStalledInsideAMessageIsDropped(_ index: Int) throws {
        let (what, bytes) = Self.partialMessages[index]
        let fixture = try TimeoutFixture(partialMessage: Self.limit, send: Self.limit)
        let peer = try fixture.stalledPeer()
        let start = monotonicNanoseconds()
        peer.writeRaw(bytes)
        let warning = try #require(fixture.dropWarning(), "a client that sent \(what) was not dropped")
        let elapsed = monotonicNanoseconds() - start
        #expect(elapsed >= 200_000_000, "\(what): dropped after \(elapsed / 1_000_000) ms, before the limit")
        #expect(warning.metadata["timeout"] == "partial message")
        #expect(warning.metadata["limit"] == "200 ms")
        #expect(warning.metadata["connection"] == "1")
        #expect(warning.metadata["pid"] == "\(getpid())")
        #expect(waitForEndOfStream(peer.socket.fd), "\(what): the connection stayed open")
        try fixture.expectNextClientServed()
    }

    /// The limit runs from a message's first byte to its last, not per read: a client that
    /// sends one byte every 50 ms never lets a read wait 200 ms, and is dropped all the same.
    /// With 84 data bytes the server's reads do not block; with 1 MiB (128 KiB sent at
    /// once) the rest is read blocking under a receive timeout, which must keep to the
    /// message's limit, not start again with each byte.
    @Test(arguments: [84, 1 << 20])
    func aClientTricklingAMessageIsDropped(_ count: Int) throws {
        let fixture = try TimeoutFixture(partialMessage: Self.limit, send: Self.limit)
        let peer = try fixture.stalledPeer()
        let message = regionAccess(.regionWrite, id: 7, count: count, data: [UInt8](repeating: 0x3C, count: count))
        let start = monotonicNanoseconds()
        var sent = count > 84 ? 16 + 16 + (128 << 10) : 16
        peer.writeRaw(Array(message[0..<sent]))
        var open = true
        while open && sent < message.count {
            peer.writeRaw([message[sent]])
            sent += 1
            // The next byte 50 ms on, unless the server closes the connection first.
            var p = pollfd(fd: peer.socket.fd, events: Int16(POLLIN), revents: 0)
            open = poll(&p, 1, 50) == 0
        }
        #expect(sent < message.count, "the whole message went out (\(sent) bytes over \((monotonicNanoseconds() - start) / 1_000_000) ms) without a drop")
        let warning = try #require(fixture.dropWarning())
        #expect(monotonicNanoseconds() - start >= 200_000_000)
        #expect(warning.metadata["timeout"] == "partial message")
        #expect(waitForEndOfStream(peer.socket.fd))
        try fixture.expectNextClientServed()
    }

    /// A client sends reads and never reads the replies: small ones until the socket is
    /// full (no room for a whole reply), or 1 MiB ones (a reply stops partway).
    @Test(arguments: [4, 1 << 20])
    func aClientThatStopsReadingIsDropped(_ size: Int) throws {
        let fixture = try TimeoutFixture(partialMessage: Self.limit, send: Self.limit)
        let peer = try fixture.stalledPeer()
        // Enough replies to fill the server's send buffer twice over.
        let bufferSize = (try? String(contentsOfFile: "/proc/sys/net/core/wmem_default", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 212_992
        let count = min(size == 4 ? 2 * bufferSize / 36 + 1000 : 4, 200_000)
        var requests: [UInt8] = []
        requests.reserveCapacity(count * 32)
        for i in 0..<count { requests += regionAccess(.regionRead, id: UInt16(truncatingIfNeeded: i), count: size) }
        let start = monotonicNanoseconds()
        peer.writeRaw(requests)   // returns when all went out, or when the server drops the peer
        let warning = try #require(fixture.dropWarning(), "a client reading no \(size)-byte replies was not dropped")
        #expect(monotonicNanoseconds() - start >= 200_000_000)
        #expect(warning.metadata["timeout"] == "send")
        #expect(warning.metadata["limit"] == "200 ms")
        #expect(warning.metadata["connection"] == "1")
        #expect(waitForEndOfStream(peer.socket.fd), "the connection stayed open")
        try fixture.expectNextClientServed()
    }

    /// A client idling between messages for several times the limits is not dropped, and
    /// each message's time starts at its own first byte. Nothing happens while a client
    /// idles (the server blocks in recvmsg with no timer), so there is no event to wait
    /// for: the test waits three periods for a close that must not come.
    @Test func anIdleClientIsNotDropped() throws {
        let fixture = try TimeoutFixture(partialMessage: .milliseconds(250), send: .milliseconds(250))
        let peer = try RawPeer(path: fixture.path)
        func closes(within milliseconds: Int32) -> Bool {
            var p = pollfd(fd: peer.socket.fd, events: Int16(POLLIN), revents: 0)
            return poll(&p, 1, milliseconds) != 0
        }
        let request = VFIOUserHeader(messageID: 40, command: VFIOUserCommand.deviceGetInfo.rawValue, messageSize: 32, flags: []).encoded
            + VFIOUserDeviceInfo.request.encoded
        for round in 0..<2 {
            // A message in two parts 25 ms apart, well within the limit.
            peer.writeRaw(Array(request[0..<10]))
            #expect(!closes(within: 25), "round \(round): the connection closed inside a message")
            peer.writeRaw(Array(request[10...]))
            #expect(!(try peer.receive(id: 40)).header.isError)
            // Idle for three times the limit.
            #expect(!closes(within: 750), "round \(round): the server closed an idle client's connection")
        }
        #expect(fixture.server.connectionCount == 1)
        #expect(!fixture.log.entries.contains { $0.level >= .warning }, "\(fixture.log.entries.filter { $0.level >= .warning })")
    }

    /// `stop()` ends serving a client stalled inside a message and a client that reads
    /// nothing, long before the (default, 10 s) limits.
    @Test(arguments: [false, true])
    func stopEndsAStalledConnection(_ notReading: Bool) throws {
        let fixture = try TimeoutFixture(partialMessage: .seconds(10), send: .seconds(10))
        let peer = try fixture.stalledPeer()
        if notReading {
            peer.writeRaw(regionAccess(.regionRead, id: 7, count: 1 << 20))
            // The reply has begun: the server is inside a send that cannot finish.
            var p = pollfd(fd: peer.socket.fd, events: Int16(POLLIN), revents: 0)
            #expect(poll(&p, 1, 10_000) == 1)
        } else {
            peer.writeRaw(Array(regionAccess(.regionWrite, id: 7, count: 4, data: [1, 2, 3, 4]).prefix(20)))
        }
        let stopped = try EventFD()
        let start = monotonicNanoseconds()
        let thread = WorkerThread(name: "stop") { [server = fixture.server] in
            server.stop()
            try? stopped.signal()
        }
        #expect(try waitSignalled(stopped, milliseconds: 5000) != nil, "stop() did not return")
        thread.join()
        #expect(monotonicNanoseconds() - start < 5_000_000_000)
        #expect(fixture.log.wait(for: { $0.message == "client disconnected" && $0.metadata["reason"] == "the server stopped" }) != nil)
        #expect(!fixture.log.entries.contains { $0.level >= .warning })
    }

    @Test func timeoutsOutOfRangeAreRefused() throws {
        for bad in [Duration.zero, .seconds(-1), .seconds(86_401)] {
            var configuration = VFIOUserServer.Configuration()
            configuration.sendTimeout = bad
            #expect(throws: VFIOError.self, "sendTimeout \(bad)") { try VFIOUserServer(model: BulkMemoryModel(), configuration: configuration) }
            configuration = VFIOUserServer.Configuration()
            configuration.partialMessageTimeout = bad
            #expect(throws: VFIOError.self, "partialMessageTimeout \(bad)") { try VFIOUserServer(model: BulkMemoryModel(), configuration: configuration) }
        }
        var none = VFIOUserServer.Configuration()
        none.partialMessageTimeout = nil
        none.sendTimeout = nil
        _ = try VFIOUserServer(model: BulkMemoryModel(), configuration: none)
    }
}
