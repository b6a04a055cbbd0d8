import CVFIO
import Testing
@testable import VFIO
import TestSupport

@Suite struct DeviceInfoTests {
    static let unknownCap = InfoCapability(id: 0x7ffe, version: 3, body: Array(1...16))

    static var sample: DeviceInfo {
        DeviceInfo(
            flags: [.reset, .pci], numRegions: 10, numIRQs: 5,
            capabilities: [
                .pciAtomicCompletion([.comp32, .comp64, .comp128]),
                .zpciBase(ZPCIBase(startDMA: 0x1_0000, endDMA: 0xffff_ffff_ffff, pchid: 0x1234, vfn: 7, fmbLength: 64, pft: 5, gid: 9, fh: 0xdead_beef)),
                .zpciGroup(ZPCIGroup(dasm: 0xffff_0000, msiAddress: 0xfee0_0000, flags: ZPCIGroup.flagRefresh, mui: 4000, noi: 2048, maxstbl: 128, pciVersion: 3, imaxstbl: 512)),
                .zpciUtility(Array("UTILSTR".utf8)),
                .zpciFunctionPath([0x01, 0x02, 0x03]),
                .unknown(unknownCap),
            ])
    }

    @Test func flagsMatchHeader() {
        #expect(DeviceInfoFlags.reset.rawValue == UInt32(VFIO_DEVICE_FLAGS_RESET))
        #expect(DeviceInfoFlags.pci.rawValue == UInt32(VFIO_DEVICE_FLAGS_PCI))
        #expect(DeviceInfoFlags.platform.rawValue == UInt32(VFIO_DEVICE_FLAGS_PLATFORM))
        #expect(DeviceInfoFlags.amba.rawValue == UInt32(VFIO_DEVICE_FLAGS_AMBA))
        #expect(DeviceInfoFlags.ccw.rawValue == UInt32(VFIO_DEVICE_FLAGS_CCW))
        #expect(DeviceInfoFlags.ap.rawValue == UInt32(VFIO_DEVICE_FLAGS_AP))
        #expect(DeviceInfoFlags.fslMC.rawValue == UInt32(VFIO_DEVICE_FLAGS_FSL_MC))
        #expect(DeviceInfoFlags.caps.rawValue == UInt32(VFIO_DEVICE_FLAGS_CAPS))
        #expect(DeviceInfoFlags.cdx.rawValue == 1 << 8)  // not in the 6.1 header
        #expect(DeviceInfoCapability.zpciBaseID == UInt16(VFIO_DEVICE_INFO_CAP_ZPCI_BASE))
        #expect(DeviceInfoCapability.zpciGroupID == UInt16(VFIO_DEVICE_INFO_CAP_ZPCI_GROUP))
        #expect(DeviceInfoCapability.zpciUtilityID == UInt16(VFIO_DEVICE_INFO_CAP_ZPCI_UTIL))
        #expect(DeviceInfoCapability.zpciFunctionPathID == UInt16(VFIO_DEVICE_INFO_CAP_ZPCI_PFIP))
    }

    @Test func deviceAPIStrings() {
        #expect(DeviceAPI.pci.rawValue == VFIO_DEVICE_API_PCI_STRING)
        #expect(DeviceAPI.platform.rawValue == VFIO_DEVICE_API_PLATFORM_STRING)
        #expect(DeviceAPI.amba.rawValue == VFIO_DEVICE_API_AMBA_STRING)
        #expect(DeviceAPI.ccw.rawValue == VFIO_DEVICE_API_CCW_STRING)
        #expect(DeviceAPI.ap.rawValue == VFIO_DEVICE_API_AP_STRING)
        #expect(DeviceAPI(rawValue: "vfio-pci")?.deviceFlag == .pci)
        #expect(DeviceAPI.ap.cName == "VFIO_DEVICE_API_AP_STRING")
    }

    @Test func roundTripWithoutCapabilities() throws {
        let info = DeviceInfo(flags: [.reset, .platform], numRegions: 3, numIRQs: 2)
        try expectRoundTrip(info)
        let bytes = info.encoded()
        #expect(bytes.count == 24)
        #expect(le32(bytes, 16) == 0)  // cap_offset
    }

    @Test func roundTripWithCapabilityChain() throws {
        let info = Self.sample
        try expectRoundTrip(info)
        let bytes = info.encoded()
        #expect(le32(bytes, 0) == UInt32(bytes.count))
        #expect(le32(bytes, 4) & UInt32(VFIO_DEVICE_FLAGS_CAPS) != 0)
        #expect(le32(bytes, 16) == 24)
        // The decoded value keeps the chain in order, with the unknown capability intact
        // (its body is already a multiple of 8, so it comes back byte for byte).
        let decoded = try DeviceInfo(decoding: bytes)
        #expect(decoded.capabilities.last == .unknown(Self.unknownCap))
        #expect(decoded.flags.contains(.caps))
        #expect(!decoded.capabilitiesOmitted)
    }

    @Test func layoutAgainstSixOneHeader() throws {
        // 6.1's struct ends at cap_offset (20 bytes); 6.14 adds `pad`, making it 24.
        #expect(MemoryLayout<vfio_device_info>.size == DeviceInfo.unpaddedSize)
        let bytes = Self.sample.encoded()
        let c = asCStruct(vfio_device_info.self, bytes)
        #expect(c.argsz == UInt32(bytes.count))
        #expect(c.flags == UInt32(VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_CAPS))
        #expect(c.num_regions == 10)
        #expect(c.num_irqs == 5)
        #expect(c.cap_offset == 24)
        let header = asCStruct(vfio_info_cap_header.self, Array(bytes[24...]))
        #expect(header.id == 5 && header.version == 1 && header.next == 40)
    }

