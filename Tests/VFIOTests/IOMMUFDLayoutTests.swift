import Testing
import VFIO

// The build machine has no <linux/iommufd.h>, so these tests pin every field of every
// iommufd struct to the offset and width read from Linux 6.14's
// include/uapi/linux/iommufd.h (`__u32` = 4, `__u16` = 2, `__aligned_u64` = 8 bytes,
// laid out in declaration order with no implicit padding: every struct in that header
// spells its padding out as `__reserved` fields). Where a field was added or changed after
// 6.14 (iommu_hw_info's `__reserved` became `out_max_pasid_log2` + `__reserved[3]` in 6.15;
// iommu_viommu_alloc grew `data_len`/`data_uptr` later) the 6.14 form is the one pinned.

/// One field: its C name, byte offset, width in bytes and the value the sample encodes there.
fileprivate struct Field {
    let name: String
    let offset: Int
    let width: Int
    let value: UInt64
    init(_ name: String, _ offset: Int, _ width: Int, _ value: UInt64) {
        self.name = name
        self.offset = offset
        self.width = width
        self.value = value
    }
}

/// Checks `value` encodes to exactly `size` bytes, with `size` in its first field if it is
/// an iommufd ioctl struct, each field at its offset, and the fields tiling the struct
/// without gaps or overlaps.
fileprivate func expectLayout<T: KernelStruct>(_ value: T, size: Int, _ fields: [Field], sizeField: Bool = true,
                                              sourceLocation: SourceLocation = #_sourceLocation) {
    let bytes = value.encoded()
    #expect(T.fixedSize == size, "\(T.cName): fixedSize \(T.fixedSize), header says \(size)", sourceLocation: sourceLocation)
    #expect(bytes.count == size, "\(T.cName) encodes to \(bytes.count) bytes", sourceLocation: sourceLocation)
    var all = fields
    if sizeField { all.insert(Field("size", 0, 4, UInt64(size)), at: 0) }
    var next = 0
    for field in all.sorted(by: { $0.offset < $1.offset }) {
        #expect(field.offset == next, "\(T.cName).\(field.name) at \(field.offset), expected the previous field to end there (\(next))", sourceLocation: sourceLocation)
        next = field.offset + field.width
        guard next <= bytes.count else { continue }
        let read = (0..<field.width).reduce(UInt64(0)) { $0 | UInt64(bytes[field.offset + $1]) << (8 * $1) }
        #expect(read == field.value, "\(T.cName).\(field.name) at \(field.offset): 0x\(String(read, radix: 16)), expected 0x\(String(field.value, radix: 16))", sourceLocation: sourceLocation)
    }
    #expect(next == size, "\(T.cName): fields end at \(next), sizeof is \(size)", sourceLocation: sourceLocation)
}

@Suite struct IOMMUFDLayoutTests {
    @Test func objectsAndIOAS() {
        expectLayout(IOMMUFDDestroy(id: 0x1234_5678), size: 8, [Field("id", 4, 4, 0x1234_5678)])
        expectLayout(IOMMUFDIOASChangeProcess(), size: 8, [Field("__reserved", 4, 4, 0)])
        expectLayout(IOMMUFDIOASAlloc(outIOASID: 0xa1), size: 12, [Field("flags", 4, 4, 0), Field("out_ioas_id", 8, 4, 0xa1)])
        expectLayout(IOMMUFDIOVARange(start: 0x1111_0000, last: 0x2222_ffff), size: 16,
                     [Field("start", 0, 8, 0x1111_0000), Field("last", 8, 8, 0x2222_ffff)], sizeField: false)
        expectLayout(IOMMUFDIOASIOVARanges(ioasID: 3, numIOVAs: 4, allowedIOVAs: 0x7f00_0000_1000, outIOVAAlignment: 0x1000), size: 32, [
            Field("ioas_id", 4, 4, 3), Field("num_iovas", 8, 4, 4), Field("__reserved", 12, 4, 0),
            Field("allowed_iovas", 16, 8, 0x7f00_0000_1000), Field("out_iova_alignment", 24, 8, 0x1000),
        ])
        expectLayout(IOMMUFDIOASAllowIOVAs(ioasID: 5, numIOVAs: 6, allowedIOVAs: 0x7f00_0000_2000), size: 24, [
            Field("ioas_id", 4, 4, 5), Field("num_iovas", 8, 4, 6), Field("__reserved", 12, 4, 0),
            Field("allowed_iovas", 16, 8, 0x7f00_0000_2000),
        ])
    }

