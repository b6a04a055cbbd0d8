import Testing
@testable import VFIO
import TestSupport

@Suite struct FeatureIOMMUFDTests {
    @Test func bindRoundTrips() throws {
        let bind = BindIOMMUFD(iommufd: 9, outDeviceID: 0x1234_5678)
        try expectRoundTrip(bind)
        let bytes = bind.encoded()
        #expect(bytes == featureLE32(16, 0, 9, 0x1234_5678))

        let withToken = BindIOMMUFD(iommufd: 3, outDeviceID: 1, tokenUUIDPointer: 0x7ffd_0000_1230)
        try expectRoundTrip(withToken)
        #expect(withToken.encoded() == featureLE32(24, 1, 3, 1) + featureLE64(0x7ffd_0000_1230))
    }

    @Test func bindRejections() {
        expectFeatureMalformed("vfio_device_bind_iommufd", "argsz 12") {
            _ = try BindIOMMUFD(decoding: featureLE32(12, 0, 3, 0))
        }
        expectFeatureMalformed("vfio_device_bind_iommufd", "unknown bits 0x2") {
            _ = try BindIOMMUFD(decoding: featureLE32(16, 2, 3, 0))
        }
        expectFeatureMalformed("VFIO_DEVICE_BIND_FLAG_TOKEN", "argsz of at least 24, got 16") {
            _ = try BindIOMMUFD(decoding: featureLE32(16, 1, 3, 0, 0, 0))
        }
        expectFeatureMalformed("vfio_device_bind_iommufd", "only 4 left") {
            _ = try BindIOMMUFD(decoding: featureLE32(24, 1, 3, 0, 0))
        }
    }

    @Test func attachRoundTrips() throws {
        try expectRoundTrip(AttachIOMMUFDPageTable(pageTableID: 7))
        try expectRoundTrip(AttachIOMMUFDPageTable(pageTableID: 0xfeed, pasid: 0xf_ffff))
        // Linux 6.14's 12 bytes without a PASID: argsz 12, flags 0, pt_id.
        #expect(AttachIOMMUFDPageTable(pageTableID: 7).encoded() == [12, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0])
        #expect(AttachIOMMUFDPageTable.fixedSize == 12)
        // The 16-byte form of Linux 6.15 only when a PASID is asked for.
        #expect(AttachIOMMUFDPageTable(pageTableID: 7, pasid: 5).encoded() == [16, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 5, 0, 0, 0])
        #expect(try AttachIOMMUFDPageTable(decoding: featureLE32(12, 0, 7)) == AttachIOMMUFDPageTable(pageTableID: 7))
        // Without the flag, pasid is ignored.
        #expect(try AttachIOMMUFDPageTable(decoding: featureLE32(16, 0, 7, 99)) == AttachIOMMUFDPageTable(pageTableID: 7))
    }

    @Test func attachRejections() {
        expectFeatureMalformed("vfio_device_attach_iommufd_pt", "argsz 8") {
            _ = try AttachIOMMUFDPageTable(decoding: featureLE32(8, 0, 7))
        }
        expectFeatureMalformed("VFIO_DEVICE_ATTACH_PASID", "got 12") {
            _ = try AttachIOMMUFDPageTable(decoding: featureLE32(12, 1, 7, 5))
        }
        expectFeatureMalformed("unknown bits 0x6") {
            _ = try AttachIOMMUFDPageTable(decoding: featureLE32(16, 7, 7, 5))
        }
    }

    @Test func detachRoundTrips() throws {
        try expectRoundTrip(DetachIOMMUFDPageTable())
        try expectRoundTrip(DetachIOMMUFDPageTable(pasid: 0x1_0001))
        // Linux 6.14's 8 bytes without a PASID: argsz 8, flags 0.
        #expect(DetachIOMMUFDPageTable().encoded() == [8, 0, 0, 0, 0, 0, 0, 0])
        #expect(DetachIOMMUFDPageTable.fixedSize == 8)
        // The 12-byte form of Linux 6.15 only with a PASID.
        #expect(DetachIOMMUFDPageTable(pasid: 3).encoded() == [12, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0])
        #expect(try DetachIOMMUFDPageTable(decoding: featureLE32(12, 0, 99)) == DetachIOMMUFDPageTable())
        #expect(try DetachIOMMUFDPageTable(decoding: featureLE32(8, 0)) == DetachIOMMUFDPageTable())
    }

    @Test func detachRejections() {
        expectFeatureMalformed("vfio_device_detach_iommufd_pt", "argsz 4") {
            _ = try DetachIOMMUFDPageTable(decoding: featureLE32(4, 0))
        }
        expectFeatureMalformed("VFIO_DEVICE_DETACH_PASID", "got 8") {
            _ = try DetachIOMMUFDPageTable(decoding: featureLE32(8, 1, 3))
        }
        expectFeatureMalformed("unknown bits 0x10") {
            _ = try DetachIOMMUFDPageTable(decoding: featureLE32(12, 0x10, 3))
        }
    }

    @Test func precopyInfo() throws {
        let info = PrecopyInfo(flags: 0, initialBytes: 0x1_0000_0000, dirtyBytes: 4096)
        try expectRoundTrip(info)
        #expect(info.encoded() == featureLE32(24, 0) + featureLE64(0x1_0000_0000, 4096))
        expectFeatureMalformed("vfio_precopy_info", "argsz 16") {
            _ = try PrecopyInfo(decoding: featureLE32(16, 0) + featureLE64(1, 2))
        }
    }
}