    @Test func atomicCompletionLayout() throws {
        // struct vfio_device_info_cap_pci_atomic_comp is 16 bytes: header, flags, reserved.
        let raw = DeviceInfoCapability.pciAtomicCompletion([.comp64]).infoCapability
        #expect(raw.id == 5 && raw.version == 1 && raw.body == [2, 0, 0, 0, 0, 0, 0, 0])
        #expect(PCIAtomicCompletion.comp32.rawValue == 1 && PCIAtomicCompletion.comp128.rawValue == 4)
    }

    @Test func zpciVersionOneFieldsAndSizes() throws {
        let base = ZPCIBase(startDMA: 1, endDMA: 2, pchid: 3, vfn: 4, fmbLength: 5, pft: 6, gid: 7)
        let group = ZPCIGroup(dasm: 1, msiAddress: 2, flags: 0, mui: 3, noi: 4, maxstbl: 5, pciVersion: 6)
        #expect(base.version == 1 && base.body.count == 24)
        #expect(group.version == 1 && group.body.count == 31)
        let info = DeviceInfo(flags: [.pci], numRegions: 9, numIRQs: 5, capabilities: [.zpciBase(base), .zpciGroup(group)])
        try expectRoundTrip(info)
        // Version 2 bodies: base adds fh at 24, group adds reserved + imaxstbl at 31..34.
        var v2 = base
        v2.fh = 0x0102_0304
        #expect(v2.version == 2 && v2.body.count == 28 && le32(v2.body, 24) == 0x0102_0304)
        var g2 = group
        g2.imaxstbl = 0x0506
        #expect(g2.version == 2 && g2.body.count == 34 && g2.body[32] == 6 && g2.body[33] == 5)
    }

    @Test func unknownVersionOfKnownIDStaysRaw() throws {
        let raw = InfoCapability(id: DeviceInfoCapability.pciAtomicCompletionID, version: 2, body: [1, 0, 0, 0, 0, 0, 0, 0])
        #expect(try DeviceInfoCapability(raw) == .unknown(raw))
    }

    @Test func omittedCapabilitiesDecodeEmpty() throws {
        // The kernel's answer to a too-small buffer: CAPS set, cap_offset 0, argsz raised.
        var writer = ByteWriter()
        writer.u32(200)
        writer.u32(DeviceInfoFlags([.pci, .caps]).rawValue)
        writer.u32(9)
        writer.u32(5)
        writer.u32(0)
        writer.u32(0)
        let info = try DeviceInfo(decoding: writer.bytes)
        #expect(info.capabilities.isEmpty)
        #expect(info.capabilitiesOmitted)
        #expect(info.numRegions == 9)
    }

    @Test func legacyChainAtOffsetTwenty() throws {
        // Kernels before `pad` put the chain at offset 20.
        var writer = ByteWriter()
        writer.u32(20 + 16)
        writer.u32(DeviceInfoFlags([.pci, .caps]).rawValue)
        writer.u32(9)
        writer.u32(5)
        writer.u32(20)
        writer.append(contentsOf: CapabilityChain.build([InfoCapability(id: 5, version: 1, body: [3, 0, 0, 0, 0, 0, 0, 0])], baseOffset: 16))
        let info = try DeviceInfo(decoding: writer.bytes)
        #expect(info.capabilities == [.pciAtomicCompletion([.comp32, .comp64])])
    }

    @Test func queryHasCapacityAsArgsz() {
        let query = DeviceInfo.query(capacity: 512)
        #expect(query.count == 512)
        #expect(le32(query, 0) == 512)
        #expect(query[4...].allSatisfy { $0 == 0 })
        #expect(DeviceInfo.query(capacity: 4).count == DeviceInfo.fixedSize)
    }

    @Test func rejections() throws {
        let good = Self.sample.encoded()
        // argsz below the struct.
        var small = good
        small[0] = 16; small[1] = 0; small[2] = 0; small[3] = 0
        #expect(throws: VFIOError.malformed("vfio_device_info", "argsz 16 is smaller than the 24-byte structure")) {
            _ = try DeviceInfo(decoding: small)
        }
        // cap_offset without the CAPS flag.
        var noCaps = good
        noCaps[4] = UInt8(DeviceInfoFlags.pci.rawValue)
        #expect(throws: VFIOError.malformed("vfio_device_info", "cap_offset is 24 but the CAPS flag is clear")) {
            _ = try DeviceInfo(decoding: noCaps)
        }
        // cap_offset into the fixed part.
        var inside = good
        inside[16] = 8
        #expect(throws: VFIOError.self) { _ = try DeviceInfo(decoding: inside) }
        // A chain cut short by the buffer.
        #expect(throws: VFIOError.self) { _ = try DeviceInfo(decoding: Array(good.prefix(30))) }
        // A zPCI util string longer than its capability.
        var badUtil = DeviceInfoCapability.zpciUtility([1, 2, 3]).infoCapability
        badUtil.body[0] = 200
        #expect(throws: VFIOError.malformed("vfio_device_info_cap_zpci_util", "size 200 runs past the 3 byte(s) after it")) {
            _ = try DeviceInfoCapability(badUtil)
        }
        // A version-2 zPCI base without room for fh.
        let shortBase = InfoCapability(id: 1, version: 2, body: Array(repeating: 0, count: 24))
        #expect(throws: VFIOError.self) { _ = try DeviceInfoCapability(shortBase) }
        // Atomic completion with a 4-byte body.
        #expect(throws: VFIOError.self) { _ = try DeviceInfoCapability(InfoCapability(id: 5, version: 1, body: [1, 0, 0, 0])) }
    }
}