    @Test func mapCopyUnmap() {
        expectLayout(IOMMUFDIOASMap(flags: [.fixedIOVA, .readable], ioasID: 7, userVA: 0x7f11_0000_0000, length: 0x20_0000, iova: 0x8000_0000), size: 40, [
            Field("flags", 4, 4, 0b101), Field("ioas_id", 8, 4, 7), Field("__reserved", 12, 4, 0),
            Field("user_va", 16, 8, 0x7f11_0000_0000), Field("length", 24, 8, 0x20_0000), Field("iova", 32, 8, 0x8000_0000),
        ])
        expectLayout(IOMMUFDIOASMapFile(flags: [.writeable], ioasID: 8, fd: -2, fileOffset: 0x3000, length: 0x4000, iova: 0x5000), size: 40, [
            Field("flags", 4, 4, 0b010), Field("ioas_id", 8, 4, 8), Field("fd", 12, 4, 0xffff_fffe),
            Field("start", 16, 8, 0x3000), Field("length", 24, 8, 0x4000), Field("iova", 32, 8, 0x5000),
        ])
        expectLayout(IOMMUFDIOASCopy(flags: [.fixedIOVA, .readable, .writeable], destinationIOASID: 9, sourceIOASID: 10,
                                     length: 0x6000, destinationIOVA: 0x7000, sourceIOVA: 0x8000), size: 40, [
            Field("flags", 4, 4, 0b111), Field("dst_ioas_id", 8, 4, 9), Field("src_ioas_id", 12, 4, 10),
            Field("length", 16, 8, 0x6000), Field("dst_iova", 24, 8, 0x7000), Field("src_iova", 32, 8, 0x8000),
        ])
        expectLayout(IOMMUFDIOASUnmap(ioasID: 11, iova: 0x9000, length: 0xa000), size: 24, [
            Field("ioas_id", 4, 4, 11), Field("iova", 8, 8, 0x9000), Field("length", 16, 8, 0xa000),
        ])
    }

    @Test func options() {
        expectLayout(IOMMUFDOption(option: .hugePages, operation: .get, objectID: 12, value: 0x1_0000_0001), size: 24, [
            Field("option_id", 4, 4, 1), Field("op", 8, 2, 1), Field("__reserved", 10, 2, 0),
            Field("object_id", 12, 4, 12), Field("val64", 16, 8, 0x1_0000_0001),
        ])
        expectLayout(IOMMUFDVFIOIOAS(ioasID: 13, operation: .clear), size: 12, [
            Field("ioas_id", 4, 4, 13), Field("op", 8, 2, 2), Field("__reserved", 10, 2, 0),
        ])
    }

    @Test func hwptAllocAndData() {
        expectLayout(IOMMUFDHWPTAlloc(flags: [.nestParent, .pasid], deviceID: 14, parentID: 15, outHWPTID: 16,
                                      dataType: .armSMMUv3, dataLength: 16, dataUptr: 0x7f22_0000_0000, faultID: 17), size: 48, [
            Field("flags", 4, 4, 0b1101), Field("dev_id", 8, 4, 14), Field("pt_id", 12, 4, 15), Field("out_hwpt_id", 16, 4, 16),
            Field("__reserved", 20, 4, 0), Field("data_type", 24, 4, 2), Field("data_len", 28, 4, 16),
            Field("data_uptr", 32, 8, 0x7f22_0000_0000), Field("fault_id", 40, 4, 17), Field("__reserved2", 44, 4, 0),
        ])
        expectLayout(IOMMUFDHWPTVTDS1(flags: [.supervisorRequest, .writeProtect], pageTableAddress: 0x1234_5000, addressWidth: 48), size: 24, [
            Field("flags", 0, 8, 0b101), Field("pgtbl_addr", 8, 8, 0x1234_5000), Field("addr_width", 16, 4, 48), Field("__reserved", 20, 4, 0),
        ], sizeField: false)
        expectLayout(IOMMUFDHWPTARMSMMUv3(ste: (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)), size: 16, [
            Field("ste[0]", 0, 8, 0x0123_4567_89ab_cdef), Field("ste[1]", 8, 8, 0xfedc_ba98_7654_3210),
        ], sizeField: false)
    }

