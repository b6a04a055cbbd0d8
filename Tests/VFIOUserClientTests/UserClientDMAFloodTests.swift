import Glibc
import Testing
import VFIO
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire

/// A server that streams DMA commands without reading the client's replies cannot make
/// the client hold more than `maxQueuedServerCommandBytes` (plus the message that reached
/// it): the client stops reading, its DMA thread gives up on the reply it cannot send
/// within the reply timeout, and the connection fails with an error that says so.
@Suite struct UserClientDMAFloodTests {
    @Test func dmaWritesFromAServerThatNeverReadsHoldBoundedMemory() throws {
        let chunk = 64 << 10
        let commands = 1024   // 64 MiB of DMA_WRITE
        let server = try ScriptedServer()
        let sent = Monitor(0)
        server.run { s in
            s.negotiate(VFIOUserCapabilities(maxMessageFDs: 16, maxDataTransferSize: UInt32(chunk)))
            guard let map = s.next() else { return }
            s.reply(to: map)
            // DMA_WRITE of 64 KiB into the mapping, replies wanted; nothing is read again.
            var access = [UInt8](repeating: 0, count: 16)
            access.withUnsafeMutableBytes {
                $0.storeBytes(of: UInt64(0x10000).littleEndian, as: UInt64.self)
                $0.storeBytes(of: UInt64(chunk).littleEndian, toByteOffset: 8, as: UInt64.self)
            }
            let payload = access + [UInt8](repeating: 0xa5, count: chunk)
            for i in 0..<commands {
                let message = ScriptedServer.bytes(id: UInt16(truncatingIfNeeded: i), command: VFIOUserCommand.dmaWrite.rawValue,
                                                   flags: [], payload: payload)
                guard s.sendRaw(message) else { return }
                sent.withLock { $0 += 1 }
            }
        }
        var configuration = shortTimeouts(replyTimeout: .milliseconds(300))
        configuration.capabilities = VFIOUserCapabilities(maxMessageFDs: 16, maxDataTransferSize: UInt32(chunk))
        configuration.maxQueuedServerCommandBytes = 256 << 10
        let client = try VFIOUserClient(socket: server.near, name: "scripted", configuration: configuration)
        let ram = try DMABuffer(size: chunk, backing: .anonymous)   // no descriptor: DMA by messages
        try client.mapDMA(ram, offset: 0, size: chunk, iova: 0x10000, access: .readWrite)
        // The script ends when its sends fail: when the client has failed the connection.
        server.join()

        let oneMessage = 16 + chunk + 256   // as the client counts a DMA_WRITE of `chunk` bytes
        let peak = client.peakQueuedServerCommandBytes
        #expect(peak > 0, "the DMA thread never had a command queued")
        #expect(peak < configuration.maxQueuedServerCommandBytes + oneMessage,
                "the client held \(peak) bytes of server commands (limit \(configuration.maxQueuedServerCommandBytes))")
        #expect(sent.withLock { $0 } < commands, "the server sent all \(commands) commands: the client kept reading")
        #expect(!client.isConnected)
        let error = thrownError("a request after the failure") { _ = try client.deviceInfo() }
        #expect(error?.errnoValue == ETIMEDOUT, "\(String(describing: error))")
        #expect("\(String(describing: error))".contains("VFIO_USER_DMA_WRITE reply"))
        #expect("\(String(describing: error))".contains("the server read nothing for 300 ms"))
        #expect(Array(ram.bytes[0..<4]) == [0xa5, 0xa5, 0xa5, 0xa5], "the commands served were written")
        client.close()
    }
}
