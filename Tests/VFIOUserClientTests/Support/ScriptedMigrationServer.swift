import Glibc
import Synchronization
import VFIO
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire

// What libvfio-user's servers do on the wire where it matters to migration, as observed
// against its sample server (samples/server.c with migration, 2026-06 sources) through a
// logging proxy, written here as our own test peers:
//
// - DEVICE_FEATURE for MIG_DATA_SIZE (feature 9): an error reply, EINVAL, header only
//   (the feature is not in the vfio-user spec's list).
// - MIG_DATA_READ: the reply's payload is 8 + the size asked for, whatever its `size`
//   says: `argsz` 8 + n, `size` n, n data bytes, then zeros up to the size asked for.
// - MIG_DATA_WRITE: refused with EINVAL when `argsz` < 8 + `size`.

/// A fake server on one end of a socket pair, served by a thread: VERSION is answered
/// (with `maxDataTransferSize`), every other command goes to `handle`, whose answer is
/// sent as the reply: an errno (header only) or a payload sent as it is. Ends when the
/// client closes.
final class ScriptedMigrationServer: @unchecked Sendable {
    let client: VFIOUserClient
    private let peer: VFIOUserSocket
    private let thread: WorkerThread

    init(maxDataTransferSize: UInt32 = 1 << 20,
         handle: @escaping @Sendable (VFIOUserMessage) -> Result<[UInt8], VFIOError>) throws {
        let (near, far) = try VFIOUserSocket.pair()
        let worker = WorkerThread(name: "scripted server") {
            while case .message(let message) = try? far.receive(maxPayload: 8 << 20, maxFDs: 16) {
                let header = message.header
                let answer: Result<[UInt8], VFIOError>
                if header.command == VFIOUserCommand.version.rawValue {
                    let caps = VFIOUserCapabilities(maxMessageFDs: 16, maxDataTransferSize: maxDataTransferSize)
                    answer = .success(VFIOUserVersion(capabilities: caps).encoded)
                } else {
                    answer = handle(message)
                }
                switch answer {
                case .success(let payload):
                    try? far.send(id: header.messageID, command: header.command, flags: .reply, payload: payload)
                case .failure(let error):
                    try? far.send(id: header.messageID, command: header.command, flags: [.reply, .error],
                                  error: UInt32(error.errnoValue ?? EINVAL))
                }
            }
        }
        do {
            client = try VFIOUserClient(socket: near, name: "scripted")
        } catch {
            far.shutdown()
            worker.join()
            far.close()
            throw error
        }
        peer = far
        thread = worker
    }

    /// Closes the client and waits for the server's thread.
    func close() {
        client.close()
        peer.shutdown()
        thread.join()
        peer.close()
    }
}
