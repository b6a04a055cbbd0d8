import CVFIO
import Testing
import VFIO

// The VFIO module's encodings against CVFIO's layout table (include/cvfio_layout.h): the
// Linux 6.14 layout of every struct the system's <linux/vfio.h>, <linux/vfio_zdev.h> and
// <linux/vfio_ccw.h> define (the build asserts those rows against the headers) and of
// the seven <linux/vfio.h> structs the 6.1 header lacks (literals, asserted wherever the
// header declares them). Each sample below gives every C member a distinct value; the
// test reads the member back from the encoded bytes at the table's offset and width, so
// an encoder that writes a member at the wrong place, with the wrong width, or not at
// all fails here.

/// The value a member must hold: an integer (little-endian in `width` bytes) or bytes.
fileprivate enum Expected: ExpressibleByIntegerLiteral {
    case int(UInt64)
    case bytes([UInt8])
    init(integerLiteral value: UInt64) { self = .int(value) }
}

/// One struct as the Swift side encodes it.
fileprivate struct Sample {
    let cName: String
    /// The Swift encoding: the fixed part, then any trailing payload.
    let bytes: [UInt8]
    /// `KernelStruct.fixedSize`, where the encoding is a `KernelStruct`.
    let fixedSize: Int?
    /// Every member of the C struct by its C name (flexible arrays: the bytes expected there).
    let members: [String: Expected]

    init<T: KernelStruct>(_ value: T, _ members: [String: Expected]) {
        self.cName = T.cName
        self.bytes = value.encoded()
        self.fixedSize = T.fixedSize
        self.members = members
    }

    /// A struct the module encodes as part of another (a capability, an array element).
    init(cName: String, bytes: [UInt8], fixedSize: Int? = nil, _ members: [String: Expected]) {
        self.cName = cName
        self.bytes = bytes
        self.fixedSize = fixedSize
        self.members = members
    }
}

fileprivate struct CStruct {
    let name: String
    let size: Int
    let header: String
    let newerThan61: Bool
}

fileprivate struct CMember {
    let type: String
    let name: String
    let offset: Int
    let width: Int
}

fileprivate enum CTable {
    static let structs: [CStruct] = (0..<cvfio_layout_struct_count).map { index in
        let row = cvfio_layout_struct_entry(index)!.pointee
        return CStruct(name: String(cString: row.name), size: Int(row.size), header: String(cString: row.header),
                       newerThan61: row.newer_than_6_1 != 0)
    }
    static let members: [CMember] = (0..<cvfio_layout_field_count).map { index in
        let row = cvfio_layout_field_entry(index)!.pointee
        return CMember(type: String(cString: row.type), name: String(cString: row.name), offset: Int(row.offset), width: Int(row.width))
    }
}

/// A capability as the kernel lays it out: header (id, version, next = 0), then the body.
fileprivate func capabilityBytes(_ capability: InfoCapability) -> [UInt8] {
    CapabilityChain.build([capability], baseOffset: 0)
}

/// The 8-byte `struct vfio_info_cap_header` read as one little-endian integer.
fileprivate func header(id: UInt16, version: UInt16, next: UInt32 = 0) -> Expected {
    .int(UInt64(id) | UInt64(version) << 16 | UInt64(next) << 32)
}

fileprivate func littleEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
}

