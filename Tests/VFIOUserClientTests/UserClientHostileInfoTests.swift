import Glibc
import Testing
import VFIO
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import VFIOSystem
import TestSupport

/// Sizes and counts a server states in its info replies are bounded before the client
/// acts on them: it makes a bounded number of requests and allocates a bounded amount.
/// Every server here is played by the test on a real socket pair.
@Suite struct UserClientHostileInfoTests {
    /// A server that answers DEVICE_GET_INFO with `info` and every other request with
    /// `answer(request)` (nil: an empty reply).
    static func serving(info: VFIOUserDeviceInfo = VFIOUserDeviceInfo(flags: [.pci], numRegions: 9, numIRQs: 5),
                        _ answer: @escaping @Sendable (VFIOUserMessage) -> [UInt8]? = { _ in nil }) throws -> (ScriptedServer, VFIOUserClient) {
        let server = try ScriptedServer()
        server.run { s in
            s.negotiate()
            while let request = s.next() {
                if request.header.command == VFIOUserCommand.deviceGetInfo.rawValue {
                    s.reply(to: request, payload: info.encoded)
                } else {
                    s.reply(to: request, payload: answer(request) ?? [])
                }
            }
        }
        let client = try VFIOUserClient(socket: server.near, name: "scripted")
        return (server, client)
    }

    static func argsz(of payload: [UInt8]) -> UInt32 {
        payload.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
    }

    static func settingArgsz(_ bytes: [UInt8], _ value: UInt32) -> [UInt8] {
        var bytes = bytes
        withUnsafeBytes(of: value.littleEndian) { for i in 0..<4 { bytes[i] = $0[i] } }
        return bytes
    }

    // MARK: Device info counts

    /// `num_regions` / `num_irqs` of 2^32-1 (a caller asking about each index would make
    /// four billion requests) are refused; the bound itself is accepted.
    @Test(arguments: [(UInt32.max, UInt32(5), "num_regions 4294967295"), (UInt32(9), UInt32.max, "num_irqs 4294967295"),
                      (UInt32(65), UInt32(5), "num_regions 65"), (UInt32(9), UInt32(65), "num_irqs 65")])
    func deviceInfoWithTooManyIndexesIsRefused(regions: UInt32, irqs: UInt32, named: String) throws {
        let (server, client) = try Self.serving(info: VFIOUserDeviceInfo(flags: [.pci], numRegions: regions, numIRQs: irqs))
        let error = thrownError("\(regions) regions and \(irqs) IRQ indexes") { _ = try client.deviceInfo() }
        #expect(error?.reason == .malformed("\(named) is above the 64 this client accepts"), "\(String(describing: error))")
        #expect(client.isConnected, "a refused reply does not end the connection")
        client.close()
        server.join()
    }

    @Test func deviceInfoAtTheBoundIsAccepted() throws {
        let (server, client) = try Self.serving(info: VFIOUserDeviceInfo(flags: [.pci], numRegions: 64, numIRQs: 64))
        let info = try client.deviceInfo()
        #expect(info.numRegions == VFIOUserClient.maxRegions && info.numIRQs == VFIOUserClient.maxIRQIndexes)
        client.close()
        server.join()
    }

    // MARK: argsz retries

    /// Region info whose reply states an argsz of 2^32-1 (or 64 MiB): refused without a
    /// second request (nothing of that size is allocated or asked for).
    @Test(arguments: [UInt32.max, 64 << 20])
    func regionInfoAskingForMoreThanTheCapIsRefused(argsz: UInt32) throws {
        let (server, client) = try Self.serving { request in
            guard request.header.command == VFIOUserCommand.deviceGetRegionInfo.rawValue else { return nil }
            return Self.settingArgsz(RegionInfo(flags: [.read], index: 0, size: 4096, offset: 0).encoded(), argsz)
        }
        let error = thrownError("a reply asking for \(argsz) bytes") { _ = try client.regionInfo(0) }
        #expect(error?.reason == .malformed("region 0: the reply asks for \(argsz) bytes, above the 16777216-byte limit"),
                "\(String(describing: error))")
        client.close()
        server.join()
        #expect(server.received(VFIOUserCommand.deviceGetRegionInfo) == 1)
    }

    /// A server whose reply always asks for 8 bytes more than offered: asked twice, then
    /// refused (it cannot make the client loop).
    @Test func regionInfoAskingForMoreOnEveryReplyIsAskedTwice() throws {
        let (server, client) = try Self.serving { request in
            guard request.header.command == VFIOUserCommand.deviceGetRegionInfo.rawValue else { return nil }
            return Self.settingArgsz(RegionInfo(flags: [.read], index: 0, size: 4096, offset: 0).encoded(), Self.argsz(of: request.payload) + 8)
        }
        let error = thrownError("a reply that never fits") { _ = try client.regionInfo(0) }
        #expect(error?.reason == .malformed("region 0: the reply asked for 264 bytes, then for 272 after the retry"),
                "\(String(describing: error))")
        client.close()
        server.join()
        #expect(server.received(VFIOUserCommand.deviceGetRegionInfo) == 2)
    }

    /// The same two abuses of DEVICE_GET_REGION_IO_FDS (a reply stating one sub-region
    /// and carrying none).
    @Test(arguments: [UInt32.max, 0])
    func regionIOFDsAskingForTooMuchIsRefused(argsz: UInt32) throws {
        let (server, client) = try Self.serving { request in
            guard request.header.command == VFIOUserCommand.deviceGetRegionIOFDs.rawValue else { return nil }
            let stated = argsz == 0 ? Self.argsz(of: request.payload) + 8 : argsz
            return VFIOUserRegionIOFDs(argsz: stated, index: 0, count: 1).encoded
        }
        let error = thrownError("a reply that does not fit") { _ = try client.regionIOFDs(0) }
        let why = argsz == 0 ? "region 0: the reply asked for 344 bytes, then for 352 after the retry"
                             : "region 0: the reply asks for \(argsz) bytes, above the 16777216-byte limit"
        #expect(error?.reason == .malformed(why), "\(String(describing: error))")
        client.close()
        server.join()
        #expect(server.received(VFIOUserCommand.deviceGetRegionIOFDs) == (argsz == 0 ? 2 : 1))
    }
}
