import Glibc
import Synchronization
import VFIO
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

/// A listening UNIX socket at `path` that relays one client to one of this library's
/// servers at `target`, answering as libvfio-user does (see ScriptedMigrationServer.swift):
/// MIG_DATA_SIZE refused with EINVAL, MIG_DATA_READ replies padded to 8 + the size asked
/// for (with 0xA5, where libvfio-user pads zeros: a client using the padding would show),
/// MIG_DATA_WRITE with `argsz` < 8 + `size` refused with EINVAL. Everything else passes
/// unchanged, descriptors included.
final class LibvfioUserStyleRelay: @unchecked Sendable {
    let path: String
    /// MIG_DATA_SIZE requests refused, MIG_DATA_READ replies padded, MIG_DATA_WRITE
    /// requests refused for their `argsz`.
    let refusedSizeQueries = Atomic<Int>(0)
    let paddedReads = Atomic<Int>(0)
    let refusedWrites = Atomic<Int>(0)
    private let listener: Int32
    private let sockets = Mutex<[VFIOUserSocket]>([])
    private let pendingReads = Mutex<[UInt16: UInt32]>([:])
    private var acceptor: WorkerThread!

    init(path: String, target: String) throws {
        self.path = path
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw VFIOError.errno("socket", errno) }
        do {
            try withUnixAddress(path, "bind") { (address: UnsafePointer<sockaddr>, length: socklen_t) throws(VFIOError) in
                guard bind(fd, address, length) == 0, Glibc.listen(fd, 1) == 0 else { throw .errno("bind/listen \(path)", errno) }
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
        listener = fd
        acceptor = WorkerThread(name: "relay \(path)") { [self] in
            let accepted = accept(listener, nil, nil)
            guard accepted >= 0 else { return }
            let client = VFIOUserSocket(adopting: accepted)
            guard let server = try? VFIOUserSocket.connect(path: target) else { client.close(); return }
            sockets.withLock { $0 += [client, server] }
            let back = WorkerThread(name: "relay back") { [self] in pump(from: server, to: client, towardsClient: true) }
            pump(from: client, to: server, towardsClient: false)
            back.join()
        }
    }

    /// Stops listening, ends a relayed connection, waits for the threads.
    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        for socket in sockets.withLock({ $0 }) { socket.shutdown() }
        acceptor.join()
        for socket in sockets.withLock({ $0 }) { socket.close() }
        Glibc.close(listener)
        unlink(path)
    }

    private func pump(from source: VFIOUserSocket, to destination: VFIOUserSocket, towardsClient: Bool) {
        defer { destination.shutdown() }
        while case .message(let message) = try? source.receive(maxPayload: 8 << 20, maxFDs: 16) {
            var header = message.header
            var payload = message.payload
            let command = VFIOUserCommand(rawValue: header.command)
            if !towardsClient && !header.isReply {
                if command == .deviceFeature, payload.count >= 8, payload[4] == 9, payload[5] == 0 {
                    refusedSizeQueries.add(1, ordering: .relaxed)
                    try? source.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(EINVAL))
                    continue
                }
                if command == .migDataWrite, let (argsz, size) = migDataFields(payload), UInt64(argsz) < 8 + UInt64(size) {
                    refusedWrites.add(1, ordering: .relaxed)
                    try? source.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(EINVAL))
                    continue
                }
                if command == .migDataRead, let (_, size) = migDataFields(payload) {
                    pendingReads.withLock { $0[header.messageID] = size }
                }
            }
            if towardsClient, header.isReply, command == .migDataRead {
                let asked = pendingReads.withLock { $0.removeValue(forKey: header.messageID) }
                if let asked, !header.isError, payload.count < 8 + Int(asked) {
                    payload += [UInt8](repeating: 0xA5, count: 8 + Int(asked) - payload.count)
                    header.messageSize = UInt32(VFIOUserHeader.size + payload.count)
                    paddedReads.add(1, ordering: .relaxed)
                }
            }
            do { try destination.send(header, payload: payload, fds: message.fds) } catch { return }
        }
    }
}
