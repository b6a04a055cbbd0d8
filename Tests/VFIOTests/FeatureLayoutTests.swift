import CVFIO
import Testing
@testable import VFIO
import TestSupport

/// The encodings against the system header (Linux 6.1), for the structs it has.
@Suite struct FeatureLayoutTests {
    @Test func deviceFeatureHeader() {
        #expect(MemoryLayout<vfio_device_feature>.size == DeviceFeature.fixedSize)
        #expect(MemoryLayout<vfio_device_feature>.size == DeviceFeatureHeader.fixedSize)
        let request = DeviceFeature.set(.migrationDeviceState(MigrationStateFeature(deviceState: .stopCopy, dataFD: 77)))
        let bytes = request.encoded()
        let c = asCStruct(vfio_device_feature.self, bytes)
        #expect(c.argsz == 16)
        #expect(c.flags == UInt32(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE) | UInt32(VFIO_DEVICE_FEATURE_SET))
        let payload = asCStruct(vfio_device_feature_mig_state.self, Array(bytes[8...]))
        #expect(payload.device_state == VFIO_DEVICE_STATE_STOP_COPY.rawValue)
        #expect(payload.data_fd == 77)
    }

    @Test func featureNumbersAndFlagsOfTheSystemHeader() {
        #expect(DeviceFeatureID.pciVFToken.rawValue == UInt32(VFIO_DEVICE_FEATURE_PCI_VF_TOKEN))
        #expect(DeviceFeatureID.migration.rawValue == UInt32(VFIO_DEVICE_FEATURE_MIGRATION))
        #expect(DeviceFeatureID.migrationDeviceState.rawValue == UInt32(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE))
        #expect(DeviceFeatureID.lowPowerEntry.rawValue == UInt32(VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY))
        #expect(DeviceFeatureID.lowPowerEntryWithWakeup.rawValue == UInt32(VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP))
        #expect(DeviceFeatureID.lowPowerExit.rawValue == UInt32(VFIO_DEVICE_FEATURE_LOW_POWER_EXIT))
        #expect(DeviceFeatureID.dmaLoggingStart.rawValue == UInt32(VFIO_DEVICE_FEATURE_DMA_LOGGING_START))
        #expect(DeviceFeatureID.dmaLoggingStop.rawValue == UInt32(VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP))
        #expect(DeviceFeatureID.dmaLoggingReport.rawValue == UInt32(VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT))
        let probe = DeviceFeature.probe(.migration, get: true, set: true).encoded()
        #expect(le32(probe, 4) == UInt32(VFIO_DEVICE_FEATURE_MIGRATION) | UInt32(VFIO_DEVICE_FEATURE_PROBE)
            | UInt32(VFIO_DEVICE_FEATURE_GET) | UInt32(VFIO_DEVICE_FEATURE_SET))
    }

    @Test func migrationFeatureInfo() {
        #expect(MemoryLayout<vfio_device_feature_migration>.size == MigrationFeatureInfo.fixedSize)
        let value = MigrationFeatureInfo(features: [.stopCopy, .p2p, .preCopy])
        let c = asCStruct(vfio_device_feature_migration.self, value.encoded())
        // VFIO_MIGRATION_PRE_COPY (1 << 2) is newer than the 6.1 header.
        #expect(c.flags == UInt64(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P) | 1 << 2)
    }

    @Test func migrationStateFeature() {
        #expect(MemoryLayout<vfio_device_feature_mig_state>.size == MigrationStateFeature.fixedSize)
        for state in MigrationState.allCases {
            let c = asCStruct(vfio_device_feature_mig_state.self, MigrationStateFeature(deviceState: state, dataFD: -1).encoded())
            #expect(c.device_state == state.rawValue && c.data_fd == -1)
        }
    }

    @Test func lowPowerEntryWithWakeup() {
        #expect(MemoryLayout<vfio_device_low_power_entry_with_wakeup>.size == LowPowerEntryWithWakeup.fixedSize)
        let c = asCStruct(vfio_device_low_power_entry_with_wakeup.self, LowPowerEntryWithWakeup(wakeupEventfd: 0x1234_5678).encoded())
        #expect(c.wakeup_eventfd == 0x1234_5678 && c.reserved == 0)
    }

    @Test func dmaLoggingStructs() {
        #expect(MemoryLayout<vfio_device_feature_dma_logging_control>.size == DMALoggingControl.fixedSize)
        let control = DMALoggingControl(pageSize: 0x20_0000, numRanges: 0xabcd, rangesPointer: 0x7fff_0123_4560)
        let cc = asCStruct(vfio_device_feature_dma_logging_control.self, control.encoded())
        #expect(cc.page_size == 0x20_0000 && cc.num_ranges == 0xabcd && cc.__reserved == 0 && cc.ranges == 0x7fff_0123_4560)

        #expect(MemoryLayout<vfio_device_feature_dma_logging_range>.size == DMALoggingRange.fixedSize)
        let ranges = [DMALoggingRange(iova: 0x1000, length: 0x2000), DMALoggingRange(iova: 0xdead_0000, length: 0x1_0000)]
        let array = DMALoggingRange.encodeArray(ranges)
        array.withUnsafeBytes { raw in
            for (i, range) in ranges.enumerated() {
                let c = raw.loadUnaligned(fromByteOffset: i * MemoryLayout<vfio_device_feature_dma_logging_range>.stride,
                                          as: vfio_device_feature_dma_logging_range.self)
                #expect(c.iova == range.iova && c.length == range.length)
            }
        }

        #expect(MemoryLayout<vfio_device_feature_dma_logging_report>.size == DMALoggingReport.fixedSize)
        let report = DMALoggingReport(iova: 0x1_0000_0000, length: 0x4000_0000, pageSize: 4096, bitmapPointer: 0x5000_1000)
        let cr = asCStruct(vfio_device_feature_dma_logging_report.self, report.encoded())
        #expect(cr.iova == report.iova && cr.length == report.length && cr.page_size == 4096 && cr.bitmap == 0x5000_1000)
    }
}