/// Where `sample` disagrees with the table (the size, a member's place, width or value),
/// one line each; empty when it matches.
fileprivate func mismatches(_ sample: Sample) -> [String] {
    guard let cStruct = CTable.structs.first(where: { $0.name == sample.cName }) else {
        return ["\(sample.cName) is not in CVFIO's layout table"]
    }
    var found: [String] = []
    let members = CTable.members.filter { $0.type == sample.cName }
    if let fixedSize = sample.fixedSize, fixedSize != cStruct.size {
        found.append("\(sample.cName): fixedSize \(fixedSize), C sizeof \(cStruct.size)")
    }
    let fixedEnd = members.map { $0.offset + $0.width }.max() ?? 0
    if sample.bytes.count < fixedEnd {
        found.append("\(sample.cName): \(sample.bytes.count) bytes encoded, members end at \(fixedEnd)")
    }
    for name in sample.members.keys.sorted() where !members.contains(where: { $0.name == name }) {
        found.append("\(sample.cName) has no member \(name) in the C table")
    }
    for member in members {
        guard let expected = sample.members[member.name] else {
            if member.width > 0 { found.append("\(sample.cName).\(member.name) (offset \(member.offset)) has no expected value") }
            continue
        }
        switch expected {
        case .int(let value):
            guard member.width > 0, member.width <= 8, member.offset + member.width <= sample.bytes.count else {
                found.append("\(sample.cName).\(member.name): width \(member.width) at \(member.offset) cannot hold an integer in \(sample.bytes.count) bytes")
                continue
            }
            let read = littleEndian(sample.bytes[member.offset..<(member.offset + member.width)])
            if read != value {
                found.append("\(sample.cName).\(member.name) at \(member.offset) (\(member.width) bytes): 0x\(String(read, radix: 16)), expected 0x\(String(value, radix: 16))")
            }
        case .bytes(let bytes):
            if member.width > 0, bytes.count != member.width {
                found.append("\(sample.cName).\(member.name): \(bytes.count) expected bytes for a \(member.width)-byte member")
            }
            let end = member.offset + bytes.count
            if end > sample.bytes.count {
                found.append("\(sample.cName).\(member.name): the encoding ends at \(sample.bytes.count), before \(end)")
            } else if Array(sample.bytes[member.offset..<end]) != bytes {
                found.append("\(sample.cName).\(member.name) at \(member.offset): \(Array(sample.bytes[member.offset..<end])), expected \(bytes)")
            }
        }
    }
    return found
}

