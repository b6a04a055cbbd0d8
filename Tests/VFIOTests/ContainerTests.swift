import CVFIO
import Testing
@testable import VFIO
import TestSupport

@Suite struct ContainerTests {
    @Test func apiVersionMatchesHeader() {
        #expect(APIVersion.current == Int32(VFIO_API_VERSION))
    }

    @Test func extensionNumbersMatchLinux() {
        #expect(ContainerExtension.allCases.map(\.rawValue) == Array(1...10))
        #expect(ContainerExtension.type1.rawValue == UInt32(VFIO_TYPE1_IOMMU))
        #expect(ContainerExtension.spaprTCE.rawValue == UInt32(VFIO_SPAPR_TCE_IOMMU))
        #expect(ContainerExtension.type1v2.rawValue == UInt32(VFIO_TYPE1v2_IOMMU))
        #expect(ContainerExtension.dmaCacheCoherent.rawValue == UInt32(VFIO_DMA_CC_IOMMU))
        #expect(ContainerExtension.eeh.rawValue == UInt32(VFIO_EEH))
        // The 6.1 header still calls 6 VFIO_TYPE1_NESTING_IOMMU; 6.14 reserves the number.
        #expect(ContainerExtension.type1NestingReserved.rawValue == UInt32(VFIO_TYPE1_NESTING_IOMMU))
        #expect(ContainerExtension.spaprTCEv2.rawValue == UInt32(VFIO_SPAPR_TCE_v2_IOMMU))
        #expect(ContainerExtension.noIOMMU.rawValue == UInt32(VFIO_NOIOMMU_IOMMU))
        #expect(ContainerExtension.unmapAll.rawValue == UInt32(VFIO_UNMAP_ALL))
        #expect(ContainerExtension.updateVaddr.rawValue == UInt32(VFIO_UPDATE_VADDR))
    }

    @Test func extensionNamesParse() {
        for ext in ContainerExtension.allCases {
            #expect(ContainerExtension(name: ext.shortName) == ext)
            #expect(ContainerExtension(name: ext.cName) == ext)
            #expect(ContainerExtension(name: String(ext.rawValue)) == ext)
            #expect(ext.description == ext.shortName)
        }
        #expect(ContainerExtension(name: "TYPE1V2") == .type1v2)
        #expect(ContainerExtension(name: "spapr_tce_v2") == .spaprTCEv2)
        #expect(ContainerExtension(name: "11") == nil)
        #expect(ContainerExtension(name: "type3") == nil)
        #expect(Set(ContainerExtension.allCases.map(\.shortName)).count == 10)
        #expect(ContainerExtension.allCases.filter(\.isIOMMUType) == [.type1, .spaprTCE, .type1v2, .spaprTCEv2, .noIOMMU])
    }

    @Test func groupStatusRoundTripAndLayout() throws {
        let status = GroupStatus(flags: [.viable, .containerSet])
        try expectRoundTrip(status)
        #expect(MemoryLayout<vfio_group_status>.size == GroupStatus.fixedSize)
        let c = asCStruct(vfio_group_status.self, status.encoded())
        #expect(c.argsz == 8)
        #expect(c.flags == UInt32(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET))
        #expect(GroupStatusFlags.viable.rawValue == UInt32(VFIO_GROUP_FLAGS_VIABLE))
        #expect(GroupStatusFlags.containerSet.rawValue == UInt32(VFIO_GROUP_FLAGS_CONTAINER_SET))
    }

    @Test func groupStatusRejectsSmallArgsz() {
        #expect(throws: VFIOError.malformed("vfio_group_status", "argsz 4 is smaller than the 8-byte structure")) {
            _ = try GroupStatus(decoding: [4, 0, 0, 0, 1, 0, 0, 0])
        }
    }

    @Test func groupStatusKeepsReaderAfterArgsz() throws {
        // A reply with a larger argsz: the reader moves past the whole stated size.
        var bytes = GroupStatus(flags: .viable).encoded(capacity: 16)
        bytes += [0xAA]
        var reader = ByteReader(bytes, context: "t")
        let status = try GroupStatus(from: &reader)
        #expect(status.flags == .viable)
        #expect(reader.offset == 16)
    }
}
