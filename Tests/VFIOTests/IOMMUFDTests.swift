import Testing
import VFIO
import TestSupport

/// Decodes `bytes` as `T` and checks the failure is a `.malformed` error naming `cause`.
fileprivate func expectRejected<T: KernelStruct>(_ type: T.Type, _ bytes: [UInt8], _ cause: String,
                                                sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let value = try T(decoding: bytes)
        Issue.record("\(T.cName) accepted bad input as \(value)", sourceLocation: sourceLocation)
    } catch {
        guard case .malformed(let why) = error.reason else {
            Issue.record("\(T.cName): expected .malformed, got \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.operation == T.cName, sourceLocation: sourceLocation)
        #expect(why.contains(cause), "\"\(why)\" does not mention \"\(cause)\"", sourceLocation: sourceLocation)
    }
}

/// Overwrites `width` little-endian bytes at `offset`.
fileprivate func patched(_ bytes: [UInt8], _ offset: Int, _ value: UInt64, width: Int = 4) -> [UInt8] {
    var copy = bytes
    for i in 0..<width { copy[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    return copy
}

@Suite struct IOMMUFDRoundTripTests {
    @Test func everyIoctlStructRoundTrips() throws {
        try expectRoundTrip(IOMMUFDDestroy(id: 0x0102_0304))
        try expectRoundTrip(IOMMUFDIOASChangeProcess())
        try expectRoundTrip(IOMMUFDIOASAlloc(outIOASID: 0x33))
        try expectRoundTrip(IOMMUFDIOASIOVARanges(ioasID: 2, numIOVAs: 5, allowedIOVAs: 0x7f00_dead_0000, outIOVAAlignment: 0x1000))
        try expectRoundTrip(IOMMUFDIOASAllowIOVAs(ioasID: 2, numIOVAs: 3, allowedIOVAs: 0x7f00_beef_0000))
        try expectRoundTrip(IOMMUFDIOASMap(flags: [.fixedIOVA, .readable, .writeable], ioasID: 2, userVA: 0x7f12_0000_0000, length: 0x20_0000, iova: 0x1_0000_0000))
        try expectRoundTrip(IOMMUFDIOASMapFile(flags: [.readable], ioasID: 2, fd: 17, fileOffset: 0x40_0000, length: 0x1000, iova: 0x2000))
        try expectRoundTrip(IOMMUFDIOASCopy(flags: [.writeable], destinationIOASID: 3, sourceIOASID: 2, length: 0x4000, destinationIOVA: 0x8000, sourceIOVA: 0xc000))
        try expectRoundTrip(IOMMUFDIOASUnmap(ioasID: 2, iova: 0x1000, length: 0x3000))
        try expectRoundTrip(IOMMUFDIOASUnmap.all(ioasID: 9))
        for option in IOMMUFDOptionID.allCases {
            for op in IOMMUFDOptionOperation.allCases {
                try expectRoundTrip(IOMMUFDOption(option: option, operation: op, objectID: 4, value: 0xffff_0000_0000_0001))
            }
        }
        for op in IOMMUFDVFIOIOASOperation.allCases { try expectRoundTrip(IOMMUFDVFIOIOAS(ioasID: 8, operation: op)) }
        try expectRoundTrip(IOMMUFDHWPTAlloc(flags: [.nestParent, .dirtyTracking], deviceID: 1, parentID: 2, outHWPTID: 3))
        try expectRoundTrip(IOMMUFDHWPTAlloc(flags: [.pasid], deviceID: 1, parentID: 4, outHWPTID: 5, dataType: .vtdS1,
                                             dataLength: 24, dataUptr: 0x7f00_0000_4000, faultID: 6))
        try expectRoundTrip(IOMMUFDHWInfo(deviceID: 1, dataLength: 40, dataUptr: 0x7f00_0000_5000, outDataType: .armSMMUv3,
                                          outCapabilities: IOMMUFDHWCapabilities(rawValue: 0x8001)))
        try expectRoundTrip(IOMMUFDHWPTSetDirtyTracking(flags: .enable, hwptID: 7))
        try expectRoundTrip(IOMMUFDHWPTSetDirtyTracking(flags: [], hwptID: 7))
        try expectRoundTrip(IOMMUFDHWPTGetDirtyBitmap(hwptID: 7, flags: .noClear, iova: 0x10_0000, length: 0x100_0000, pageSize: 0x1000, data: 0x7f00_0000_6000))
        for type in IOMMUFDInvalidateDataType.allCases {
            try expectRoundTrip(IOMMUFDHWPTInvalidate(hwptID: 8, dataUptr: 0x7f00_0000_7000, dataType: type, entryLength: 24, entryCount: 4))
        }
        try expectRoundTrip(IOMMUFDFaultAlloc(outFaultID: 10, outFaultFD: 11))
        try expectRoundTrip(IOMMUFDViommuAlloc(type: .armSMMUv3, deviceID: 1, hwptID: 3, outViommuID: 12))
        try expectRoundTrip(IOMMUFDVDeviceAlloc(viommuID: 12, deviceID: 1, outVDeviceID: 13, virtualID: 0x8_0000_0100))
    }

    @Test func payloadStructsRoundTrip() throws {
        try expectRoundTrip(IOMMUFDIOVARange(start: 0x1000, last: 0xffff_ffff_ffff_ffff))
        try expectRoundTrip(IOMMUFDHWPTVTDS1(flags: [.supervisorRequest, .extendedAccessFlag, .writeProtect], pageTableAddress: 0x1_2345_6000, addressWidth: 57))
        try expectRoundTrip(IOMMUFDHWPTARMSMMUv3(ste: (0x8000_0000_0000_0011, 0x0000_0001_0000_0000)))
        try expectRoundTrip(IOMMUFDHWInfoVTD(flags: .errata772415SPR17, capabilityRegister: 0x00d2_008c_4066_0462, extendedCapabilityRegister: 0x00f0_50da))
        try expectRoundTrip(IOMMUFDHWInfoARMSMMUv3(flags: 0, idr: [0x0f0f, 0x1, 0x2, 0x3, 0x4, 0x5], iidr: 0x43b, aidr: 0x2))
        try expectRoundTrip(IOMMUFDVTDS1Invalidate(address: 0, pageCount: .max, flags: .leaf))
        try expectRoundTrip(IOMMUFDARMSMMUv3Invalidate(command: (0x0000_0001_0000_0012, 0xabc0_0000)))
        try expectRoundTrip(IOMMUFDPageFault(flags: .lastPage, deviceID: 3, pasid: 0x1234, groupID: 7, permissions: [.read, .write],
                                             address: 0x7f00_1000, length: 0, cookie: 99))
        try expectRoundTrip(IOMMUFDPageResponse(cookie: 99, code: .success))
    }

    @Test func iovaRangeArraysRoundTrip() throws {
        let ranges = [IOMMUFDIOVARange(start: 0, last: 0xfedf_ffff), IOMMUFDIOVARange(start: 0xfef0_0000, last: .max)]
        let bytes = IOMMUFDIOVARange.encodeArray(ranges)
        #expect(bytes.count == 32)
        #expect(try IOMMUFDIOVARange.decodeArray(bytes, count: 2) == ranges)
        #expect(try IOMMUFDIOVARange.decodeArray(bytes, count: 1) == [ranges[0]])
    }

    @Test func hwptAllocDerivesFaultIDValid() throws {
        var alloc = IOMMUFDHWPTAlloc(flags: [.faultIDValid, .nestParent], deviceID: 1, parentID: 2)
        #expect(alloc.flags == [.nestParent] && alloc.wireFlags == [.nestParent])
        alloc.faultID = 0
        #expect(alloc.wireFlags == [.nestParent, .faultIDValid])
        let decoded = try IOMMUFDHWPTAlloc(decoding: alloc.encoded())
        #expect(decoded.faultID == 0)
        // Without FAULT_ID_VALID the kernel ignores fault_id; so does the decoder.
        let ignored = try IOMMUFDHWPTAlloc(decoding: patched(IOMMUFDHWPTAlloc(deviceID: 1, parentID: 2).encoded(), 40, 77))
        #expect(ignored.faultID == nil)
    }

    @Test func largerSizeFromANewerCallerIsAccepted() throws {
        var bytes = IOMMUFDIOASMap(ioasID: 2, userVA: 0x1000, length: 0x1000).encoded()
        bytes += [UInt8](repeating: 0, count: 8)
        bytes = patched(bytes, 0, 48)
        var reader = ByteReader(bytes, context: IOMMUFDIOASMap.cName)
        let map = try IOMMUFDIOASMap(from: &reader)
        #expect(map.length == 0x1000)
        #expect(reader.offset == 48)
    }
}

@Suite struct IOMMUFDRejectionTests {
    @Test func sizeBelowTheStructIsRejected() {
        expectRejected(IOMMUFDDestroy.self, patched(IOMMUFDDestroy(id: 1).encoded(), 0, 4), "argsz 4")
        expectRejected(IOMMUFDIOASMap.self, patched(IOMMUFDIOASMap(ioasID: 1, userVA: 0, length: 1).encoded(), 0, 32), "argsz 32")
        expectRejected(IOMMUFDHWPTAlloc.self, patched(IOMMUFDHWPTAlloc(deviceID: 1, parentID: 2).encoded(), 0, 40), "argsz 40")
        expectRejected(IOMMUFDViommuAlloc.self, patched(IOMMUFDViommuAlloc(type: .armSMMUv3, deviceID: 1, hwptID: 2).encoded(), 0, 20), "argsz 20")
    }

    @Test func reservedFieldsMustBeZero() {
        expectRejected(IOMMUFDIOASChangeProcess.self, patched(IOMMUFDIOASChangeProcess().encoded(), 4, 1), "__reserved")
        expectRejected(IOMMUFDIOASIOVARanges.self, patched(IOMMUFDIOASIOVARanges(ioasID: 1, numIOVAs: 1, allowedIOVAs: 8).encoded(), 12, 1), "__reserved")
        expectRejected(IOMMUFDIOASAllowIOVAs.self, patched(IOMMUFDIOASAllowIOVAs(ioasID: 1, numIOVAs: 1, allowedIOVAs: 8).encoded(), 12, 1), "__reserved")
        expectRejected(IOMMUFDIOASMap.self, patched(IOMMUFDIOASMap(ioasID: 1, userVA: 0, length: 1).encoded(), 12, 1), "__reserved")
        expectRejected(IOMMUFDOption.self, patched(IOMMUFDOption(option: .hugePages, operation: .set).encoded(), 10, 1, width: 2), "__reserved")
        expectRejected(IOMMUFDVFIOIOAS.self, patched(IOMMUFDVFIOIOAS(operation: .get).encoded(), 10, 1, width: 2), "__reserved")
        let alloc = IOMMUFDHWPTAlloc(deviceID: 1, parentID: 2).encoded()
        expectRejected(IOMMUFDHWPTAlloc.self, patched(alloc, 20, 1), "__reserved")
        expectRejected(IOMMUFDHWPTAlloc.self, patched(alloc, 44, 1), "__reserved2")
        expectRejected(IOMMUFDHWInfo.self, patched(IOMMUFDHWInfo(deviceID: 1, dataLength: 0, dataUptr: 0).encoded(), 29, 1, width: 1), "__reserved")
        expectRejected(IOMMUFDHWPTSetDirtyTracking.self, patched(IOMMUFDHWPTSetDirtyTracking(flags: [], hwptID: 1).encoded(), 12, 1), "__reserved")
        expectRejected(IOMMUFDHWPTGetDirtyBitmap.self, patched(IOMMUFDHWPTGetDirtyBitmap(hwptID: 1, iova: 0, length: 1, pageSize: 1, data: 0).encoded(), 12, 1), "__reserved")
        expectRejected(IOMMUFDHWPTInvalidate.self, patched(IOMMUFDHWPTInvalidate(hwptID: 1, dataUptr: 0, dataType: .vtdS1, entryLength: 0, entryCount: 0).encoded(), 28, 1), "__reserved")
        expectRejected(IOMMUFDHWPTVTDS1.self, patched(IOMMUFDHWPTVTDS1(flags: [], pageTableAddress: 0, addressWidth: 48).encoded(), 20, 1), "__reserved")
        expectRejected(IOMMUFDPageFault.self, patched(IOMMUFDPageFault(flags: [], deviceID: 1, pasid: 0, groupID: 0, permissions: [], address: 0, length: 0, cookie: 0).encoded(), 20, 1), "__reserved")
    }

    @Test func flagsThatMustBeZeroOrKnown() {
        expectRejected(IOMMUFDIOASAlloc.self, patched(IOMMUFDIOASAlloc().encoded(), 4, 1), "flags 0x1 must be 0")
        expectRejected(IOMMUFDHWInfo.self, patched(IOMMUFDHWInfo(deviceID: 1, dataLength: 0, dataUptr: 0).encoded(), 4, 1), "flags 0x1 must be 0")
        expectRejected(IOMMUFDFaultAlloc.self, patched(IOMMUFDFaultAlloc().encoded(), 4, 2), "flags 0x2 must be 0")
        expectRejected(IOMMUFDViommuAlloc.self, patched(IOMMUFDViommuAlloc(type: .armSMMUv3, deviceID: 1, hwptID: 2).encoded(), 4, 1), "flags 0x1 must be 0")
        expectRejected(IOMMUFDIOASMap.self, patched(IOMMUFDIOASMap(ioasID: 1, userVA: 0, length: 1).encoded(), 4, 0x0e), "unknown flag bits 0x8")
        expectRejected(IOMMUFDIOASCopy.self, patched(IOMMUFDIOASCopy(destinationIOASID: 1, sourceIOASID: 2, length: 1, sourceIOVA: 0).encoded(), 4, 0x16), "unknown flag bits 0x10")
        expectRejected(IOMMUFDHWPTAlloc.self, patched(IOMMUFDHWPTAlloc(deviceID: 1, parentID: 2).encoded(), 4, 0x10), "unknown flag bits 0x10")
        expectRejected(IOMMUFDHWPTSetDirtyTracking.self, patched(IOMMUFDHWPTSetDirtyTracking(flags: [], hwptID: 1).encoded(), 4, 2), "unknown flag bits 0x2")
        expectRejected(IOMMUFDHWPTGetDirtyBitmap.self, patched(IOMMUFDHWPTGetDirtyBitmap(hwptID: 1, iova: 0, length: 1, pageSize: 1, data: 0).encoded(), 8, 4), "unknown flag bits 0x4")
    }

    @Test func mapsNeedReadOrWrite() {
        expectRejected(IOMMUFDIOASMap.self, IOMMUFDIOASMap(flags: [.fixedIOVA], ioasID: 1, userVA: 0x1000, length: 0x1000).encoded(), "READABLE and/or WRITEABLE")
        expectRejected(IOMMUFDIOASMapFile.self, IOMMUFDIOASMapFile(flags: [], ioasID: 1, fd: 3, fileOffset: 0, length: 0x1000).encoded(), "READABLE and/or WRITEABLE")
        expectRejected(IOMMUFDIOASCopy.self, IOMMUFDIOASCopy(flags: [.fixedIOVA], destinationIOASID: 1, sourceIOASID: 2, length: 1, sourceIOVA: 0).encoded(), "READABLE and/or WRITEABLE")
        #expect(throws: VFIOError.self) { try IOMMUFDIOASMap(flags: [], ioasID: 1, userVA: 0, length: 1).validate() }
        #expect(throws: Never.self) { try IOMMUFDIOASMap(ioasID: 1, userVA: 0, length: 1).validate() }
    }

    @Test func hwptDataMustMatchItsType() {
        expectRejected(IOMMUFDHWPTAlloc.self, IOMMUFDHWPTAlloc(deviceID: 1, parentID: 2, dataType: .none, dataLength: 24, dataUptr: 0x1000).encoded(), "IOMMU_HWPT_DATA_NONE takes no data")
        expectRejected(IOMMUFDHWPTAlloc.self, IOMMUFDHWPTAlloc(deviceID: 1, parentID: 2, dataType: .vtdS1).encoded(), "needs data")
        do {
            try IOMMUFDHWPTAlloc(deviceID: 1, parentID: 2, dataType: .armSMMUv3).validate()
            Issue.record("SMMUv3 data type without data passed validate()")
        } catch {
            #expect(error.operation == IOMMUFDHWPTAlloc.cName)
            #expect(error.description.contains("needs data"))
        }
    }

    @Test func invalidEnumValuesAreRejected() {
        expectRejected(IOMMUFDHWPTAlloc.self, patched(IOMMUFDHWPTAlloc(deviceID: 1, parentID: 2).encoded(), 24, 3), "data_type 3")
        expectRejected(IOMMUFDHWInfo.self, patched(IOMMUFDHWInfo(deviceID: 1, dataLength: 0, dataUptr: 0).encoded(), 24, 9), "out_data_type 9")
        expectRejected(IOMMUFDViommuAlloc.self, patched(IOMMUFDViommuAlloc(type: .armSMMUv3, deviceID: 1, hwptID: 2).encoded(), 8, 2), "type 2")
        expectRejected(IOMMUFDHWPTInvalidate.self, patched(IOMMUFDHWPTInvalidate(hwptID: 1, dataUptr: 0, dataType: .vtdS1, entryLength: 0, entryCount: 0).encoded(), 16, 2), "data_type 2")
        expectRejected(IOMMUFDOption.self, patched(IOMMUFDOption(option: .rlimitMode, operation: .get).encoded(), 4, 2), "option_id 2")
        expectRejected(IOMMUFDOption.self, patched(IOMMUFDOption(option: .rlimitMode, operation: .get).encoded(), 8, 2, width: 2), "op 2")
        expectRejected(IOMMUFDVFIOIOAS.self, patched(IOMMUFDVFIOIOAS(operation: .get).encoded(), 8, 3, width: 2), "op 3")
        expectRejected(IOMMUFDPageResponse.self, patched(IOMMUFDPageResponse(cookie: 1, code: .success).encoded(), 4, 2), "code 2")
    }

    @Test func badRangesAreRejected() {
        expectRejected(IOMMUFDIOVARange.self, IOMMUFDIOVARange.encodeArray([]) + [0, 0x20, 0, 0, 0, 0, 0, 0] + [0, 0x10, 0, 0, 0, 0, 0, 0], "lies below start")
        let one = IOMMUFDIOVARange.encodeArray([IOMMUFDIOVARange(start: 0, last: 1)])
        #expect(throws: VFIOError.self) { _ = try IOMMUFDIOVARange.decodeArray(one, count: 2) }
        #expect(throws: VFIOError.self) { _ = try IOMMUFDIOVARange.decodeArray(one, count: -1) }
    }

    @Test func shortPayloadsAreRejected() {
        #expect(throws: VFIOError.self) { _ = try IOMMUFDHWInfoARMSMMUv3(decoding: Array(repeating: 0, count: 36)) }
        #expect(throws: VFIOError.self) { _ = try IOMMUFDPageFault(decoding: Array(repeating: 0, count: 39)) }
        #expect(throws: VFIOError.self) { _ = try IOMMUFDVDeviceAlloc(decoding: patched(Array(repeating: 0, count: 20), 0, 24)) }
    }
}
