import Testing
@testable import VFIO
import TestSupport

@Suite struct FeatureRequestTests {
    /// One value of every payload of Linux 6.14, with non-trivial fields.
    static let everyKernelPayload: [DeviceFeaturePayload] = [
        .pciVFToken(VFToken(bytes: Array(0x10..<0x20))),
        .migration(MigrationFeatureInfo(features: [.stopCopy, .p2p, .preCopy])),
        .migrationDeviceState(MigrationStateFeature(deviceState: .preCopyP2P, dataFD: 37)),
        .lowPowerEntry,
        .lowPowerEntryWithWakeup(LowPowerEntryWithWakeup(wakeupEventfd: 41)),
        .lowPowerExit,
        .dmaLoggingStart(DMALoggingControl(pageSize: 4096, numRanges: 3, rangesPointer: 0x7fff_1234_5000)),
        .dmaLoggingStop,
        .dmaLoggingReport(DMALoggingReport(iova: 0x1_0000_0000, length: 1 << 30, pageSize: 1 << 21, bitmapPointer: 0x7f00_dead_b000)),
        .migrationDataSize(MigrationDataSize(stopCopyLength: 0x1_2345_6789)),
        .busMaster(BusMaster(.setMaster)),
        .busMaster(BusMaster(.clearMaster)),
        .unknown(feature: 11, data: [1, 2, 3, 4, 5, 6, 7, 8, 9]),
        .unknown(feature: 0xfffe, data: []),
    ]

    @Test func featureNumbersMatchTheHeader() {
        let expected: [(DeviceFeatureID, UInt32, String)] = [
            (.pciVFToken, 0, "VFIO_DEVICE_FEATURE_PCI_VF_TOKEN"),
            (.migration, 1, "VFIO_DEVICE_FEATURE_MIGRATION"),
            (.migrationDeviceState, 2, "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE"),
            (.lowPowerEntry, 3, "VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY"),
            (.lowPowerEntryWithWakeup, 4, "VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP"),
            (.lowPowerExit, 5, "VFIO_DEVICE_FEATURE_LOW_POWER_EXIT"),
            (.dmaLoggingStart, 6, "VFIO_DEVICE_FEATURE_DMA_LOGGING_START"),
            (.dmaLoggingStop, 7, "VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP"),
            (.dmaLoggingReport, 8, "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT"),
            (.migrationDataSize, 9, "VFIO_DEVICE_FEATURE_MIG_DATA_SIZE"),
            (.busMaster, 10, "VFIO_DEVICE_FEATURE_BUS_MASTER"),
        ]
        #expect(DeviceFeatureID.allCases.count == expected.count)
        for (id, number, name) in expected {
            #expect(id.rawValue == number)
            #expect(id.cName == name)
        }
        #expect(DeviceFeatureID.pciVFToken.supportedOperations == .set)
        #expect(DeviceFeatureID.migrationDeviceState.supportedOperations == [.get, .set])
        #expect(DeviceFeatureID.dmaLoggingReport.supportedOperations == .get)
    }

    @Test func everyPayloadRoundTripsAsGetAndSet() throws {
        for payload in Self.everyKernelPayload {
            try expectRoundTrip(DeviceFeature.get(payload))
            try expectRoundTrip(DeviceFeature.set(payload))
            let bytes = DeviceFeature.set(payload).encoded()
            #expect(le32(bytes, 0) == UInt32(bytes.count))
            #expect(le32(bytes, 4) == payload.feature | DeviceFeatureFlags.set.rawValue)
            #expect(Array(bytes.dropFirst(8)) == payload.encoded())
            if let id = payload.featureID {
                #expect(payload.encoded().count == id.payloadSize, "\(id)")
            }
        }
    }

    @Test func everyPayloadStructRoundTrips() throws {
        try expectRoundTrip(VFToken(bytes: Array(0xa0..<0xb0)))
        try expectRoundTrip(MigrationFeatureInfo(features: [.stopCopy, .preCopy]))
        try expectRoundTrip(MigrationFeatureInfo(features: MigrationFeatures(rawValue: 0x8000_0000_0000_0001)))
        for state in MigrationState.allCases {
            try expectRoundTrip(MigrationStateFeature(deviceState: state, dataFD: Int32(state.rawValue) - 1))
        }
        try expectRoundTrip(LowPowerEntryWithWakeup(wakeupEventfd: -1))
        try expectRoundTrip(DMALoggingControl(pageSize: 1 << 12, numRanges: 256, rangesPointer: 0xffff_8000_0000_0000))
        try expectRoundTrip(DMALoggingRange(iova: 0xfee0_0000, length: 0x10_0000))
        try expectRoundTrip(DMALoggingReport(iova: 1 << 40, length: 1 << 33, pageSize: 4096, bitmapPointer: 0x5555_0000))
        try expectRoundTrip(MigrationDataSize(stopCopyLength: .max))
        try expectRoundTrip(BusMaster(.clearMaster))
        try expectRoundTrip(VFIOUserDMALoggingControl(pageSize: 4096, ranges: [
            DMALoggingRange(iova: 0, length: 0x8000_0000), DMALoggingRange(iova: 1 << 32, length: 1 << 31),
        ]))
        try expectRoundTrip(VFIOUserDMALoggingControl(pageSize: 1 << 21, ranges: []))
        try expectRoundTrip(VFIOUserDMALoggingReport(iova: 0x1000, length: 0x41000, pageSize: 0x1000))
        try expectRoundTrip(VFIOUserDMALoggingReport(iova: 0x1000, length: 0x41000, pageSize: 0x1000, bitmap: [.max, 1]))
    }

