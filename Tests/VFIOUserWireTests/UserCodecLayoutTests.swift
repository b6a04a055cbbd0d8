import Glibc
import Testing
import VFIO
import VFIOUserWire
import TestSupport

/// The codecs against the protocol's byte layout, command by command: each message of
/// `WireMessages` (written out by hand) is what the encoder writes, and decodes to the
/// value it was written from. A codec that agreed only with itself (a field swapped or
/// sized wrongly on both sides) fails here.
@Suite struct UserCodecLayoutTests {
    typealias M = WireMessages

    /// The encoding of `value` is `message`'s payload, byte for byte.
    func expectPayload(_ message: WireMessage, _ encoded: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(encoded == message.payload, "\(message.name): encoded \(hexBytes(encoded)), the layout says \(hexBytes(message.payload))",
                sourceLocation: sourceLocation)
    }

    @Test func everyHeaderIsTheLayoutsSixteenBytes() throws {
        for message in M.all {
            #expect(message.header.encoded == Array(message.bytes[0..<16]), "\(message.name)")
            #expect(try VFIOUserHeader(decoding: Array(message.bytes[0..<16])) == message.header, "\(message.name)")
        }
        // The type field and the two flag bits.
        let error = try VFIOUserHeader(decoding: Array(M.dmaMapErrorReply.bytes[0..<16]))
        #expect(error.isReply && error.isError && error.error == UInt32(EINVAL) && error.payloadSize == 0)
        let noReply = try VFIOUserHeader(decoding: Array(M.writeMulti.bytes[0..<16]))
        #expect(noReply.isCommand && !noReply.wantsReply)
        #expect(try VFIOUserHeader(decoding: Array(M.dmaMap.bytes[0..<16])).wantsReply)
    }

