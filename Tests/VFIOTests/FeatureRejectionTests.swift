import Testing
@testable import VFIO

@Suite struct FeatureRejectionTests {
    @Test func argszBelowTheHeader() {
        expectFeatureMalformed("vfio_device_feature", "argsz 4") {
            _ = try DeviceFeature(decoding: featureLE32(4, 1 | 1 << 16))
        }
        expectFeatureMalformed("vfio_device_feature", "argsz 0") {
            _ = try DeviceFeatureHeader(decoding: featureLE32(0, 1 | 1 << 16))
        }
    }

    @Test func flagsWithoutAnOperation() {
        expectFeatureMalformed("vfio_device_feature", "none of VFIO_DEVICE_FEATURE_GET, SET or PROBE") {
            _ = try DeviceFeature(decoding: featureLE32(16, 1) + featureLE64(1))
        }
        expectFeatureMalformed("none of") {
            _ = try DeviceFeatureHeader(decoding: featureLE32(8, 0xffff))
        }
    }

    @Test func flagsWithUnknownBits() {
        expectFeatureMalformed("bits 0x80000", "other than the feature number") {
            _ = try DeviceFeature(decoding: featureLE32(8, 1 | 1 << 16 | 1 << 19))
        }
        expectFeatureMalformed("bits 0x80000000") {
            _ = try DeviceFeatureHeader(decoding: featureLE32(8, 1 << 18 | 1 << 31))
        }
    }

    @Test func getAndSetTogetherNeedProbe() throws {
        expectFeatureMalformed("GET and SET together without PROBE") {
            _ = try DeviceFeature(decoding: featureLE32(16, 2 | 1 << 16 | 1 << 17) + featureLE32(1, 0))
        }
        #expect(try DeviceFeature(decoding: featureLE32(8, 2 | 1 << 16 | 1 << 17 | 1 << 18)) == .probe(.migrationDeviceState, get: true, set: true))
    }

    @Test func shortPayloads() {
        let cases: [(UInt32, Int, String)] = [
            (0, 15, "VFIO_DEVICE_FEATURE_PCI_VF_TOKEN data"),
            (1, 7, "vfio_device_feature_migration"),
            (2, 4, "vfio_device_feature_mig_state"),
            (4, 6, "vfio_device_low_power_entry_with_wakeup"),
            (6, 16, "vfio_device_feature_dma_logging_control"),
            (8, 31, "vfio_device_feature_dma_logging_report"),
            (9, 0, "vfio_device_feature_mig_data_size"),
            (10, 3, "vfio_device_feature_bus_master"),
        ]
        for (feature, size, name) in cases {
            let bytes = featureLE32(UInt32(8 + size), feature | 1 << 17) + Array(repeating: 1, count: size)
            let id = DeviceFeatureID(rawValue: feature)!
            expectFeatureMalformed("vfio_device_feature", id.cName, name, "\(size) byte(s) of data") {
                _ = try DeviceFeature(decoding: bytes)
            }
            #expect(throws: VFIOError.self) { _ = try DeviceFeaturePayload.decode(feature: feature, data: Array(repeating: 1, count: size)) }
        }
    }

    @Test func bufferShorterThanArgsz() {
        // argsz promises 16 bytes, the buffer holds 12: the payload is short.
        expectFeatureMalformed("vfio_device_feature_mig_data_size") {
            _ = try DeviceFeature(decoding: featureLE32(16, 9 | 1 << 16, 0))
        }
    }

    @Test func unknownMigrationState() throws {
        expectFeatureMalformed("vfio_device_feature_mig_state", "device_state 8") {
            _ = try MigrationStateFeature(decoding: featureLE32(8, 0xffff_ffff))
        }
        expectFeatureMalformed("VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE", "device_state 4294967295") {
            _ = try DeviceFeature(decoding: featureLE32(16, 2 | 1 << 17, .max, 0))
        }
        for raw in UInt32(0)...7 {
            #expect(try MigrationStateFeature(decoding: featureLE32(raw, 5)).deviceState.rawValue == raw)
        }
    }

    @Test func unknownBusMasterOperation() {
        expectFeatureMalformed("vfio_device_feature_bus_master", "op 2") {
            _ = try BusMaster(decoding: featureLE32(2))
        }
    }
}
