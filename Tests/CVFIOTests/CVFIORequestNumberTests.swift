import CVFIO
import Testing

/// The request-number constants and the tool table of CVFIO, checked against numbers
/// worked out here by hand from the kernel's `_IO(type, nr)` formula.
@Suite struct CVFIORequestNumberTests {
    /// `_IO(type, nr)` on x86_64 and arm64: no direction bits, no size, type in bits 8...15.
    static func io(_ type: UInt, _ nr: UInt) -> UInt { (type << 8) | nr }
    /// VFIO_TYPE is ';' and VFIO_BASE is 100.
    static func vfio(_ n: UInt) -> UInt { io(0x3B, 100 + n) }
    /// IOMMUFD_TYPE is ';' too; iommufd commands start at 0x80.
    static func iommufd(_ n: UInt) -> UInt { io(0x3B, 0x80 + n) }

    @Test func baseConstants() {
        #expect(CVFIO_VFIO_API_VERSION == 0)
        #expect(CVFIO_VFIO_TYPE == 0x3B)
        #expect(CVFIO_VFIO_BASE == 100)
        #expect(CVFIO_IOMMUFD_CMD_BASE == 0x80)
    }

    /// Requests the Debian 12 (6.1) <linux/vfio.h> defines itself.
    @Test func systemHeaderRequests() {
        #expect(CVFIO_VFIO_GET_API_VERSION == 0x3B64)
        #expect(CVFIO_VFIO_GET_API_VERSION == Self.vfio(0))
        #expect(CVFIO_VFIO_CHECK_EXTENSION == Self.vfio(1))
        #expect(CVFIO_VFIO_SET_IOMMU == Self.vfio(2))
        #expect(CVFIO_VFIO_GROUP_GET_STATUS == Self.vfio(3))
        #expect(CVFIO_VFIO_GROUP_GET_DEVICE_FD == Self.vfio(6))
        #expect(CVFIO_VFIO_DEVICE_GET_INFO == 0x3B6B)
        #expect(CVFIO_VFIO_DEVICE_SET_IRQS == Self.vfio(10))
        #expect(CVFIO_VFIO_DEVICE_FEATURE == Self.vfio(17))
        #expect(CVFIO_VFIO_IOMMU_GET_INFO == Self.vfio(12))
        #expect(CVFIO_VFIO_IOMMU_MAP_DMA == Self.vfio(13))
        #expect(CVFIO_VFIO_IOMMU_UNMAP_DMA == Self.vfio(14))
        #expect(CVFIO_VFIO_IOMMU_DIRTY_PAGES == Self.vfio(17))
        #expect(CVFIO_VFIO_EEH_PE_OP == Self.vfio(21))
        #expect(CVFIO_VFIO_IOMMU_SPAPR_TCE_REMOVE == Self.vfio(20))
    }

    /// Requests that 6.1 lacks and CVFIO's supplement computes from the 6.14 numbers.
    @Test func supplementRequests() {
        #expect(CVFIO_VFIO_DEVICE_BIND_IOMMUFD == 0x3B76)
        #expect(CVFIO_VFIO_DEVICE_BIND_IOMMUFD == Self.vfio(18))
        #expect(CVFIO_VFIO_DEVICE_ATTACH_IOMMUFD_PT == Self.vfio(19))
        #expect(CVFIO_VFIO_DEVICE_DETACH_IOMMUFD_PT == Self.vfio(20))
        #expect(CVFIO_VFIO_MIG_GET_PRECOPY_INFO == Self.vfio(21))
        #expect(CVFIO_IOMMU_DESTROY == 0x3B80)
        #expect(CVFIO_IOMMU_IOAS_ALLOC == Self.iommufd(0x01))
        #expect(CVFIO_IOMMU_IOAS_MAP == 0x3B85)
        #expect(CVFIO_IOMMU_IOAS_UNMAP == Self.iommufd(0x06))
        #expect(CVFIO_IOMMU_VFIO_IOAS == Self.iommufd(0x08))
        #expect(CVFIO_IOMMU_HWPT_ALLOC == Self.iommufd(0x09))
        #expect(CVFIO_IOMMU_HWPT_INVALIDATE == Self.iommufd(0x0D))
        #expect(CVFIO_IOMMU_IOAS_MAP_FILE == Self.iommufd(0x0F))
        #expect(CVFIO_IOMMU_IOAS_CHANGE_PROCESS == 0x3B92)
    }

    static var table: [cvfio_ioctl_entry] {
        (0..<cvfio_ioctl_table_count).map { cvfio_ioctl_table_entry($0)!.pointee }
    }