    @Test func probeCarriesNoData() throws {
        for get in [false, true] {
            for set in [false, true] {
                let probe = DeviceFeature.probe(.migrationDeviceState, get: get, set: set)
                try expectRoundTrip(probe)
                let bytes = probe.encoded()
                #expect(bytes.count == 8)
                #expect(le32(bytes, 0) == 8)
                var flags: UInt32 = 2 | 1 << 18
                if get { flags |= 1 << 16 }
                if set { flags |= 1 << 17 }
                #expect(le32(bytes, 4) == flags)
            }
        }
        try expectRoundTrip(DeviceFeature.probe(feature: 0x1234))
        // A probe with data after the header ignores it.
        let decoded = try DeviceFeature(decoding: featureLE32(16, 1 | 1 << 18 | 1 << 16, 7, 7))
        #expect(decoded == .probe(.migration, get: true))
        #expect(decoded.payload == nil)
    }

    @Test func decodesByNumberWithUnknownFallback() throws {
        let data: [UInt8] = [9, 8, 7]
        #expect(try DeviceFeaturePayload.decode(feature: 0x7777, data: data) == .unknown(feature: 0x7777, data: data))
        #expect(try DeviceFeaturePayload.decode(feature: 7, data: data) == .dmaLoggingStop)
        #expect(try DeviceFeaturePayload.decode(feature: 3, data: []) == .lowPowerEntry)
        // Longer data than the struct is accepted; the excess is not part of the value.
        let state = MigrationStateFeature(deviceState: .stopCopy, dataFD: 12)
        #expect(try DeviceFeaturePayload.decode(feature: 2, data: state.encoded() + [0xff, 0xff]) == .migrationDeviceState(state))
        // GET of a known feature decoded from raw bytes.
        let raw = featureLE32(16, 1 | 1 << 16) + featureLE64(0b101)
        #expect(try DeviceFeature(decoding: raw) == .get(.migration(MigrationFeatureInfo(features: [.stopCopy, .preCopy]))))
    }

    @Test func dataStopsAtArgsz() throws {
        // argsz says 16: the 8 bytes after it belong to someone else.
        let bytes = DeviceFeature.set(.migrationDataSize(MigrationDataSize(stopCopyLength: 5))).encoded() + [1, 2, 3, 4, 5, 6, 7, 8]
        var reader = ByteReader(bytes, context: "test")
        let decoded = try DeviceFeature(from: &reader, layout: .kernel)
        #expect(decoded == .set(.migrationDataSize(MigrationDataSize(stopCopyLength: 5))))
        #expect(reader.offset == 16)
        // An unknown feature's data is cut at argsz too.
        let unknown = featureLE32(12, 0x99 | 1 << 17) + [1, 2, 3, 4, 5, 6]
        #expect(try DeviceFeature(decoding: unknown) == .set(.unknown(feature: 0x99, data: [1, 2, 3, 4])))
    }

    @Test func headerKeepsArgsz() throws {
        let header = DeviceFeatureHeader(argsz: 4096, flags: DeviceFeatureFlags(feature: 1, .get))
        try expectRoundTrip(header)
        // A vfio-user GET request: header only, argsz states the reply room.
        let decoded = try DeviceFeatureHeader(decoding: featureLE32(16, 1 | 1 << 16))
        #expect(decoded.argsz == 16 && decoded.flags.feature == 1 && decoded.flags.operations == .get)
    }

    @Test func vfToken() throws {
        let text = "0123abcd-4567-89ef-FEDC-ba9876543210"
        let token = try #require(VFToken(uuid: text))
        #expect(token.bytes == [0x01, 0x23, 0xab, 0xcd, 0x45, 0x67, 0x89, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10])
        #expect(token.description == text.lowercased())
        #expect(VFToken(uuid: "0123abcd-4567-89ef-fedc-ba987654321") == nil)
        #expect(VFToken(uuid: "0123abcd+4567-89ef-fedc-ba9876543210") == nil)
        #expect(VFToken(uuid: "0123abcd-4567-89ef-fedc-ba987654321g") == nil)
        let request = DeviceFeature.set(.pciVFToken(token)).encoded()
        #expect(request.count == 24 && Array(request[8...]) == token.bytes)
    }

    @Test func rangeArrayIsASeparateBuffer() throws {
        var rng = SplitMix64(seed: 0x5eed)
        let ranges = (0..<17).map { _ in DMALoggingRange(iova: rng.next() & ~0xfff, length: (rng.next() & 0xffff) << 12) }
        let bytes = DMALoggingRange.encodeArray(ranges)
        #expect(bytes.count == 17 * 16)
        #expect(try DMALoggingRange.decodeArray(bytes, count: 17) == ranges)
        #expect(try DMALoggingRange.decodeArray(bytes, count: 3) == Array(ranges.prefix(3)))
        #expect(try DMALoggingRange.decodeArray([], count: 0) == [])
        expectFeatureMalformed("18 range(s)", "272 byte(s) left") {
            _ = try DMALoggingRange.decodeArray(bytes, count: 18)
        }
        expectFeatureMalformed("range(s)") {
            _ = try DMALoggingRange.decodeArray(bytes, count: Int(UInt32.max))
        }
    }

    @Test func bitmapWordCount() {
        #expect(DMALoggingReport.bitmapWordCount(length: 0, pageSize: 4096) == 0)
        #expect(DMALoggingReport.bitmapWordCount(length: 1, pageSize: 4096) == 1)
        #expect(DMALoggingReport.bitmapWordCount(length: 64 * 4096, pageSize: 4096) == 1)
        #expect(DMALoggingReport.bitmapWordCount(length: 64 * 4096 + 1, pageSize: 4096) == 2)
        #expect(DMALoggingReport.bitmapWordCount(length: .max, pageSize: 1) == 1 << 58)
        #expect(DMALoggingReport.bitmapWordCount(length: 4096, pageSize: 0) == nil)
    }
}
