import CVFIO
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

/// A lone region access reads its reply with `recv` (no descriptors can be received
/// then): a reply that carries descriptors (region info) must never be read that way,
/// however the requests interleave, and descriptors a server attaches where none belong
/// are closed by the kernel, never leaked.
@Suite struct UserClientPlainReadTests {
    /// Four threads read a register in tight loops (each often alone: plain reads) while a
    /// fifth asks for region 0's info, whose reply carries the region's memory descriptor:
    /// every one of those replies comes with its descriptor.
    @Test func regionInfoDescriptorsSurviveConcurrentRegionReads() throws {
        let fixture = try UserServerFixture(model: TwoRegionModel())
        let client = try fixture.connect()
        defer { client.close() }
        let (_, first) = try client.regionInfoWithDescriptor(0)
        try #require(first != nil, "region 0's info comes with a descriptor")
        first?.close()

        let done = Atomic(false)
        let failures = Mutex([String]())
        let readers = (0..<4).map { t in
            WorkerThread(name: "reader \(t)") {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
                defer { buffer.deallocate() }
                while !done.load(ordering: .acquiring) {
                    do { try client.read(region: 1, offset: UInt64(t) * 4, into: buffer) } catch {
                        failures.withLock { $0.append("reader \(t): \(error)") }
                        return
                    }
                }
            }
        }
        let missing = try Self.regionInfoRepliesWithoutDescriptor(client, asking: 400)
        done.store(true, ordering: .releasing)
        for reader in readers { reader.join() }
        #expect(missing == 0, "\(missing) of 400 region info replies came without their descriptor")
        #expect(failures.withLock { $0 } == [])
    }

    /// A server that attaches a descriptor to REGION_READ replies (the protocol has none
    /// there): the read still returns the data, and the descriptor never reaches the
    /// client's process.
    @Test func descriptorsOnARegionReadReplyAreNotReceived() throws {
        let (near, far) = try VFIOUserSocket.pair()
        let attached = eventfd(0, Int32(EFD_CLOEXEC))
        defer { close(attached) }
        let server = WorkerThread(name: "hostile server") {
            let caps = VFIOUserCapabilities(maxMessageFDs: 16, maxDataTransferSize: 1 << 20)
            while case .message(let message)? = try? far.receive(maxPayload: 1 << 20, maxFDs: 16) {
                let header = message.header
                if header.command == VFIOUserCommand.version.rawValue {
                    try? far.send(id: header.messageID, command: header.command, flags: .reply,
                                  payload: VFIOUserVersion(capabilities: caps).encoded)
                    continue
                }
                // Echo the access and answer 4 bytes, with an eventfd attached.
                try? far.send(id: header.messageID, command: header.command, flags: .reply,
                              payload: Array(message.payload.prefix(16)) + [0x11, 0x22, 0x33, 0x44], fds: [attached])
            }
            far.close()
        }
        let client = try VFIOUserClient(socket: near, name: "hostile")
        let eventfd = try TrackedFile(attached, name: "the eventfd attached to every reply")
        for _ in 0..<50 {
            #expect(try client.readBytes(region: 1, offset: 0, count: 4) == [0x11, 0x22, 0x33, 0x44])
        }
        // Read: none of the 50 copies is open in this process (the server's own aside).
        let received = eventfd.descriptors(besides: [attached])
        client.close()
        server.join()
        #expect(received == [], "descriptors received with 50 replies carrying one each: \(received)")
    }

    /// Asks for region 0's info `times` times; returns how many replies came without the
    /// region's descriptor.
    static func regionInfoRepliesWithoutDescriptor(_ client: VFIOUserClient, asking times: Int) throws -> Int {
        var missing = 0
        for _ in 0..<times {
            let (_, fd) = try client.regionInfoWithDescriptor(0)
            if let fd { fd.close() } else { missing += 1 }
        }
        return missing
    }
}