    static func name(_ entry: cvfio_ioctl_entry) -> String { String(cString: entry.name) }
    static func object(_ entry: cvfio_ioctl_entry) -> String { String(cString: entry.object) }

    @Test func tableListsEveryRequestOnce() {
        let table = Self.table
        // 34 VFIO requests and 19 iommufd requests in Linux 6.14.
        #expect(table.count == 53)
        #expect(Set(table.map(Self.name)).count == table.count)
        #expect(table.filter { Self.name($0).hasPrefix("VFIO_") }.count == 34)
        #expect(table.filter { Self.name($0).hasPrefix("IOMMU_") }.count == 19)
        for entry in table {
            #expect(!String(cString: entry.argument).isEmpty, "\(Self.name(entry)) has no argument text")
            #expect(entry.request >> 8 == 0x3B, "\(Self.name(entry)) is not of type ';'")
        }
    }

    /// A request number may be reused only on a different kind of descriptor; "container/x"
    /// (a container with backend x) is also a "container".
    @Test func requestNumbersAreUniquePerDescriptorKind() {
        func overlaps(_ a: String, _ b: String) -> Bool {
            a == b || a.hasPrefix(b + "/") || b.hasPrefix(a + "/")
        }
        let table = Self.table
        let allowedObjects: Set = [
            "container", "container/type1", "container/spapr", "group", "device",
            "migration data fd", "iommufd",
        ]
        for (i, a) in table.enumerated() {
            #expect(allowedObjects.contains(Self.object(a)), "\(Self.name(a)): \(Self.object(a))")
            for b in table[(i + 1)...] where a.request == b.request {
                #expect(
                    !overlaps(Self.object(a), Self.object(b)),
                    "\(Self.name(a)) and \(Self.name(b)) share 0x\(String(a.request, radix: 16)) on one descriptor")
            }
        }
        // The plain request numbers do collide (e.g. VFIO_BASE + 12 three times).
        let hotResetInfo = table.first { Self.name($0) == "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO" }
        let iommuInfo = table.first { Self.name($0) == "VFIO_IOMMU_GET_INFO" }
        #expect(hotResetInfo?.request == iommuInfo?.request)
    }

    @Test func tableMatchesConstants() throws {
        let byName = Dictionary(uniqueKeysWithValues: Self.table.map { (Self.name($0), $0) })
        let samples: [(String, UInt, String)] = [
            ("VFIO_GET_API_VERSION", CVFIO_VFIO_GET_API_VERSION, "none"),
            ("VFIO_CHECK_EXTENSION", CVFIO_VFIO_CHECK_EXTENSION, "int (extension id)"),
            ("VFIO_GROUP_SET_CONTAINER", CVFIO_VFIO_GROUP_SET_CONTAINER, "int * (container fd)"),
            ("VFIO_DEVICE_GET_REGION_INFO", CVFIO_VFIO_DEVICE_GET_REGION_INFO, "struct vfio_region_info *"),
            ("VFIO_DEVICE_BIND_IOMMUFD", CVFIO_VFIO_DEVICE_BIND_IOMMUFD, "struct vfio_device_bind_iommufd *"),
            ("VFIO_MIG_GET_PRECOPY_INFO", CVFIO_VFIO_MIG_GET_PRECOPY_INFO, "struct vfio_precopy_info *"),
            ("VFIO_IOMMU_SPAPR_TCE_CREATE", CVFIO_VFIO_IOMMU_SPAPR_TCE_CREATE, "struct vfio_iommu_spapr_tce_create *"),
            ("IOMMU_IOAS_MAP", CVFIO_IOMMU_IOAS_MAP, "struct iommu_ioas_map *"),
            ("IOMMU_GET_HW_INFO", CVFIO_IOMMU_GET_HW_INFO, "struct iommu_hw_info *"),
            ("IOMMU_IOAS_CHANGE_PROCESS", CVFIO_IOMMU_IOAS_CHANGE_PROCESS, "struct iommu_ioas_change_process *"),
        ]
        for (name, request, argument) in samples {
            let entry = try #require(byName[name], "\(name) missing from the table")
            #expect(entry.request == request, "\(name)")
            #expect(String(cString: entry.argument) == argument, "\(name)")
        }
        #expect(byName["VFIO_MIG_GET_PRECOPY_INFO"].map(Self.object) == "migration data fd")
        #expect(byName["VFIO_EEH_PE_OP"].map(Self.object) == "container/spapr")
        #expect(byName["IOMMU_DESTROY"].map(Self.object) == "iommufd")
    }
}
