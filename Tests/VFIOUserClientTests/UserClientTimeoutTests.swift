import Glibc
import Testing
import VFIO
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import VFIOSystem
import TestSupport

/// A server that answers the wrong message, or stops answering, or stops reading: the
/// client's callers get a typed error instead of waiting forever, and the connection fails
/// for every caller. Every server here is played by the test on a real socket pair; a
/// call is given 10 s before the test reports it hung (then closes the client to free it).
@Suite struct UserClientTimeoutTests {
    static let deviceInfo = VFIOUserDeviceInfo(flags: [.pci], numRegions: 9, numIRQs: 5).encoded

    // MARK: Replies that match no request

    /// A reply to an id the client never sent fails the connection at once (the reply
    /// timeout is a minute here): the waiting caller, and every later call, get `EPROTO`.
    @Test func aReplyToAnIDNeverSentFailsTheConnection() throws {
        let server = try ScriptedServer()
        server.run { s in
            s.negotiate()
            guard let request = s.next() else { return }
            s.reply(to: request, id: request.header.messageID &+ 100, payload: Self.deviceInfo)
            s.ignoreEverything()
        }
        let client = try VFIOUserClient(socket: server.near, name: "scripted", configuration: shortTimeouts(replyTimeout: .seconds(60)))
        let call = BackgroundCall { _ = try client.deviceInfo() }
        let error = call.error(within: 10, "DEVICE_GET_INFO answered under another id")
        #expect(error?.errnoValue == EPROTO, "\(String(describing: error))")
        #expect("\(String(describing: error))".contains("reply to message id 102, which no request awaits"))
        #expect(!client.isConnected)
        let later = BackgroundCall { _ = try client.irqInfo(0) }
        #expect(later.error(within: 10, "a call after the failure")?.errnoValue == EPROTO)
        client.close()
        call.join()
        later.join()
        server.join()
    }

    /// The same at VERSION: the client is not made.
    @Test func aVersionReplyUnderAnotherIDIsRefused() throws {
        let server = try ScriptedServer()
        server.run { s in
            guard let version = s.next() else { return }
            s.reply(to: version, id: version.header.messageID &+ 1,
                    payload: VFIOUserVersion(capabilities: VFIOUserCapabilities()).encoded)
            s.ignoreEverything()
        }
        let near = server.near
        let call = BackgroundCall {
            _ = try VFIOUserClient(socket: near, name: "scripted", configuration: shortTimeouts(replyTimeout: .seconds(60)))
        }
        let error = call.error(within: 10, "VERSION answered under another id")
        #expect(error?.errnoValue == EPROTO, "\(String(describing: error))")
        server.far.shutdown()
        call.join()
        server.join()
    }

    /// A second reply to a request already answered (both in one write, so the first
    /// reader sees both): the caller keeps its reply, the connection fails.
    @Test func aSecondReplyToOneRequestFailsTheConnection() throws {
        let server = try ScriptedServer()
        server.run { s in
            s.negotiate()
            guard let request = s.next() else { return }
            let reply = ScriptedServer.bytes(id: request.header.messageID, command: request.header.command, flags: .reply,
                                             payload: Self.deviceInfo)
            s.sendRaw(reply + reply)
            // Later requests are answered properly.
            while let next = s.next() { s.reply(to: next, payload: Self.deviceInfo) }
        }
        let client = try VFIOUserClient(socket: server.near, name: "scripted", configuration: shortTimeouts(replyTimeout: .seconds(60)))
        #expect(try client.deviceInfo().numRegions == 9)
        expectErrno(EPROTO) { _ = try client.deviceInfo() }
        client.close()
        server.join()
    }

    // MARK: A server that stops answering

    /// What a caller of each kind gets from a server that reads requests and answers none.
    enum Caller: String, CaseIterable {
        /// A lone request reading its own reply (recvmsg).
        case lone
        /// A lone region read reading its own reply with recv into the caller's buffer.
        case loneRegionRead
        /// A caller waiting on its condition while the receive thread holds the socket.
        case waitingForTheReceiveThread
        /// A batch of region reads in flight at once.
        case batch
        /// DEVICE_RESET, which has the slow reply timeout.
        case reset
    }

