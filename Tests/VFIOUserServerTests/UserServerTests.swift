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

@Suite struct UserServerTests {
    @Test func versionInfoRegionsAndIRQsOfEdu() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        #expect(client.serverVersion.major == 0 && client.serverVersion.minor == 0)
        #expect(client.serverCapabilities.maxMessageFDs == 16)
        #expect(client.serverCapabilities.writeMultiple)
        let info = try client.deviceInfo()
        #expect(info.flags.contains(.pci) && info.flags.contains(.reset))
        #expect(info.numRegions == 9 && info.numIRQs == 5)
        let bar = try client.regionInfo(bar0)
        #expect(bar.size == 1 << 20 && bar.flags.contains(.read) && bar.flags.contains(.write) && !bar.flags.contains(.mmap))
        let cfg = try client.regionInfo(config)
        #expect(cfg.size == 256)
        #expect(try client.regionInfo(1).size == 0)
        let msi = try client.irqInfo(PCIIRQIndex.msi.rawValue)
        #expect(msi.count == 1 && msi.flags.contains(.eventfd))
        #expect(try client.irqInfo(PCIIRQIndex.intx.rawValue).flags.contains(.maskable))
        #expect(try client.readConfig(UInt16.self, offset: 0) == 0x1234)
        #expect(try client.readConfig(UInt16.self, offset: 2) == 0x11e8)
        #expect(try client.read(UInt32.self, region: bar0, offset: 0) == 0x0100_00ed)
        try client.write(UInt32(0x1234_5678), region: bar0, offset: 4)
        #expect(try client.read(UInt32.self, region: bar0, offset: 4) == ~UInt32(0x1234_5678))
        try client.write(UInt32(10), region: bar0, offset: 8)
        #expect(try client.read(UInt32.self, region: bar0, offset: 8) == 3_628_800)
        try client.reset()
        #expect(try client.validIOVARanges().count == 1)
    }

    @Test func errorsComeBackAsErrno() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        expectErrno(EINVAL) { _ = try client.regionInfo(42) }
        expectErrno(EINVAL) { _ = try client.irqInfo(9) }
        expectErrno(EINVAL) { _ = try client.readBytes(region: config, offset: 250, count: 16) }
        expectErrno(EINVAL) { _ = try client.readBytes(region: 1, offset: 0, count: 4) }
        expectErrno(ENOENT) { try client.unmapDMA(iova: 0x100000, size: 0x1000) }
        // QEMU unmaps up to the very top of the address space (end exactly 2^64).
        expectErrno(ENOENT) { try client.unmapDMA(iova: 0xfef00000, size: 0 &- 0xfef00000) }
        expectErrno(ENOENT) { try client.unmapDMA(iova: 0x8000_0000_0000_0000, size: 0x8000_0000_0000_0000) }
        expectErrno(ENOTTY) { _ = try client.feature(.probe(.lowPowerEntry, set: true)) }
        #expect(throws: VFIOError.self) { _ = try client.mapRegion(bar0, offset: 0, size: 4096) }
        #expect(throws: VFIOError.self) { _ = try client.hotResetInfo() }
        // An unknown command and a server-to-client command sent by the client.
        let unknown = try #require(try client.rawRequest(command: 99, payload: []))
        #expect(unknown.header.isError && unknown.header.error == UInt32(ENOSYS))
        let wrongWay = try #require(try client.rawRequest(command: VFIOUserCommand.dmaRead.rawValue, payload: [UInt8](repeating: 0, count: 16)))
        #expect(wrongWay.header.isError)
        // DMA map overlap: EEXIST.
        let buffer = try DMABuffer(size: 8192)
        try client.mapDMA(buffer, offset: 0, size: 8192, iova: 0x100000, access: .readWrite)
        expectErrno(EEXIST) { try client.mapDMA(buffer, offset: 0, size: 4096, iova: 0x101000, access: .readWrite) }
        expectErrno(EINVAL) { try client.unmapDMA(iova: 0x100000, size: 0x1000) }
        try client.unmapDMA(iova: 0x100000, size: 0x2000)
        #expect(try client.deviceInfo().numRegions == 9)
    }

    /// Every command, cut short or otherwise broken, gets an error reply, and the
    /// connection keeps working.
    @Test func malformedMessagesGetErrorRepliesAndTheConnectionStays() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        let cases: [(VFIOUserCommand, [UInt8])] = [
            (.version, [0, 0, 0, 0]),   // second VERSION
            (.dmaMap, [1, 2, 3]),
            (.dmaMap, VFIOUserDMAMap(flags: [.read], offset: 0, address: 0x1000, size: 0).encoded),
            (.dmaMap, VFIOUserDMAMap(flags: VFIOUserDMAMapFlags(rawValue: 0x10), offset: 0, address: 0x1000, size: 0x1000).encoded),
            (.dmaUnmap, [0, 0]),
            (.dmaUnmap, VFIOUserDMAUnmap(flags: .all, address: 1, size: 0).encoded),
            (.deviceGetInfo, [4, 0, 0, 0]),
            (.deviceGetRegionInfo, [32, 0, 0, 0, 0, 0, 0, 0]),
            (.deviceGetRegionInfo, Array(RegionInfo.query(index: 77).prefix(32))),
            (.deviceGetRegionIOFDs, [16, 0, 0, 0]),
            (.deviceGetRegionIOFDs, VFIOUserRegionIOFDs(argsz: 16, index: 55).encoded),
            (.deviceGetIRQInfo, [16, 0]),
            (.deviceSetIRQs, [20, 0, 0, 0]),
            (.deviceSetIRQs, IRQSetHeader(argsz: 20, flags: [.dataNone, .actionTrigger, .actionMask], index: 0, start: 0, count: 1).encoded()),
            (.deviceSetIRQs, IRQSetHeader(argsz: 20, flags: [.dataBool, .actionTrigger], index: 1, start: 0, count: 1).encoded()),
            (.deviceSetIRQs, IRQSetHeader(argsz: 20, flags: [.dataEventfd, .actionTrigger], index: 1, start: 0, count: 1).encoded() + [1, 0, 0, 0]),
            (.regionRead, [0, 0, 0]),
            (.regionRead, VFIOUserRegionAccess(offset: 0, region: 0, count: 4, data: [1, 2, 3, 4]).encoded),
            (.regionRead, VFIOUserRegionAccess(offset: 0, region: 0, count: 2 << 20).encoded),
            (.regionRead, VFIOUserRegionAccess(offset: UInt64.max, region: 0, count: 4).encoded),
            (.regionWrite, VFIOUserRegionAccess(offset: 0, region: 0, count: 8, data: [1, 2, 3, 4]).encoded),
            (.regionWrite, VFIOUserRegionAccess(offset: 0, region: 0, count: 4).encoded),
            (.dmaWrite, [0]),
            (.deviceReset, [1]),
            (.dirtyPages, [8, 0, 0, 0, 3, 0, 0, 0]),
            (.dirtyPages, VFIOUserDirtyPages(flags: .start).encoded),
            (.regionWriteMulti, [5, 0, 0, 0, 0, 0, 0, 0]),
            (.regionWriteMulti, VFIOUserWriteMulti(writes: [VFIOUserWriteOne(offset: 0, region: 9, data: [1])]).encoded),
            (.deviceFeature, [8, 0, 0, 0]),
            (.deviceFeature, DeviceFeatureHeader(flags: DeviceFeatureFlags(rawValue: 0x30001)).encoded()),
            (.migDataRead, [8, 0, 0, 0]),
            (.migDataWrite, VFIOUserMigData(argsz: 8, size: 4, data: [1]).encoded),
        ]
        for (command, payload) in cases {
            let reply = try #require(try client.rawRequest(command: command.rawValue, payload: payload))
            #expect(reply.header.isError, "\(command) with \(payload.count) byte(s) was accepted")
            #expect(reply.header.error != 0, "\(command): errno 0")
            #expect(reply.payload.isEmpty, "\(command): an error reply carries only the header")
            #expect(try client.read(UInt32.self, region: bar0, offset: 0) == 0x0100_00ed, "connection broken after \(command)")
        }
        // A mapped (descriptor-backed) range must be whole pages, inside the file.
        let memfd = try DMABuffer(size: 8192)
        let shared = try #require(memfd.sharedDescriptor)
        for map in [VFIOUserDMAMap(flags: [.read], offset: 0, address: 0x1001, size: 0x1000),
                    VFIOUserDMAMap(flags: [.read], offset: 0x800, address: 0x1000, size: 0x1000),
                    VFIOUserDMAMap(flags: [.read], offset: 0x1000, address: 0x1000, size: 0x2000)] {
            let reply = try #require(try client.rawRequest(command: VFIOUserCommand.dmaMap.rawValue, payload: map.encoded, fds: [shared.fd]))
            #expect(reply.header.isError && reply.header.error == UInt32(EINVAL), "\(map) was accepted")
        }
        let twoFDs = try #require(try client.rawRequest(command: VFIOUserCommand.dmaMap.rawValue,
                                                        payload: VFIOUserDMAMap(flags: [.read], offset: 0, address: 0x1000, size: 0x1000).encoded,
                                                        fds: [shared.fd, shared.fd]))
        #expect(twoFDs.header.isError && twoFDs.header.error == UInt32(EINVAL))
        // Descriptors where none belong are refused and closed.
        let event = try EventFD()
        let withFD = try #require(try client.rawRequest(command: VFIOUserCommand.deviceGetInfo.rawValue,
                                                        payload: VFIOUserDeviceInfo.request.encoded, fds: [event.fd]))
        #expect(withFD.header.isError && withFD.header.error == UInt32(EINVAL))
        #expect(try client.deviceInfo().numIRQs == 5)
    }

    @Test func rawSocketGarbageIsAnsweredAndTheStreamStaysInStep() throws {
        let fixture = try UserServerFixture()
        let socket = try VFIOUserSocket.connect(path: fixture.path)
        defer { socket.close() }
        // A command before VERSION: EINVAL.
        try socket.send(id: 1, command: VFIOUserCommand.deviceGetInfo.rawValue, flags: [], payload: VFIOUserDeviceInfo.request.encoded)
        guard case .message(let early) = try socket.receive(maxPayload: 1 << 16, maxFDs: 4) else { Issue.record("no reply"); return }
        #expect(early.header.isError && early.header.error == UInt32(EINVAL) && early.header.messageID == 1)
        // VERSION 0.7 with unknown capabilities: answered 0.0.
        var writer = ByteWriter()
        writer.u16(0); writer.u16(7)
        writer.append(contentsOf: Array(#"{"capabilities":{"max_msg_fds":4,"unknown_thing":{"a":[1]}},"x":null}"#.utf8))
        writer.u8(0)
        try socket.send(id: 2, command: 1, flags: [], payload: writer.bytes)
        guard case .message(let versionReply) = try socket.receive(maxPayload: 1 << 16, maxFDs: 4) else { Issue.record("no reply"); return }
        let version = try VFIOUserVersion(decoding: versionReply.payload)
        #expect(version.major == 0 && version.minor == 0 && versionReply.payload.last == 0)
        // A header that claims less than 16 bytes.
        let liar = VFIOUserHeader(messageID: 3, command: 4, messageSize: 8, flags: []).encoded
        _ = try liar.withBytes { (raw: UnsafeRawBufferPointer) throws(VFIOError) in
            _ = Glibc.write(socket.fd, raw.baseAddress, raw.count)
        }
        guard case .message(let liarReply) = try socket.receive(maxPayload: 1 << 16, maxFDs: 4) else { Issue.record("no reply"); return }
        #expect(liarReply.header.isError && liarReply.header.messageID == 3)
        // A message larger than max_data_xfer_size allows: drained, E2BIG.
        let huge = [UInt8](repeating: 0xAB, count: (1 << 20) + 8192)
        try socket.send(id: 4, command: VFIOUserCommand.regionWrite.rawValue, flags: [], payload: huge)
        guard case .message(let hugeReply) = try socket.receive(maxPayload: 1 << 16, maxFDs: 4) else { Issue.record("no reply"); return }
        #expect(hugeReply.header.isError && hugeReply.header.error == UInt32(E2BIG) && hugeReply.header.messageID == 4)
        // A bad message type.
        try socket.send(id: 5, command: 4, flags: VFIOUserMessageFlags(rawValue: 3), payload: [])
        // NO_REPLY with an error: silence; then a good request is answered in order.
        try socket.send(id: 6, command: VFIOUserCommand.deviceGetIRQInfo.rawValue, flags: .noReply, payload: [1])
        try socket.send(id: 7, command: VFIOUserCommand.deviceGetInfo.rawValue, flags: [], payload: VFIOUserDeviceInfo.request.encoded)
        guard case .message(let good) = try socket.receive(maxPayload: 1 << 16, maxFDs: 4) else { Issue.record("no reply"); return }
        #expect(good.header.messageID == 7 && !good.header.isError)
        #expect(try VFIOUserDeviceInfo(decoding: good.payload).numRegions == 9)
        #expect(good.payload.count == 16)
    }

    @Test func noReplyWritesAreHandledInOrder() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        for value in UInt32(1)...50 {
            var v = value.littleEndian
            try withUnsafeBytes(of: &v) { try client.postWrite(region: bar0, offset: 4, from: $0) }
        }
        #expect(try client.read(UInt32.self, region: bar0, offset: 4) == ~UInt32(50))
        // WRITE_MULTI, with and without reply.
        let done = try client.writeMultiple([VFIOUserWriteOne(offset: 4, region: bar0, data: [1, 0, 0, 0]),
                                             VFIOUserWriteOne(offset: 4, region: bar0, data: [7, 0, 0, 0])])
        #expect(done == 2)
        #expect(try client.read(UInt32.self, region: bar0, offset: 4) == ~UInt32(7))
        try client.writeMultiple([VFIOUserWriteOne(offset: 4, region: bar0, data: [9, 0, 0, 0])], noReply: true)
        #expect(try client.read(UInt32.self, region: bar0, offset: 4) == ~UInt32(9))
        let (iofds, descriptors) = try client.regionIOFDs(bar0)
        #expect(iofds.count == 0 && descriptors.isEmpty)
    }

    @Test func bulkTransfersOfOneMebibyteAndMore() throws {
        let fixture = try UserServerFixture(model: BulkMemoryModel())
        let client = try fixture.connect()
        let info = try client.regionInfo(0)
        #expect(info.flags.contains(.mmap) && info.sparseMmapAreas?.first?.size == BulkMemoryModel.size)
        var pattern = SplitMix64(seed: 7)
        let oneMiB = (0..<(1 << 20)).map { _ in UInt8(truncatingIfNeeded: pattern.next()) }
        try client.writeBytes(oneMiB, region: 0, offset: 0)   // one message of exactly max_data_xfer_size
        #expect(try client.readBytes(region: 0, offset: 0, count: 1 << 20) == oneMiB)
        let big = (0..<(3 << 20) + 5).map { _ in UInt8(truncatingIfNeeded: pattern.next()) }
        try client.writeBytes(big, region: 0, offset: 12345)   // split into 4 messages
        #expect(try client.readBytes(region: 0, offset: 12345, count: big.count) == big)
        // The memfd the server returned with the region info shows the same bytes.
        let mapping = try client.mapRegion(0, offset: 0, size: Int(BulkMemoryModel.size))
        let mapped = UnsafeRawBufferPointer(start: mapping.baseAddress, count: mapping.size)
        #expect(Array(mapped[12345..<12345 + big.count]) == big)
        mapping.baseAddress.storeBytes(of: 0xA5, toByteOffset: 3, as: UInt8.self)
        #expect(try client.readBytes(region: 0, offset: 3, count: 1) == [0xA5])
        expectErrno(EINVAL) { _ = try client.mapRegion(0, offset: 1, size: 4096) }
    }

    @Test func msiAndINTxArriveOnEventfds() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        // Bus master on (MSI is a memory write), then MSI vector 0 to an eventfd.
        let command = try client.readConfig(UInt16.self, offset: 4)
        try client.writeConfig(command | 0x6, offset: 4)
        let msi = try EventFD()
        try client.setIRQs(.enableEventfds(index: PCIIRQIndex.msi.rawValue, [msi.fd]))
        try client.write(UInt32(0x4), region: bar0, offset: 0x60)   // raise
        #expect(try waitSignalled(msi) == 1)
        try client.write(UInt32(0x4), region: bar0, offset: 0x64)   // acknowledge
        // Loopback trigger from the client side (DATA_NONE | TRIGGER).
        try client.setIRQs(.trigger(index: PCIIRQIndex.msi.rawValue))
        #expect(try waitSignalled(msi) == 1)
        try client.setIRQs(.disable(index: PCIIRQIndex.msi.rawValue))
        // INTx: raise asserts the line, signalled once (automasked) until unmasked.
        let intx = try EventFD()
        try client.setIRQs(.enableEventfds(index: PCIIRQIndex.intx.rawValue, [intx.fd]))
        try client.write(UInt32(0x8), region: bar0, offset: 0x60)
        #expect(try waitSignalled(intx) == 1)
        #expect(try client.readConfig(UInt16.self, offset: 6) & 0x8 != 0)   // Status: interrupt pending
        try client.write(UInt32(0x8), region: bar0, offset: 0x64)
        try client.setIRQs(.unmaskINTx())
        #expect(try waitSignalled(intx, milliseconds: 100) == nil)
        try client.setIRQs(.disable(index: PCIIRQIndex.intx.rawValue))
        // A descriptor that is not an eventfd is refused.
        var pipeFDs: [Int32] = [-1, -1]
        pipe(&pipeFDs)
        defer { close(pipeFDs[0]); close(pipeFDs[1]) }
        expectErrno(EBADF) { try client.setIRQs(.enableEventfds(index: PCIIRQIndex.msi.rawValue, [pipeFDs[0]])) }
    }

    /// The edu DMA engine copies RAM → device buffer → RAM; `backing` decides whether the
    /// server reaches RAM through the mapped memfd or through DMA_READ/DMA_WRITE messages.
    func eduDMARoundTrip(backing: DMABuffer.Backing) throws -> VFIOUserClient {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        let command = try client.readConfig(UInt16.self, offset: 4)
        try client.writeConfig(command | 0x6, offset: 4)
        let msi = try EventFD()
        try client.setIRQs(.enableEventfds(index: PCIIRQIndex.msi.rawValue, [msi.fd]))
        // Two adjacent mappings: a transfer spans both.
        let low = try DMABuffer(size: 4096, backing: backing)
        let high = try DMABuffer(size: 4096, backing: backing)
        try client.mapDMA(low, offset: 0, size: 4096, iova: 0x100000, access: .readWrite)
        try client.mapDMA(high, offset: 0, size: 4096, iova: 0x101000, access: .readWrite)
        for i in 0..<4096 { low.bytes[i] = UInt8(truncatingIfNeeded: i * 7); high.bytes[i] = UInt8(truncatingIfNeeded: i * 3 + 1) }
        func transfer(source: UInt64, destination: UInt64, count: UInt64, toRAM: Bool) throws {
            try client.write(source, region: bar0, offset: 0x80)
            try client.write(destination, region: bar0, offset: 0x88)
            try client.write(count, region: bar0, offset: 0x90)
            try client.write(UInt64(toRAM ? 0x7 : 0x5), region: bar0, offset: 0x98)
            #expect(try waitSignalled(msi) != nil, "no DMA-done interrupt")
            #expect(try client.read(UInt64.self, region: bar0, offset: 0x98) & 1 == 0)
            try client.write(UInt32(0x100), region: bar0, offset: 0x64)
        }
        // 2 KiB from the end of `low` across into `high`, to the device buffer...
        try transfer(source: 0x100800, destination: 0x40000, count: 4096, toRAM: false)
        // ...and back into RAM at the start of `low`.
        try transfer(source: 0x40000, destination: 0x100000, count: 4096, toRAM: true)
        let expected = (2048..<4096).map { UInt8(truncatingIfNeeded: $0 * 7) } + (0..<2048).map { UInt8(truncatingIfNeeded: $0 * 3 + 1) }
        #expect(Array(low.bytes[0..<4096]) == expected)
        try client.unmapDMA(iova: 0x100000, size: 4096)
        try client.unmapDMA(iova: 0x101000, size: 4096)
        withExtendedLifetime(fixture) {}
        return client
    }

    @Test func eduDMAThroughMappedMemfds() throws {
        let client = try eduDMARoundTrip(backing: .sharedMemory)
        #expect(client.servedDMAMessages == 0)
    }

    @Test func eduDMAThroughDMAReadWriteMessages() throws {
        let client = try eduDMARoundTrip(backing: .anonymous)
        #expect(client.servedDMAMessages >= 2)
    }

    @Test func clientsAreServedOneAfterAnother() throws {
        let fixture = try UserServerFixture()
        do {
            let first = try fixture.connect()
            try first.write(UInt32(5), region: bar0, offset: 4)
            first.close()
        }
        let second = try fixture.connect()
        // Device state is kept across clients.
        #expect(try second.read(UInt32.self, region: bar0, offset: 4) == ~UInt32(5))
        #expect(fixture.server.connectionCount == 2)
    }

    @Test func socketIsPrivateAndStaleFilesAreReplaced() throws {
        let fixture = try UserServerFixture()
        var info = stat()
        #expect(stat(fixture.path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        // A second server on the same live path is refused.
        #expect(throws: VFIOError.self) { try VFIOUserServer(model: EduDevice()).listen(path: fixture.path) }
        fixture.server.stop()
        // Leave a stale socket file behind, then listen again over it.
        let stale = fixture.directory + "/stale.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        _ = try withUnixAddress(stale, "bind") { (address: UnsafePointer<sockaddr>, length: socklen_t) throws(VFIOError) in
            bind(fd, address, length)
        }
        close(fd)
        let again = try VFIOUserServer(model: EduDevice())
        try again.listen(path: stale)
        let client = try VFIOUserClient(path: stale)
        #expect(try client.read(UInt32.self, region: bar0, offset: 0) == 0x0100_00ed)
        client.close()
        again.stop()
        #expect(access(stale, F_OK) != 0)
    }

    /// What each of 100 clients hands the server (an MSI eventfd, a DMA memfd) and the
    /// connection the server accepted are gone from this process once the server ended
    /// the sessions: counted by the files' identities and the test's socket path, which
    /// tests running beside it cannot disturb.
    @Test func noDescriptorLeaksOverAHundredConnections() throws {
        let log = LogBook(level: .info)
        let fixture = try UserServerFixture(logger: log.logger)
        var handedOver: [TrackedFile] = []
        for i in 0..<100 {
            let client = try fixture.connect()
            let event = try EventFD()
            try client.setIRQs(.enableEventfds(index: PCIIRQIndex.msi.rawValue, [event.fd]))
            let buffer = try DMABuffer(size: 4096)
            try client.mapDMA(buffer, offset: 0, size: 4096, iova: 0x200000, access: .readWrite)
            let eventfd = try TrackedFile(event.fd, name: "client \(i)'s MSI eventfd")
            let memfd = try TrackedFile(try #require(buffer.sharedDescriptor).fd, name: "client \(i)'s DMA memfd")
            _ = try client.regionInfo(config)
            if i == 0 {
                // What is counted below is there while the session lasts.
                #expect(acceptedSockets(at: fixture.path).count == 1, "the server's end of the connection")
                #expect(eventfd.descriptors(besides: [event.fd]).count == 1, "the server's copy of the eventfd")
                #expect(memfd.mappings.count == 2, "the buffer's mapping and the server's")
            }
            handedOver += [eventfd, memfd]
            client.close()
        }
        // The server logs this once it dropped a session's descriptors and mappings.
        let ended = log.wait(for: "client disconnected", count: 100)
        try #require(ended == 100, "sessions the server ended: \(ended) of 100")
        #expect(acceptedSockets(at: fixture.path) == [], "connections the server still holds")
        #expect(handedOver.compactMap { $0.stillReferenced() } == [])
        #expect(fixture.server.connectionCount == 100)
    }

    @Test func aStoppedServerFailsTheClientsCallsWithECONNRESET() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        #expect(try client.read(UInt32.self, region: bar0, offset: 0) == 0x0100_00ed)
        fixture.server.stop()
        expectErrno(ECONNRESET) { _ = try client.deviceInfo() }
        #expect(!client.isConnected)
        #expect(throws: VFIOError.self) { _ = try VFIOUserClient(path: fixture.path) }
    }

    @Test func socketPairServesInProcess() throws {
        let (serverEnd, clientEnd) = try VFIOUserSocket.pair()
        let server = try VFIOUserServer(model: EduDevice())
        server.serve(connection: serverEnd)
        let client = try VFIOUserClient(socket: clientEnd, name: "model:edu")
        #expect(client.name == "model:edu")
        #expect(try client.readConfig(UInt16.self, offset: 0) == 0x1234)
        client.close()
        server.wait()
    }
}

