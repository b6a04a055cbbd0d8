import Testing
import VFIO
import VFIOUserWire

/// Each decoder over every prefix of a valid message (`WireMessages`): what each prefix must
/// give is stated from the layout, length by length. A prefix shorter than the fixed part
/// is malformed; a prefix that ends inside a variable part (data, a bitmap, sub-regions, a
/// capability chain, the version's JSON) is malformed; where the layout lets the variable
/// part be absent (a request for data), the fixed part alone decodes without it; the whole
/// payload decodes to the message's value. Nothing is read past a prefix's end.
@Suite struct UserCodecPrefixTests {
    typealias M = WireMessages

    /// Decodes every prefix of `bytes` (0 through all of them) and checks it against
    /// `expected(length)`: a value, or nil for "must throw `.malformed`".
    func checkEveryPrefix<T: Equatable>(_ name: String, _ bytes: [UInt8],
                                        decode: ([UInt8]) throws(VFIOError) -> T, expected: (Int) -> T?,
                                        sourceLocation: SourceLocation = #_sourceLocation) {
        for length in 0...bytes.count {
            let want = expected(length)
            do throws(VFIOError) {
                let got = try decode(Array(bytes.prefix(length)))
                if let want {
                    #expect(got == want, "\(name): the \(length)-byte prefix of \(bytes.count)", sourceLocation: sourceLocation)
                } else {
                    Issue.record("\(name): the \(length)-byte prefix of \(bytes.count) decoded to \(got)", sourceLocation: sourceLocation)
                }
            } catch {
                if let want {
                    Issue.record("\(name): the \(length)-byte prefix of \(bytes.count) threw \(error), expected \(want)", sourceLocation: sourceLocation)
                } else if case .malformed = error.reason {
                    continue
                } else {
                    Issue.record("\(name): the \(length)-byte prefix threw \(error), not malformed", sourceLocation: sourceLocation)
                }
            }
        }
    }

    /// The whole value at `full` bytes, `partial` where the fixed part stands alone,
    /// malformed everywhere else.
    func only<T>(_ full: Int, _ value: T, fixedAlone: (length: Int, value: T)? = nil) -> (Int) -> T? {
        { length in
            if length == full { return value }
            if let fixedAlone, length == fixedAlone.length { return fixedAlone.value }
            return nil
        }
    }