    @Test func hardwareInfo() {
        expectLayout(IOMMUFDHWInfo(deviceID: 18, dataLength: 40, dataUptr: 0x7f33_0000_0000, outDataType: .intelVTD, outCapabilities: .dirtyTracking), size: 40, [
            Field("flags", 4, 4, 0), Field("dev_id", 8, 4, 18), Field("data_len", 12, 4, 40),
            Field("data_uptr", 16, 8, 0x7f33_0000_0000), Field("out_data_type", 24, 4, 1), Field("__reserved", 28, 4, 0),
            Field("out_capabilities", 32, 8, 1),
        ])
        expectLayout(IOMMUFDHWInfoVTD(flags: .errata772415SPR17, capabilityRegister: 0xd2_008c_40660462, extendedCapabilityRegister: 0xf0_50da), size: 24, [
            Field("flags", 0, 4, 1), Field("__reserved", 4, 4, 0), Field("cap_reg", 8, 8, 0xd2_008c_40660462), Field("ecap_reg", 16, 8, 0xf0_50da),
        ], sizeField: false)
        expectLayout(IOMMUFDHWInfoARMSMMUv3(flags: 0, idr: [10, 11, 12, 13, 14, 15], iidr: 16, aidr: 17), size: 40, [
            Field("flags", 0, 4, 0), Field("__reserved", 4, 4, 0),
            Field("idr[0]", 8, 4, 10), Field("idr[1]", 12, 4, 11), Field("idr[2]", 16, 4, 12),
            Field("idr[3]", 20, 4, 13), Field("idr[4]", 24, 4, 14), Field("idr[5]", 28, 4, 15),
            Field("iidr", 32, 4, 16), Field("aidr", 36, 4, 17),
        ], sizeField: false)
    }

    @Test func dirtyTracking() {
        expectLayout(IOMMUFDHWPTSetDirtyTracking(flags: .enable, hwptID: 19), size: 16, [
            Field("flags", 4, 4, 1), Field("hwpt_id", 8, 4, 19), Field("__reserved", 12, 4, 0),
        ])
        expectLayout(IOMMUFDHWPTGetDirtyBitmap(hwptID: 20, flags: .noClear, iova: 0x10_0000, length: 0x40_0000, pageSize: 0x1000, data: 0x7f44_0000_0000), size: 48, [
            Field("hwpt_id", 4, 4, 20), Field("flags", 8, 4, 1), Field("__reserved", 12, 4, 0), Field("iova", 16, 8, 0x10_0000),
            Field("length", 24, 8, 0x40_0000), Field("page_size", 32, 8, 0x1000), Field("data", 40, 8, 0x7f44_0000_0000),
        ])
    }

    @Test func invalidation() {
        expectLayout(IOMMUFDHWPTInvalidate(hwptID: 21, dataUptr: 0x7f55_0000_0000, dataType: .viommuARMSMMUv3, entryLength: 16, entryCount: 3), size: 32, [
            Field("hwpt_id", 4, 4, 21), Field("data_uptr", 8, 8, 0x7f55_0000_0000), Field("data_type", 16, 4, 1),
            Field("entry_len", 20, 4, 16), Field("entry_num", 24, 4, 3), Field("__reserved", 28, 4, 0),
        ])
        expectLayout(IOMMUFDVTDS1Invalidate(address: 0x5000, pageCount: 9, flags: .leaf), size: 24, [
            Field("addr", 0, 8, 0x5000), Field("npages", 8, 8, 9), Field("flags", 16, 4, 1), Field("__reserved", 20, 4, 0),
        ], sizeField: false)
        expectLayout(IOMMUFDARMSMMUv3Invalidate(command: (0x12, 0x34)), size: 16, [
            Field("cmd[0]", 0, 8, 0x12), Field("cmd[1]", 8, 8, 0x34),
        ], sizeField: false)
    }