    @Test func commandNumbersAreTheLayouts() {
        // Byte 2 of each header above, written from the specification's table.
        let numbers = Set(M.all.map { UInt16($0.bytes[2]) | UInt16($0.bytes[3]) << 8 })
        #expect(numbers == Set(1...18))
        for message in M.all { #expect(UInt16(message.bytes[2]) == message.command.rawValue, "\(message.name)") }
    }

    @Test func version() throws {
        let ours = VFIOUserVersion(capabilities: M.versionCapabilities)
        expectPayload(M.version, ours.encoded)
        #expect(try VFIOUserVersion(decoding: M.version.payload) == ours)
        // QEMU's JSON: its spacing, a migration object, max_dma_maps left to its default.
        let qemu = try VFIOUserVersion(decoding: M.qemuVersion.payload)
        #expect(qemu.major == 0 && qemu.minor == 0)
        #expect(qemu.capabilities == VFIOUserCapabilities(maxMessageFDs: 8, maxDataTransferSize: 1 << 20, pageSizes: 4096,
                                                         migration: .init(pageSize: 4096, maxBitmapSize: 1 << 28), writeMultiple: true))
    }

    @Test func dmaMapAndUnmap() throws {
        expectPayload(M.dmaMap, M.dmaMapValue.encoded)
        #expect(try VFIOUserDMAMap(decoding: M.dmaMap.payload) == M.dmaMapValue)
        expectPayload(M.dmaUnmap, M.dmaUnmapValue.encoded)
        #expect(try VFIOUserDMAUnmap(decoding: M.dmaUnmap.payload) == M.dmaUnmapValue)
        expectPayload(M.dmaUnmapBitmapReply, M.dmaUnmapBitmapValue.encoded)
        #expect(try VFIOUserDMAUnmap(decoding: M.dmaUnmapBitmapReply.payload) == M.dmaUnmapBitmapValue)
        let all = VFIOUserDMAUnmap(flags: .all, address: 0, size: 0)
        expectPayload(M.dmaUnmapAll, all.encoded)
        #expect(try VFIOUserDMAUnmap(decoding: M.dmaUnmapAll.payload) == all)
    }

    @Test func deviceGetInfo() throws {
        expectPayload(M.deviceInfoRequest, VFIOUserDeviceInfo.request.encoded)
        expectPayload(M.deviceInfoReply, M.deviceInfoValue.encoded)
        #expect(try VFIOUserDeviceInfo(decoding: M.deviceInfoReply.payload) == M.deviceInfoValue)
    }

    @Test func deviceGetRegionInfo() throws {
        // What a client sends: the fixed part of a query whose argsz states 256 bytes of room.
        expectPayload(M.regionInfoRequest, Array(RegionInfo.query(index: 2, capacity: 256).prefix(RegionInfo.fixedSize)))
        expectPayload(M.regionInfoReply, M.regionInfoValue.encoded())
        #expect(try RegionInfo(decoding: M.regionInfoReply.payload) == M.regionInfoValue)
    }

    @Test func deviceGetRegionIOFDs() throws {
        let request = VFIOUserRegionIOFDs(argsz: 96, index: 0)
        expectPayload(M.regionIOFDsRequest, request.encoded)
        #expect(try VFIOUserRegionIOFDs(decoding: M.regionIOFDsRequest.payload) == request)
        expectPayload(M.regionIOFDsReply, M.regionIOFDsValue.encoded)
        #expect(try VFIOUserRegionIOFDs(decoding: M.regionIOFDsReply.payload) == M.regionIOFDsValue)
    }

    @Test func deviceGetIRQInfo() throws {
        expectPayload(M.irqInfoRequest, IRQInfo.query(index: 1))
        expectPayload(M.irqInfoReply, M.irqInfoValue.encoded())
        #expect(try IRQInfo(decoding: M.irqInfoReply.payload) == M.irqInfoValue)
    }

    @Test func deviceSetIRQs() throws {
        expectPayload(M.setIRQs, M.setIRQsValue.encoded())
        #expect(try IRQSetHeader(decoding: M.setIRQs.payload) == M.setIRQsValue)
        expectPayload(M.setIRQsBools, M.setIRQsBoolsValue.encoded())
        #expect(try IRQSet(decoding: M.setIRQsBools.payload) == M.setIRQsBoolsValue)
    }

    @Test func regionReadAndWrite() throws {
        let read = VFIOUserRegionAccess(offset: 0, region: 0, count: 4)
        expectPayload(M.regionRead, read.encoded)
        #expect(try VFIOUserRegionAccess(decoding: M.regionRead.payload) == read)
        expectPayload(M.regionReadReply, M.regionReadReplyValue.encoded)
        #expect(try VFIOUserRegionAccess(decoding: M.regionReadReply.payload) == M.regionReadReplyValue)
        expectPayload(M.regionWrite, M.regionWriteValue.encoded)
        #expect(try VFIOUserRegionAccess(decoding: M.regionWrite.payload) == M.regionWriteValue)
        let written = VFIOUserRegionAccess(offset: 4, region: 0, count: 4)
        expectPayload(M.regionWriteReply, written.encoded)
        #expect(try VFIOUserRegionAccess(decoding: M.regionWriteReply.payload) == written)
    }

    @Test func dmaReadAndWrite() throws {
        let read = VFIOUserDMAAccess(address: 0x4000, count: 5)
        expectPayload(M.dmaRead, read.encoded)
        #expect(try VFIOUserDMAAccess(decoding: M.dmaRead.payload) == read)
        expectPayload(M.dmaReadReply, M.dmaReadReplyValue.encoded)
        #expect(try VFIOUserDMAAccess(decoding: M.dmaReadReply.payload) == M.dmaReadReplyValue)
        expectPayload(M.dmaWrite, M.dmaWriteValue.encoded)
        #expect(try VFIOUserDMAAccess(decoding: M.dmaWrite.payload) == M.dmaWriteValue)
    }

    @Test func deviceReset() {
        #expect(M.deviceReset.payload.isEmpty)
        #expect(M.deviceReset.header.payloadSize == 0)
    }

    @Test func dirtyPages() throws {
        let start = VFIOUserDirtyPages(flags: .start)
        expectPayload(M.dirtyPagesStart, start.encoded)
        #expect(try VFIOUserDirtyPages(decoding: M.dirtyPagesStart.payload) == start)
        expectPayload(M.dirtyPagesBitmapReply, M.dirtyPagesBitmapValue.encoded)
        #expect(try VFIOUserDirtyPages(decoding: M.dirtyPagesBitmapReply.payload) == M.dirtyPagesBitmapValue)
    }

    @Test func regionWriteMulti() throws {
        expectPayload(M.writeMulti, M.writeMultiValue.encoded)
        #expect(try VFIOUserWriteMulti(decoding: M.writeMulti.payload) == M.writeMultiValue)
        expectPayload(M.writeMultiReply, VFIOUserWriteMultiReply(completed: 2).encoded)
        #expect(try VFIOUserWriteMultiReply(decoding: M.writeMultiReply.payload) == VFIOUserWriteMultiReply(completed: 2))
    }

    @Test func deviceFeature() throws {
        expectPayload(M.featureSetState, M.featureSetStateValue.encoded())
        #expect(try DeviceFeature(decoding: M.featureSetState.payload, layout: .vfioUser) == M.featureSetStateValue)
        // A GET request is the header alone, argsz stating the reply's room.
        let get = DeviceFeatureHeader(argsz: 16, flags: DeviceFeatureFlags(feature: DeviceFeatureID.migrationDeviceState.rawValue, .get))
        expectPayload(M.featureGetState, get.encoded())
        #expect(try DeviceFeatureHeader(decoding: M.featureGetState.payload) == get)
        expectPayload(M.featureGetStateReply, M.featureGetStateReplyValue.encoded())
        #expect(try DeviceFeature(decoding: M.featureGetStateReply.payload, layout: .vfioUser) == M.featureGetStateReplyValue)
        expectPayload(M.featureProbe, M.featureProbeValue.encoded())
        #expect(try DeviceFeature(decoding: M.featureProbe.payload, layout: .vfioUser) == M.featureProbeValue)
        expectPayload(M.featureLoggingStart, M.featureLoggingStartValue.encoded())
        #expect(try DeviceFeature(decoding: M.featureLoggingStart.payload, layout: .vfioUser) == M.featureLoggingStartValue)
    }

    @Test func migDataReadAndWrite() throws {
        expectPayload(M.migDataRead, M.migDataReadValue.encoded)
        #expect(try VFIOUserMigData(decoding: M.migDataRead.payload) == M.migDataReadValue)
        expectPayload(M.migDataReadReply, M.migDataReadReplyValue.encoded)
        #expect(try VFIOUserMigData(decoding: M.migDataReadReply.payload) == M.migDataReadReplyValue)
        #expect(try VFIOUserMigData.readReplyData(M.migDataReadReply.payload, requested: 64) == [1, 2, 3])
        expectPayload(M.migDataWrite, M.migDataWriteValue.encoded)
        #expect(try VFIOUserMigData(decoding: M.migDataWrite.payload) == M.migDataWriteValue)
        #expect(M.migDataWriteReply.payload.isEmpty)
    }

    /// Through a real socket pair: what `send` puts on the wire is the message's bytes, and
    /// those bytes written raw are what `receive` returns.
    @Test func theSocketSendsAndReceivesTheLayoutsBytes() throws {
        for message in M.all {
            // A size field other than the byte count would leave receive waiting for more.
            try #require(le32(message.bytes, 4) == UInt32(message.bytes.count), "\(message.name): the size field")
            let (a, b) = try VFIOUserSocket.pair()
            defer {
                a.close()
                b.close()
            }
            try a.send(id: message.id, command: message.command.rawValue, flags: message.flags, error: message.error, payload: message.payload)
            var got = [UInt8](repeating: 0, count: message.bytes.count + 1)
            let n = got.withUnsafeMutableBytes { recv(b.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            #expect(n == message.bytes.count && Array(got.prefix(max(n, 0))) == message.bytes, "\(message.name) as sent")

            let sent = message.bytes.withUnsafeBytes { Glibc.send(a.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            try #require(sent == message.bytes.count)
            guard case .message(let received) = try b.receive(maxPayload: 1 << 16, maxFDs: 4) else {
                Issue.record("\(message.name): not received as a message")
                continue
            }
            #expect(received.header == message.header && received.payload == message.payload, "\(message.name) as received")
        }
    }
}

/// `bytes` as hex, for messages.
func hexBytes(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ")
}
