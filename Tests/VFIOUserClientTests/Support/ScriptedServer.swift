import Glibc
import Testing
import VFIO
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import VFIOSystem

/// A vfio-user server played by the test, message by message, on the far end of a real
/// socket pair: the client under test gets the near end. `run` starts the script on a
/// thread of its own; the script ends when it returns.
final class ScriptedServer: @unchecked Sendable {
    let near: VFIOUserSocket
    let far: VFIOUserSocket
    private var thread: WorkerThread?
    /// Commands the script received, by command number (script thread; read after `join`).
    private let receivedCounts = Monitor([UInt16: Int]())

    init() throws {
        (near, far) = try VFIOUserSocket.pair()
    }

    deinit { far.close() }

    func run(_ script: @escaping @Sendable (ScriptedServer) -> Void) {
        thread = WorkerThread(name: "scripted server") { [self] in script(self) }
    }

    /// Waits for the script to end.
    func join() { thread?.join() }

    /// How many `command` messages the script received.
    func received(_ command: VFIOUserCommand) -> Int { receivedCounts.withLock { $0[command.rawValue] ?? 0 } }

    /// The next message from the client; nil when the connection ended or failed.
    func next() -> VFIOUserMessage? {
        guard case .message(let message)? = try? far.receive(maxPayload: 8 << 20, maxFDs: 16) else { return nil }
        receivedCounts.withLock { $0[message.header.command, default: 0] += 1 }
        return message
    }

    /// Sends a reply to `request` (with another id when `id` is given).
    func reply(to request: VFIOUserMessage, id: UInt16? = nil, payload: [UInt8] = []) {
        try? far.send(id: id ?? request.header.messageID, command: request.header.command, flags: .reply, payload: payload)
    }

    /// Writes `bytes` as they are (several messages, or part of one), blocking while the
    /// socket is full; false when the connection failed first.
    @discardableResult
    func sendRaw(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.send(far.fd, raw.baseAddress! + done, raw.count - done, Int32(MSG_NOSIGNAL))
                if n <= 0 { return false }
                done += n
            }
            return true
        }
    }

    /// The bytes of a message: its header (size 16 + `payload.count` unless `size` says
    /// otherwise) and `payload`.
    static func bytes(id: UInt16, command: UInt16, flags: VFIOUserMessageFlags, payload: [UInt8] = [], size: UInt32? = nil) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: VFIOUserHeader.size)
        header.withUnsafeMutableBytes {
            VFIOUserHeader(messageID: id, command: command, messageSize: size ?? UInt32(VFIOUserHeader.size + payload.count), flags: flags)
                .store(into: $0)
        }
        return header + payload
    }

    /// Answers the client's VERSION as a server with `capabilities`.
    func negotiate(_ capabilities: VFIOUserCapabilities = VFIOUserCapabilities(maxMessageFDs: 16, maxDataTransferSize: 1 << 20)) {
        guard let version = next() else { return }
        reply(to: version, payload: VFIOUserVersion(capabilities: capabilities).encoded)
    }

    /// Reads until the client closes the connection, answering nothing.
    func ignoreEverything() {
        while next() != nil {}
    }
}

/// A call made on a thread of its own, so that a test can bound how long it waits for it
/// (a call that never returns is reported, then unblocked by the test, e.g. by closing
/// the client).
final class BackgroundCall: @unchecked Sendable {
    private let outcome = Monitor<Result<Void, any Error>?>(nil)
    private let finished = Condition()
    private var thread: WorkerThread?
    let started = monotonicNanoseconds()
    private let ended = Monitor<UInt64>(0)

    init(_ body: @escaping @Sendable () throws -> Void) {
        thread = WorkerThread(name: "background call") { [self] in
            let result = Result { try body() }
            ended.withLock { $0 = monotonicNanoseconds() }
            outcome.withLock { state in
                state = result
                finished.signal()
            }
        }
    }

    /// What the call gave, waiting for it at most `seconds`; nil while it still runs.
    func result(within seconds: Double) -> Result<Void, any Error>? {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        return outcome.wait(on: finished, deadline: { _ in deadline }, until: { $0 })
    }

    /// The error the call threw within `seconds`; records an issue when it returned, threw
    /// something else than a `VFIOError`, or did not end in time.
    func error(within seconds: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> VFIOError? {
        switch result(within: seconds) {
        case nil:
            Issue.record("\(what): still waiting after \(seconds) s", sourceLocation: sourceLocation)
            return nil
        case .success?:
            Issue.record("\(what): returned instead of failing", sourceLocation: sourceLocation)
            return nil
        case .failure(let error as VFIOError)?:
            return error
        case .failure(let error)?:
            Issue.record("\(what): threw \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// Seconds from the start of the call to its end (once it ended).
    var seconds: Double { Double(ended.withLock { $0 } &- started) / 1e9 }

    /// Waits for the call to end.
    func join() { thread?.join() }
}

/// The `VFIOError` `body` throws; records an issue (`what` was accepted) when it returns.
func thrownError(_ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> VFIOError? {
    do {
        try body()
        Issue.record("\(what) was accepted", sourceLocation: sourceLocation)
    } catch let error as VFIOError {
        return error
    } catch {
        Issue.record("\(what): \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A client configuration with short reply timeouts, for tests of silent servers.
func shortTimeouts(replyTimeout: Duration, slowReplyTimeout: Duration = .seconds(60),
                   idleReadDelay: Duration = .milliseconds(5)) -> VFIOUserClient.Configuration {
    var configuration = VFIOUserClient.Configuration()
    configuration.replyTimeout = replyTimeout
    configuration.slowReplyTimeout = slowReplyTimeout
    configuration.idleReadDelay = idleReadDelay
    return configuration
}