    @Test func faults() {
        expectLayout(IOMMUFDFaultAlloc(outFaultID: 22, outFaultFD: 23), size: 16, [
            Field("flags", 4, 4, 0), Field("out_fault_id", 8, 4, 22), Field("out_fault_fd", 12, 4, 23),
        ])
        expectLayout(IOMMUFDPageFault(flags: [.pasidValid, .lastPage], deviceID: 24, pasid: 25, groupID: 26,
                                      permissions: [.read, .privileged], address: 0xdead_b000, length: 0x1000, cookie: 27), size: 40, [
            Field("flags", 0, 4, 3), Field("dev_id", 4, 4, 24), Field("pasid", 8, 4, 25), Field("grpid", 12, 4, 26),
            Field("perm", 16, 4, 0b1001), Field("__reserved", 20, 4, 0), Field("addr", 24, 8, 0xdead_b000),
            Field("length", 32, 4, 0x1000), Field("cookie", 36, 4, 27),
        ], sizeField: false)
        expectLayout(IOMMUFDPageResponse(cookie: 28, code: .invalid), size: 8, [
            Field("cookie", 0, 4, 28), Field("code", 4, 4, 1),
        ], sizeField: false)
    }

    @Test func viommu() {
        expectLayout(IOMMUFDViommuAlloc(type: .armSMMUv3, deviceID: 29, hwptID: 30, outViommuID: 31), size: 24, [
            Field("flags", 4, 4, 0), Field("type", 8, 4, 1), Field("dev_id", 12, 4, 29),
            Field("hwpt_id", 16, 4, 30), Field("out_viommu_id", 20, 4, 31),
        ])
        expectLayout(IOMMUFDVDeviceAlloc(viommuID: 32, deviceID: 33, outVDeviceID: 34, virtualID: 0x1_0000_0023), size: 24, [
            Field("viommu_id", 4, 4, 32), Field("dev_id", 8, 4, 33), Field("out_vdevice_id", 12, 4, 34), Field("virt_id", 16, 8, 0x1_0000_0023),
        ])
    }

    @Test func enumAndFlagValues() {
        #expect(IOMMUFDIOASMapFlags.fixedIOVA.rawValue == 1 && IOMMUFDIOASMapFlags.writeable.rawValue == 2 && IOMMUFDIOASMapFlags.readable.rawValue == 4)
        #expect(IOMMUFDHWPTAllocFlags.nestParent.rawValue == 1 && IOMMUFDHWPTAllocFlags.dirtyTracking.rawValue == 2)
        #expect(IOMMUFDHWPTAllocFlags.faultIDValid.rawValue == 4 && IOMMUFDHWPTAllocFlags.pasid.rawValue == 8)
        #expect(IOMMUFDHWPTDataType.allCases.map(\.rawValue) == [0, 1, 2])
        #expect(IOMMUFDHWInfoType.allCases.map(\.rawValue) == [0, 1, 2])
        #expect(IOMMUFDViommuType.allCases.map(\.rawValue) == [0, 1])
        #expect(IOMMUFDInvalidateDataType.allCases.map(\.rawValue) == [0, 1])
        #expect(IOMMUFDOptionID.allCases.map(\.rawValue) == [0, 1])
        #expect(IOMMUFDOptionOperation.allCases.map(\.rawValue) == [0, 1])
        #expect(IOMMUFDVFIOIOASOperation.allCases.map(\.rawValue) == [0, 1, 2])
        #expect(IOMMUFDPageResponseCode.allCases.map(\.rawValue) == [0, 1])
        #expect(IOMMUFDHWCapabilities.dirtyTracking.rawValue == 1)
    }
}