    @Test func theHeader() {
        let bytes = M.dmaMap.bytes
        checkEveryPrefix("header", bytes, decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserHeader(decoding: b) },
                         expected: { $0 >= 16 ? M.dmaMap.header : nil })
    }

    @Test func version() {
        let payload = M.version.payload   // 4 + 122 JSON bytes + NUL
        let full = VFIOUserVersion(capabilities: M.versionCapabilities)
        checkEveryPrefix("VERSION", payload, decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserVersion(decoding: b) }) { length in
            switch length {
            case 4: return VFIOUserVersion(capabilities: .defaults)   // no JSON: the defaults
            case payload.count - 1, payload.count: return full       // the JSON, with or without its NUL
            default: return nil                                       // short, or JSON cut inside
            }
        }
    }

    @Test func dmaMapAndUnmap() {
        checkEveryPrefix("DMA_MAP", M.dmaMap.payload, decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserDMAMap(decoding: b) },
                         expected: only(32, M.dmaMapValue))
        checkEveryPrefix("DMA_UNMAP", M.dmaUnmap.payload, decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserDMAUnmap(decoding: b) },
                         expected: only(24, M.dmaUnmapValue))
        // 24 fixed, 16 of bitmap header, 2 bitmap bytes: the header alone is the request's
        // form; one of the two bytes is not.
        var request = M.dmaUnmapBitmapValue
        request.bitmap?.data = []
        checkEveryPrefix("DMA_UNMAP with bitmap", M.dmaUnmapBitmapReply.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserDMAUnmap(decoding: b) },
                         expected: only(42, M.dmaUnmapBitmapValue, fixedAlone: (40, request)))
    }

    @Test func deviceGetInfo() {
        checkEveryPrefix("DEVICE_GET_INFO", M.deviceInfoReply.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserDeviceInfo(decoding: b) },
                         expected: only(16, M.deviceInfoValue))
    }

    @Test func deviceGetRegionInfo() {
        // 32 fixed, then the 32-byte sparse-mmap capability that argsz and cap_offset promise.
        checkEveryPrefix("DEVICE_GET_REGION_INFO", M.regionInfoReply.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try RegionInfo(decoding: b) },
                         expected: only(64, M.regionInfoValue))
    }

    @Test func deviceGetRegionIOFDs() {
        // 16 fixed, then 2 sub-regions of 40: the fixed part alone is a reply without them
        // (the room was too small); part of a sub-region is not.
        var withoutSubRegions = M.regionIOFDsValue
        withoutSubRegions.subRegions = []
        checkEveryPrefix("DEVICE_GET_REGION_IO_FDS", M.regionIOFDsReply.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserRegionIOFDs(decoding: b) },
                         expected: only(96, M.regionIOFDsValue, fixedAlone: (16, withoutSubRegions)))
    }

    @Test func deviceGetIRQInfo() {
        checkEveryPrefix("DEVICE_GET_IRQ_INFO", M.irqInfoReply.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try IRQInfo(decoding: b) },
                         expected: only(16, M.irqInfoValue))
    }

    @Test func deviceSetIRQs() {
        checkEveryPrefix("DEVICE_SET_IRQS", M.setIRQs.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try IRQSetHeader(decoding: b) },
                         expected: only(20, M.setIRQsValue))
        // 20 fixed, then the 3 bools argsz counts: every one of them is needed.
        checkEveryPrefix("DEVICE_SET_IRQS with bools", M.setIRQsBools.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try IRQSet(decoding: b) },
                         expected: only(23, M.setIRQsBoolsValue))
    }

    @Test func regionAndDMAAccesses() {
        func access(_ b: [UInt8]) throws(VFIOError) -> VFIOUserRegionAccess { try VFIOUserRegionAccess(decoding: b) }
        func dma(_ b: [UInt8]) throws(VFIOError) -> VFIOUserDMAAccess { try VFIOUserDMAAccess(decoding: b) }
        // 16 fixed, then `count` data bytes: none (a read request, a write reply) or all.
        checkEveryPrefix("REGION_READ", M.regionRead.payload, decode: access,
                         expected: only(16, VFIOUserRegionAccess(offset: 0, region: 0, count: 4)))
        checkEveryPrefix("REGION_READ reply", M.regionReadReply.payload, decode: access,
                         expected: only(20, M.regionReadReplyValue, fixedAlone: (16, VFIOUserRegionAccess(offset: 0, region: 0, count: 4))))
        checkEveryPrefix("REGION_WRITE", M.regionWrite.payload, decode: access,
                         expected: only(20, M.regionWriteValue, fixedAlone: (16, VFIOUserRegionAccess(offset: 4, region: 0, count: 4))))
        checkEveryPrefix("DMA_READ reply", M.dmaReadReply.payload, decode: dma,
                         expected: only(21, M.dmaReadReplyValue, fixedAlone: (16, VFIOUserDMAAccess(address: 0x4000, count: 5))))
        checkEveryPrefix("DMA_WRITE", M.dmaWrite.payload, decode: dma,
                         expected: only(18, M.dmaWriteValue, fixedAlone: (16, VFIOUserDMAAccess(address: 1, count: 2))))
    }

    @Test func dirtyPages() {
        // 8 fixed, 32 of range and bitmap header, 1 bitmap byte.
        var request = M.dirtyPagesBitmapValue
        request.range?.bitmap.data = []
        checkEveryPrefix("DIRTY_PAGES", M.dirtyPagesBitmapReply.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserDirtyPages(decoding: b) },
                         expected: only(41, M.dirtyPagesBitmapValue, fixedAlone: (40, request)))
    }

    @Test func regionWriteMulti() {
        // 8 bytes of wr_cnt, then wr_cnt writes of 24: every one is needed.
        checkEveryPrefix("REGION_WRITE_MULTI", M.writeMulti.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserWriteMulti(decoding: b) },
                         expected: only(56, M.writeMultiValue))
        checkEveryPrefix("REGION_WRITE_MULTI reply", M.writeMultiReply.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserWriteMultiReply(decoding: b) },
                         expected: only(8, VFIOUserWriteMultiReply(completed: 2)))
    }

    @Test func deviceFeature() {
        func feature(_ b: [UInt8]) throws(VFIOError) -> DeviceFeature { try DeviceFeature(decoding: b, layout: .vfioUser) }
        // 8 of header, then the feature's data: a SET needs all of it.
        checkEveryPrefix("DEVICE_FEATURE SET MIG_DEVICE_STATE", M.featureSetState.payload, decode: feature,
                         expected: only(16, M.featureSetStateValue))
        checkEveryPrefix("DEVICE_FEATURE GET reply", M.featureGetStateReply.payload, decode: feature,
                         expected: only(16, M.featureGetStateReplyValue))
        checkEveryPrefix("DEVICE_FEATURE SET DMA_LOGGING_START", M.featureLoggingStart.payload, decode: feature,
                         expected: only(40, M.featureLoggingStartValue))
        checkEveryPrefix("DEVICE_FEATURE PROBE", M.featureProbe.payload, decode: feature,
                         expected: only(8, M.featureProbeValue))
    }

    @Test func migData() {
        // 8 fixed, then `size` data bytes: none (a read request) or all.
        checkEveryPrefix("MIG_DATA_WRITE", M.migDataWrite.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserMigData(decoding: b) },
                         expected: only(12, M.migDataWriteValue, fixedAlone: (8, VFIOUserMigData(argsz: 12, size: 4))))
        checkEveryPrefix("MIG_DATA_READ", M.migDataRead.payload,
                         decode: { (b: [UInt8]) throws(VFIOError) in try VFIOUserMigData(decoding: b) },
                         expected: only(8, M.migDataReadValue))
    }
}
