import Testing
@testable import VFIO
import TestSupport

/// The inline layouts of docs/interop/vfio-user.rst for DMA logging.
@Suite struct FeatureVFIOUserTests {
    @Test func dmaLoggingStartCarriesRangesInline() throws {
        let control = VFIOUserDMALoggingControl(pageSize: 4096, ranges: [
            DMALoggingRange(iova: 0x1000, length: 0x2000), DMALoggingRange(iova: 0x10_0000, length: 0x1000),
        ])
        let bytes = control.encoded()
        #expect(bytes.count == 16 + 2 * 16)
        #expect(Array(bytes[0..<8]) == featureLE64(4096))
        #expect(le32(bytes, 8) == 2 && le32(bytes, 12) == 0)
        #expect(Array(bytes[16...]) == DMALoggingRange.encodeArray(control.ranges))

        let request = DeviceFeature.set(.vfioUserDMALoggingStart(control))
        let encoded = request.encoded()
        #expect(le32(encoded, 0) == 56 && le32(encoded, 4) == 6 | 1 << 17)
        #expect(try DeviceFeature(decoding: encoded, layout: .vfioUser) == request)
        // The same bytes read with the kernel layout see a pointer where the ranges begin.
        let kernel = try DeviceFeature(decoding: encoded, layout: .kernel)
        #expect(kernel == .set(.dmaLoggingStart(DMALoggingControl(pageSize: 4096, numRanges: 2, rangesPointer: 0x1000))))
    }

    @Test func dmaLoggingReportRequestAndReply() throws {
        let request = DeviceFeature.get(.vfioUserDMALoggingReport(VFIOUserDMALoggingReport(iova: 0x4000_0000, length: 130 * 4096, pageSize: 4096)))
        let requestBytes = request.encoded()
        #expect(requestBytes.count == 8 + 24)
        #expect(try DeviceFeature(decoding: requestBytes, layout: .vfioUser) == request)

        let reply = DeviceFeature.get(.vfioUserDMALoggingReport(VFIOUserDMALoggingReport(
            iova: 0x4000_0000, length: 130 * 4096, pageSize: 4096, bitmap: [0x8000_0000_0000_0001, 0, 0b11])))
        let replyBytes = reply.encoded()
        #expect(replyBytes.count == 8 + 24 + 3 * 8)
        #expect(Array(replyBytes[32..<40]) == featureLE64(0x8000_0000_0000_0001))
        #expect(try DeviceFeature(decoding: replyBytes, layout: .vfioUser) == reply)
    }

    @Test func replyBitmapIsChecked() {
        let head = featureLE64(0, 130 * 4096, 4096)
        expectFeatureMalformed("vfio_user_device_feature_dma_logging_report", "needs 3 word(s)", "16 byte(s) follow") {
            _ = try VFIOUserDMALoggingReport(decoding: head + featureLE64(1, 2))
        }
        expectFeatureMalformed("page_size 3000", "power of two") {
            _ = try VFIOUserDMALoggingReport(decoding: featureLE64(0, 4096, 3000, 0))
        }
        expectFeatureMalformed("page_size 0") {
            _ = try VFIOUserDMALoggingReport(decoding: featureLE64(0, 4096, 0, 0))
        }
        // Through the feature request, the error names the feature and the cause.
        expectFeatureMalformed("vfio_device_feature", "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT", "needs 3 word(s)") {
            _ = try DeviceFeature(decoding: featureLE32(48, 8 | 1 << 16) + head + featureLE64(1, 2), layout: .vfioUser)
        }
    }

    @Test func inlineRangesAreChecked() {
        expectFeatureMalformed("vfio_user_device_feature_dma_logging_control", "3 range(s)") {
            _ = try VFIOUserDMALoggingControl(decoding: featureLE64(4096) + featureLE32(3, 0) + featureLE64(0, 4096, 8192, 4096))
        }
        expectFeatureMalformed("range(s)") {
            _ = try VFIOUserDMALoggingControl(decoding: featureLE64(4096) + featureLE32(.max, 0))
        }
    }
}