@Suite struct UserFuzzTests {
    /// Random payloads for every command: each gets a reply, the server keeps serving,
    /// and the decoders never read out of bounds.
    @Test func randomPayloadsForEveryCommand() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        var random = SplitMix64(seed: UInt64(getenv("USER_FUZZ_SEED").map { String(cString: $0) } ?? "") ?? 0x5eed)
        for round in 0..<(Int(getenv("USER_FUZZ_ROUNDS").map { String(cString: $0) } ?? "") ?? 1500) {
            let command = UInt16(1 + random.next() % 19)
            let length = Int(random.next() % 64)
            var payload = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            // Often start from a plausible argsz so that decoding gets further.
            if length >= 4 && random.next() % 2 == 0 { payload[0] = UInt8(length); payload[1] = 0; payload[2] = 0; payload[3] = 0 }
            let reply = try #require(try client.rawRequest(command: command, payload: payload), "round \(round)")
            #expect(reply.header.command == command)
            if reply.header.isError { #expect(reply.payload.isEmpty) }
        }
        #expect(try client.read(UInt32.self, region: bar0, offset: 0) == 0x0100_00ed)
        // Decoders alone, on random bytes.
        for _ in 0..<5000 {
            let bytes = (0..<Int(random.next() % 80)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            _ = try? VFIOUserDMAMap(decoding: bytes)
            _ = try? VFIOUserDMAUnmap(decoding: bytes)
            _ = try? VFIOUserDeviceInfo(decoding: bytes)
            _ = try? VFIOUserRegionAccess(decoding: bytes)
            _ = try? VFIOUserWriteMulti(decoding: bytes)
            _ = try? VFIOUserRegionIOFDs(decoding: bytes)
            _ = try? VFIOUserMigData(decoding: bytes)
            _ = try? VFIOUserDirtyPages(decoding: bytes)
            _ = try? VFIOUserVersion(decoding: bytes)
            _ = try? VFIOUserDMAAccess(decoding: bytes)
            _ = try? JSONValue.parse(bytes)
        }
    }
}