    @Test(arguments: Caller.allCases)
    func aSilentServerTimesTheCallerOut(_ caller: Caller) throws {
        let server = try ScriptedServer()
        server.run { s in
            s.negotiate()
            s.ignoreEverything()
        }
        let timeout = 200
        let slow = 600
        let client = try VFIOUserClient(socket: server.near, name: "scripted",
                                        configuration: shortTimeouts(replyTimeout: .milliseconds(timeout), slowReplyTimeout: .milliseconds(slow),
                                                                     idleReadDelay: caller == .waitingForTheReceiveThread ? .zero : .milliseconds(5)))
        let call = BackgroundCall {
            let buffers = (0..<4).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4) }
            defer { for b in buffers { b.deallocate() } }
            switch caller {
            case .lone, .waitingForTheReceiveThread: _ = try client.deviceInfo()
            case .loneRegionRead: try client.read(region: 1, offset: 0, into: buffers[0])
            case .batch: try client.perform(buffers.map { .read(region: 1, offset: 0, into: $0) })
            case .reset: try client.reset()
            }
        }
        let error = call.error(within: 10, "\(caller) request to a silent server")
        client.close()
        call.join()
        server.join()
        let limit = caller == .reset ? slow : timeout
        #expect(error?.errnoValue == ETIMEDOUT, "\(String(describing: error))")
        #expect("\(String(describing: error))".contains("no reply within \(limit) ms"))
        #expect(call.seconds >= Double(limit) / 1000, "gave up after \(call.seconds) s")
    }

    /// Two callers at once (one reads, one waits for its reply): both get the timeout,
    /// and later calls fail at once with it.
    @Test func callersWaitingTogetherAllGetTheTimeout() throws {
        let server = try ScriptedServer()
        server.run { s in
            s.negotiate()
            s.ignoreEverything()
        }
        let client = try VFIOUserClient(socket: server.near, name: "scripted", configuration: shortTimeouts(replyTimeout: .milliseconds(200)))
        let calls = (0..<2).map { _ in BackgroundCall { _ = try client.deviceInfo() } }
        let errors = calls.map { $0.error(within: 10, "one of two callers of a silent server") }
        #expect(errors.allSatisfy { $0?.errnoValue == ETIMEDOUT }, "\(errors)")
        #expect(!client.isConnected)
        let later = BackgroundCall { _ = try client.irqInfo(0) }
        #expect(later.error(within: 10, "a call after the failure")?.errnoValue == ETIMEDOUT)
        #expect(later.seconds < 0.1, "a call after the failure must fail at once, not after \(later.seconds) s")
        client.close()
        for call in calls { call.join() }
        later.join()
        server.join()
    }

    /// A server that keeps sending other messages (DMA_WRITE with NO_REPLY, of nothing)
    /// but never the reply: the socket is never quiet, the caller still gives up in time.
    @Test func aServerThatKeepsSendingOtherMessagesStillTimesTheCallerOut() throws {
        let server = try ScriptedServer()
        server.run { s in
            s.negotiate()
            guard s.next() != nil else { return }
            let command = ScriptedServer.bytes(id: 1, command: VFIOUserCommand.dmaWrite.rawValue, flags: .noReply,
                                               payload: [UInt8](repeating: 0, count: 16))
            let run = Array([[UInt8]](repeating: command, count: 64).joined())
            // Until the client fails the connection (then the send fails), or 2 million
            // commands (several seconds of them), so that a client that waits for ever
            // cannot keep the test going for ever.
            for _ in 0..<(2_000_000 / 64) { guard s.sendRaw(run) else { break } }
        }
        let client = try VFIOUserClient(socket: server.near, name: "scripted", configuration: shortTimeouts(replyTimeout: .milliseconds(200)))
        let call = BackgroundCall { _ = try client.deviceInfo() }
        let error = call.error(within: 10, "request to a server that sends only other messages")
        client.close()
        call.join()
        server.join()
        #expect(error?.errnoValue == ETIMEDOUT, "\(String(describing: error))")
        #expect("\(String(describing: error))".contains("VFIO_USER_DEVICE_GET_INFO (message id 2): no reply within 200 ms"))
    }

    /// A reply whose header promises 64 bytes of payload, of which 8 come: the caller, blocked
    /// reading the rest, gives up after the reply timeout.
    @Test func aReplyLeftHalfSentTimesTheCallerOut() throws {
        let server = try ScriptedServer()
        server.run { s in
            s.negotiate()
            guard let request = s.next() else { return }
            let whole = ScriptedServer.bytes(id: request.header.messageID, command: request.header.command, flags: .reply,
                                             payload: [UInt8](repeating: 0, count: 64))
            s.sendRaw(Array(whole[0..<24]))
            s.ignoreEverything()
        }
        let client = try VFIOUserClient(socket: server.near, name: "scripted", configuration: shortTimeouts(replyTimeout: .milliseconds(200)))
        let call = BackgroundCall { _ = try client.deviceInfo() }
        let error = call.error(within: 10, "request whose reply stops halfway")
        client.close()
        call.join()
        server.join()
        #expect(error?.errnoValue == ETIMEDOUT, "\(String(describing: error))")
        #expect("\(String(describing: error))".contains("VFIO_USER_DEVICE_GET_INFO (message id 2): no reply within 200 ms"))
    }

    // MARK: A server that stops reading

    /// A server that reads nothing after VERSION: a 4 MiB write (with a reply, or posted)
    /// fills the socket, and the sender gives up after the reply timeout.
    @Test(arguments: [false, true])
    func aServerThatReadsNothingTimesTheSenderOut(posted: Bool) throws {
        let server = try ScriptedServer()
        server.run { s in s.negotiate() }
        let client = try VFIOUserClient(socket: server.near, name: "scripted", configuration: shortTimeouts(replyTimeout: .milliseconds(200)))
        server.join()
        let data = [UInt8](repeating: 0x5a, count: 4 << 20)
        let call = BackgroundCall {
            try data.withUnsafeBytes { raw in
                if posted {
                    try client.postWrite(region: 1, offset: 0, from: raw)
                } else {
                    try client.write(region: 1, offset: 0, from: raw)
                }
            }
        }
        let error = call.error(within: 10, "4 MiB write to a server that reads nothing")
        client.close()
        call.join()
        // The sender's own wait for room and the receive thread's watch over the request
        // end at the same moment: either may say so.
        let text = "\(String(describing: error))"
        #expect(error?.errnoValue == ETIMEDOUT, "\(text)")
        #expect(text.contains("VFIO_USER_REGION_WRITE (message id 2): the server read nothing for 200 ms")
                    || text.contains("VFIO_USER_REGION_WRITE (message id 2): no reply within 200 ms"), "\(text)")
    }
}