@Suite struct CLayoutTableTests {
    /// The table holds what the headers hold: 42 + 4 + 4 structs of the 6.1 headers, 7 newer.
    @Test func tableCountsStructs() {
        let system = CTable.structs.filter { !$0.newerThan61 }
        #expect(system.filter { $0.header == "linux/vfio.h" }.count == 42)
        #expect(system.filter { $0.header == "linux/vfio_zdev.h" }.count == 4)
        #expect(system.filter { $0.header == "linux/vfio_ccw.h" }.count == 4)
        #expect(CTable.structs.filter(\.newerThan61).map(\.name).sorted() == [
            "vfio_device_attach_iommufd_pt", "vfio_device_bind_iommufd", "vfio_device_detach_iommufd_pt",
            "vfio_device_feature_bus_master", "vfio_device_feature_mig_data_size",
            "vfio_device_info_cap_pci_atomic_comp", "vfio_precopy_info",
        ])
        #expect(Set(CTable.structs.map(\.name)).count == CTable.structs.count)
        for member in CTable.members {
            #expect(CTable.structs.contains { $0.name == member.type }, "\(member.type).\(member.name) has no struct row")
        }
    }

    /// Every struct of the table has a sample below (attach and detach are decoded from
    /// the table's bytes instead), except vfio-ccw's I/O regions, which the VFIO module
    /// does not encode (they are read and written as region bytes).
    @Test func everyStructHasASample() {
        let sampled = Set(Self.samples.map(\.cName)).union([AttachIOMMUFDPageTable.cName, DetachIOMMUFDPageTable.cName])
        let unsampled = CTable.structs.map(\.name).filter { !sampled.contains($0) }.sorted()
        #expect(unsampled == ["ccw_cmd_region", "ccw_crw_region", "ccw_io_region", "ccw_schib_region"])
    }

    @Test(arguments: 0..<CLayoutTableTests.samples.count)
    func encodingMatchesTable(_ index: Int) {
        let found = mismatches(Self.samples[index])
        #expect(found.isEmpty, "\(found.joined(separator: "; "))")
    }

    /// The comparison catches an encoder that puts members in the wrong place (the same
    /// bytes shifted by one from `offset` on), one that leaves a member out of its sample,
    /// and one whose fixed size differs from the C struct's.
    @Test func misplacedMemberIsCaught() {
        let good = Sample(IOEventfd(width: .bits32, offset: 0x1122_3344_5566_7788, data: 0xdead_beef, fd: 7), [
            "argsz": 32, "flags": 4, "offset": 0x1122_3344_5566_7788, "data": 0xdead_beef, "fd": 7,
        ])
        #expect(mismatches(good).isEmpty)
        var shifted = good.bytes
        shifted.insert(0, at: 8)
        shifted.removeLast()
        let found = mismatches(Sample(cName: good.cName, bytes: shifted, good.members))
        #expect(found.map { $0.prefix { $0 != " " } } == ["vfio_device_ioeventfd.offset", "vfio_device_ioeventfd.data", "vfio_device_ioeventfd.fd"])
        var partial = good.members
        partial["fd"] = nil
        #expect(mismatches(Sample(cName: good.cName, bytes: good.bytes, partial)) == ["vfio_device_ioeventfd.fd (offset 24) has no expected value"])
        #expect(mismatches(Sample(cName: good.cName, bytes: good.bytes, fixedSize: 24, good.members))
            == ["vfio_device_ioeventfd: fixedSize 24, C sizeof 32"])
        #expect(mismatches(Sample(PCIHotReset(fds: []), ["argsz": 12, "flags": 0, "count": 0, "group_fds": .bytes([])])).isEmpty)
        #expect(mismatches(Sample(DeviceFeatureHeader(flags: DeviceFeatureFlags(feature: 1, .get)), ["argsz": 8, "flags": 0x1_0001, "typo": 0]))
            == ["vfio_device_feature has no member typo in the C table"])
    }

    /// The VFIO module's value of each constant 6.1's header lacks, by the C name.
    static let newerConstants: [String: Int64] = [
        "VFIO_DEVICE_FLAGS_CDX": Int64(DeviceInfoFlags.cdx.rawValue),
        "VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP": Int64(DeviceInfoCapability.pciAtomicCompletionID),
        "VFIO_PCI_ATOMIC_COMP32": Int64(PCIAtomicCompletion.comp32.rawValue),
        "VFIO_PCI_ATOMIC_COMP64": Int64(PCIAtomicCompletion.comp64.rawValue),
        "VFIO_PCI_ATOMIC_COMP128": Int64(PCIAtomicCompletion.comp128.rawValue),
        "VFIO_PCI_DEVID_OWNED": Int64(Int32(bitPattern: PCIDependentDevice.devidOwned)),
        "VFIO_PCI_DEVID_NOT_OWNED": Int64(Int32(bitPattern: PCIDependentDevice.devidNotOwned)),
        "VFIO_PCI_HOT_RESET_FLAG_DEV_ID": Int64(PCIHotResetInfoFlags.devID.rawValue),
        "VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED": Int64(PCIHotResetInfoFlags.devIDOwned.rawValue),
        "VFIO_MIGRATION_PRE_COPY": Int64(MigrationFeatures.preCopy.rawValue),
        "VFIO_DEVICE_FEATURE_MIG_DATA_SIZE": Int64(DeviceFeatureID.migrationDataSize.rawValue),
        "VFIO_DEVICE_FEATURE_BUS_MASTER": Int64(DeviceFeatureID.busMaster.rawValue),
        "VFIO_DEVICE_FEATURE_CLEAR_MASTER": Int64(BusMaster.Operation.clearMaster.rawValue),
        "VFIO_DEVICE_FEATURE_SET_MASTER": Int64(BusMaster.Operation.setMaster.rawValue),
        "__VFIO_RESERVED_TYPE1_NESTING_IOMMU": Int64(ContainerExtension.type1NestingReserved.rawValue),
        "VFIO_DEVICE_STATE_PRE_COPY": Int64(MigrationState.preCopy.rawValue),
        "VFIO_DEVICE_STATE_PRE_COPY_P2P": Int64(MigrationState.preCopyP2P.rawValue),
        "VFIO_AP_REQ_IRQ_INDEX": Int64(APIRQIndex.req.rawValue),
        "VFIO_AP_NUM_IRQS": Int64(APIRQIndex.count),
    ]

    /// The constants 6.1's header lacks have, in the VFIO module, the values of CVFIO's rows
    /// (which the build checks against any system header that has them).
    @Test func newerConstantsMatchTable() {
        let table = (0..<cvfio_layout_constant_count).map { index in
            let row = cvfio_layout_constant_entry(index)!.pointee
            return (String(cString: row.name), Int64(row.value))
        }
        #expect(table.count == 19)
        #expect(Set(table.map(\.0)) == Set(Self.newerConstants.keys))
        for (name, value) in table {
            #expect(Self.newerConstants[name] == value, "\(name): the VFIO module has \(Self.newerConstants[name].map(String.init) ?? "nothing"), 6.14 has \(value)")
        }
    }

    /// The 6.14 forms of attach (12 bytes) and detach (8 bytes), built from the table's
    /// offsets and widths, decode to a device-wide attach/detach (no PASID).
    @Test func attachAndDetachDecodeTheTableLayout() throws {
        func bytes(_ cName: String, _ values: [String: UInt64]) throws -> [UInt8] {
            let cStruct = try #require(CTable.structs.first { $0.name == cName })
            var bytes = [UInt8](repeating: 0, count: cStruct.size)
            for member in CTable.members where member.type == cName {
                let value = try #require(values[member.name], "\(cName).\(member.name) has no value")
                for i in 0..<member.width { bytes[member.offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
            }
            return bytes
        }
        let attach = try AttachIOMMUFDPageTable(decoding: try bytes(AttachIOMMUFDPageTable.cName, ["argsz": 12, "flags": 0, "pt_id": 0x4455]))
        #expect(attach.pageTableID == 0x4455)
        #expect(attach.pasid == nil)
        let detach = try DetachIOMMUFDPageTable(decoding: try bytes(DetachIOMMUFDPageTable.cName, ["argsz": 8, "flags": 0]))
        #expect(detach.pasid == nil)
    }

    fileprivate static var samples: [Sample] { Self.deviceSamples + Self.capabilitySamples + Self.featureSamples + Self.iommuSamples }

    fileprivate static let deviceSamples: [Sample] = [
        Sample(GroupStatus(flags: [.viable, .containerSet]), ["argsz": 8, "flags": 3]),
        Sample(DeviceInfo(flags: [.reset, .pci], numRegions: 9, numIRQs: 5), [
            "argsz": 24, "flags": 3, "num_regions": 9, "num_irqs": 5, "cap_offset": 0,
        ]),
        Sample(RegionInfo(flags: [.read, .write, .mmap], index: 2, size: 0x1_0000_2000, offset: 0x2_0000_0000_0000), [
            "argsz": 32, "flags": 7, "index": 2, "cap_offset": 0, "size": 0x1_0000_2000, "offset": 0x2_0000_0000_0000,
        ]),
        Sample(IRQInfo(flags: [.eventfd, .noResize], index: 2, count: 33), ["argsz": 16, "flags": 9, "index": 2, "count": 33]),
        Sample(IRQSet(index: 2, start: 3, action: .trigger, data: .eventfds([11, -1])), [
            "argsz": 28, "flags": 0x24, "index": 2, "start": 3, "count": 2,
            "data": .bytes([11, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        ]),
        Sample(PCIDependentDevice(groupID: 0x1234_5678, segment: 0xabcd, bus: 0x3e, devfn: 0x11), [
            "group_id": 0x1234_5678, "devid": 0x1234_5678, "segment": 0xabcd, "bus": 0x3e, "devfn": 0x11,
        ]),
        Sample(PCIHotResetInfo(flags: [], devices: [PCIDependentDevice(groupID: 4, segment: 1, bus: 2, devfn: 3)]), [
            "argsz": 20, "flags": 0, "count": 1, "devices": .bytes([4, 0, 0, 0, 1, 0, 2, 3]),
        ]),
        Sample(PCIHotReset(fds: [5, 6]), ["argsz": 20, "flags": 0, "count": 2, "group_fds": .bytes([5, 0, 0, 0, 6, 0, 0, 0])]),
        Sample(GFXPlaneInfo(flags: [.dmabuf], drmPlaneType: 2, drmFormat: 0x3432_5258, drmFormatModifier: 0x0100_0000_0000_0001,
                            width: 640, height: 480, stride: 2560, size: 0x12_c000, xPos: 10, yPos: 20, xHot: 3, yHot: 4,
                            regionIndexOrDMABufID: 0x77), [
            "argsz": 64, "flags": 2, "drm_plane_type": 2, "drm_format": 0x3432_5258, "drm_format_mod": 0x0100_0000_0000_0001,
            "width": 640, "height": 480, "stride": 2560, "size": 0x12_c000, "x_pos": 10, "y_pos": 20, "x_hot": 3, "y_hot": 4,
            "region_index": 0x77, "dmabuf_id": 0x77,
        ]),
        Sample(GFXEDIDRegion(edidOffset: 0x100, edidMaxSize: 0x200, edidSize: 128, maxXRes: 1920, maxYRes: 1080, linkState: 2), [
            "edid_offset": 0x100, "edid_max_size": 0x200, "edid_size": 128, "max_xres": 1920, "max_yres": 1080, "link_state": 2,
        ]),
        Sample(IOEventfd(width: .bits16, offset: 0x7000_0000_0010, data: 0xbeef, fd: 9), [
            "argsz": 32, "flags": 2, "offset": 0x7000_0000_0010, "data": 0xbeef, "fd": 9,
        ]),
        Sample(MigrationInfoV1(deviceState: [.running, .saving], pendingBytes: 0x1111, dataOffset: 0x2000, dataSize: 0x333), [
            "device_state": 3, "reserved": 0, "pending_bytes": 0x1111, "data_offset": 0x2000, "data_size": 0x333,
        ]),
    ]

    fileprivate static let capabilitySamples: [Sample] = [
        Sample(cName: "vfio_info_cap_header", bytes: capabilityBytes(InfoCapability(id: 0x1234, version: 3, body: [])), [
            "id": 0x1234, "version": 3, "next": 0,
        ]),
        Sample(cName: "vfio_region_sparse_mmap_area",
               bytes: Array(capabilityBytes(RegionInfoCapability.sparseMmap([SparseMmapArea(offset: 0x3000, size: 0x5000)]).infoCapability).dropFirst(16)),
               ["offset": 0x3000, "size": 0x5000]),
        Sample(cName: "vfio_region_info_cap_sparse_mmap",
               bytes: capabilityBytes(RegionInfoCapability.sparseMmap([SparseMmapArea(offset: 0x3000, size: 0x5000)]).infoCapability), [
            "header": header(id: 1, version: 1), "nr_areas": 1, "reserved": 0,
            "areas": .bytes([0, 0x30, 0, 0, 0, 0, 0, 0, 0, 0x50, 0, 0, 0, 0, 0, 0]),
        ]),
        Sample(cName: "vfio_region_info_cap_type",
               bytes: capabilityBytes(RegionInfoCapability.type(RegionType(type: 0x8000_8086, subtype: 3)).infoCapability), [
            "header": header(id: 2, version: 1), "type": 0x8000_8086, "subtype": 3,
        ]),
        Sample(cName: "vfio_region_info_cap_nvlink2_ssatgt",
               bytes: capabilityBytes(RegionInfoCapability.nvlink2SSATarget(0x0123_4567_89ab_cdef).infoCapability), [
            "header": header(id: 4, version: 1), "tgt": 0x0123_4567_89ab_cdef,
        ]),
        Sample(cName: "vfio_region_info_cap_nvlink2_lnkspd",
               bytes: capabilityBytes(RegionInfoCapability.nvlink2LinkSpeed(0x0a0b_0c0d).infoCapability), [
            "header": header(id: 5, version: 1), "link_speed": 0x0a0b_0c0d, "__pad": 0,
        ]),
        Sample(cName: "vfio_device_info_cap_pci_atomic_comp",
               bytes: capabilityBytes(DeviceInfoCapability.pciAtomicCompletion([.comp32, .comp128]).infoCapability), [
            "header": header(id: 5, version: 1), "flags": 5, "reserved": 0,
        ]),
        Sample(cName: "vfio_device_info_cap_zpci_base",
               bytes: capabilityBytes(DeviceInfoCapability.zpciBase(ZPCIBase(
                   startDMA: 0x1000, endDMA: 0xffff_ffff_ffff, pchid: 0x0102, vfn: 0x0304, fmbLength: 0x0506,
                   pft: 0x07, gid: 0x08, fh: 0x0900_000a)).infoCapability), [
            "header": header(id: 1, version: 2), "start_dma": 0x1000, "end_dma": 0xffff_ffff_ffff, "pchid": 0x0102,
            "vfn": 0x0304, "fmb_length": 0x0506, "pft": 0x07, "gid": 0x08, "fh": 0x0900_000a,
        ]),
        Sample(cName: "vfio_device_info_cap_zpci_group",
               bytes: capabilityBytes(DeviceInfoCapability.zpciGroup(ZPCIGroup(
                   dasm: 0xffff_0000, msiAddress: 0xfe00_0000, flags: 1, mui: 0x11, noi: 0x22, maxstbl: 0x33,
                   pciVersion: 0x44, imaxstbl: 0x55)).infoCapability), [
            "header": header(id: 2, version: 2), "dasm": 0xffff_0000, "msi_addr": 0xfe00_0000, "flags": 1, "mui": 0x11,
            "noi": 0x22, "maxstbl": 0x33, "version": 0x44, "reserved": 0, "imaxstbl": 0x55,
        ]),
        Sample(cName: "vfio_device_info_cap_zpci_util",
               bytes: capabilityBytes(DeviceInfoCapability.zpciUtility([0xc1, 0xc2, 0xc3]).infoCapability), [
            "header": header(id: 3, version: 1), "size": 3, "util_str": .bytes([0xc1, 0xc2, 0xc3]),
        ]),
        Sample(cName: "vfio_device_info_cap_zpci_pfip",
               bytes: capabilityBytes(DeviceInfoCapability.zpciFunctionPath([1, 2, 3, 4, 5]).infoCapability), [
            "header": header(id: 4, version: 1), "size": 5, "pfip": .bytes([1, 2, 3, 4, 5]),
        ]),
        Sample(cName: "vfio_iommu_type1_info_cap_iova_range",
               bytes: capabilityBytes(Type1InfoCapability.iovaRanges([Type1IOVARange(start: 0x1000, end: 0xfedf_ffff)]).infoCapability), [
            "header": header(id: 1, version: 1), "nr_iovas": 1, "reserved": 0,
            "iova_ranges": .bytes(Type1IOVARange(start: 0x1000, end: 0xfedf_ffff).encoded()),
        ]),
        Sample(cName: "vfio_iommu_type1_info_cap_migration",
               bytes: capabilityBytes(Type1InfoCapability.migration(Type1MigrationCapability(
                   flags: 0, pageSizeBitmap: 0x4000_1000, maxDirtyBitmapSize: 0x800_0000)).infoCapability), [
            "header": header(id: 2, version: 1), "flags": 0, "pgsize_bitmap": 0x4000_1000, "max_dirty_bitmap_size": 0x800_0000,
        ]),
        Sample(cName: "vfio_iommu_type1_info_dma_avail",
               bytes: capabilityBytes(Type1InfoCapability.dmaAvailable(65535).infoCapability), [
            "header": header(id: 3, version: 1), "avail": 65535,
        ]),
    ]

    fileprivate static let featureSamples: [Sample] = [
        Sample(DeviceFeature.set(.busMaster(BusMaster(.setMaster))), [
            "argsz": 12, "flags": 0x2_000a, "data": .bytes([1, 0, 0, 0]),
        ]),
        Sample(MigrationFeatureInfo(features: [.stopCopy, .preCopy]), ["flags": 5]),
        Sample(MigrationStateFeature(deviceState: .stopCopy, dataFD: 12), ["device_state": 3, "data_fd": 12]),
        Sample(LowPowerEntryWithWakeup(wakeupEventfd: 14), ["wakeup_eventfd": 14, "reserved": 0]),
        Sample(DMALoggingControl(pageSize: 0x1000, numRanges: 3, rangesPointer: 0x7fff_0000_1000), [
            "page_size": 0x1000, "num_ranges": 3, "__reserved": 0, "ranges": 0x7fff_0000_1000,
        ]),
        Sample(DMALoggingRange(iova: 0x8000_0000, length: 0x20_0000), ["iova": 0x8000_0000, "length": 0x20_0000]),
        Sample(DMALoggingReport(iova: 0x9000_0000, length: 0x40_0000, pageSize: 0x1000, bitmapPointer: 0x7fff_0000_2000), [
            "iova": 0x9000_0000, "length": 0x40_0000, "page_size": 0x1000, "bitmap": 0x7fff_0000_2000,
        ]),
        Sample(MigrationDataSize(stopCopyLength: 0x1_2345_6789), ["stop_copy_length": 0x1_2345_6789]),
        Sample(BusMaster(.setMaster), ["op": 1]),
        Sample(PrecopyInfo(flags: 0, initialBytes: 0x1000, dirtyBytes: 0x2000), [
            "argsz": 24, "flags": 0, "initial_bytes": 0x1000, "dirty_bytes": 0x2000,
        ]),
        Sample(BindIOMMUFD(iommufd: 21, outDeviceID: 0x33), ["argsz": 16, "flags": 0, "iommufd": 21, "out_devid": 0x33]),
    ]

    fileprivate static let iommuSamples: [Sample] = [
        Sample(Type1Info(flags: [.pageSizes], iovaPageSizes: 0x4020_1000), [
            "argsz": 24, "flags": 1, "iova_pgsizes": 0x4020_1000, "cap_offset": 0,
        ]),
        Sample(Type1IOVARange(start: 0x1000, end: 0xfedf_ffff), ["start": 0x1000, "end": 0xfedf_ffff]),
        Sample(Type1DMAMap(flags: [.read, .write], vaddr: 0x7f00_1234_0000, iova: 0x10_0000, size: 0x20_0000), [
            "argsz": 32, "flags": 3, "vaddr": 0x7f00_1234_0000, "iova": 0x10_0000, "size": 0x20_0000,
        ]),
        Sample(Type1Bitmap(pageSize: 0x1000, size: 64, data: 0x7f00_0000_8000), [
            "pgsize": 0x1000, "size": 64, "data": 0x7f00_0000_8000,
        ]),
        Sample(Type1DMAUnmap(flags: [.getDirtyBitmap], iova: 0x10_0000, size: 0x20_0000,
                             dirtyBitmap: Type1Bitmap(pageSize: 0x1000, size: 64, data: 0x7f00_0000_8000)), [
            "argsz": 48, "flags": 1, "iova": 0x10_0000, "size": 0x20_0000,
            "data": .bytes(Type1Bitmap(pageSize: 0x1000, size: 64, data: 0x7f00_0000_8000).encoded()),
        ]),
        Sample(Type1DirtyPages(.start), ["argsz": 8, "flags": 1]),
        Sample(Type1DirtyBitmapRange(iova: 0x10_0000, size: 0x4_0000, bitmap: Type1Bitmap(pageSize: 0x1000, size: 8, data: 0x7f00_0000_9000)), [
            "iova": 0x10_0000, "size": 0x4_0000,
            "bitmap": .bytes(Type1Bitmap(pageSize: 0x1000, size: 8, data: 0x7f00_0000_9000).encoded()),
        ]),
        Sample(SPAPRTCEDDWInfo(pageSizes: 0x0100_1000, maxDynamicWindows: 1, levels: 5), [
            "pgsizes": 0x0100_1000, "max_dynamic_windows_supported": 1, "levels": 5,
        ]),
        Sample(SPAPRTCEInfo(flags: [.ddw], dma32WindowStart: 0, dma32WindowSize: 0x4000_0000,
                            ddw: SPAPRTCEDDWInfo(pageSizes: 0x0100_1000, maxDynamicWindows: 1, levels: 5)), [
            "argsz": 32, "flags": 1, "dma32_window_start": 0, "dma32_window_size": 0x4000_0000,
            "ddw": .bytes(SPAPRTCEDDWInfo(pageSizes: 0x0100_1000, maxDynamicWindows: 1, levels: 5).encoded()),
        ]),
        Sample(EEHPEError(type: 1, function: 2, address: 0x3000, mask: 0xffff), [
            "type": 1, "func": 2, "addr": 0x3000, "mask": 0xffff,
        ]),
        Sample(EEHPEOperation(.injectError(EEHPEError(type: 1, function: 2, address: 0x3000, mask: 0xffff))), [
            "argsz": 40, "flags": 0, "op": 9,
            "err": .bytes(EEHPEError(type: 1, function: 2, address: 0x3000, mask: 0xffff).encoded()),
        ]),
        Sample(SPAPRRegisterMemory(vaddr: 0x7f00_0000_0000, size: 0x100_0000), [
            "argsz": 24, "flags": 0, "vaddr": 0x7f00_0000_0000, "size": 0x100_0000,
        ]),
        Sample(SPAPRTCECreate(pageShift: 16, windowSize: 0x1_0000_0000, levels: 2, startAddress: 0x800_0000_0000_0000), [
            "argsz": 40, "flags": 0, "page_shift": 16, "__resv1": 0, "window_size": 0x1_0000_0000, "levels": 2,
            "__resv2": 0, "start_addr": 0x800_0000_0000_0000,
        ]),
        Sample(SPAPRTCERemove(startAddress: 0x800_0000_0000_0000), ["argsz": 16, "flags": 0, "start_addr": 0x800_0000_0000_0000]),
        Sample(DeviceFeatureHeader(argsz: 8, flags: DeviceFeatureFlags(feature: 3, .probe)), ["argsz": 8, "flags": 0x4_0003]),
    ]
}
