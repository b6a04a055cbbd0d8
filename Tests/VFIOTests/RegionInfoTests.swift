import CVFIO
import Testing
@testable import VFIO
import TestSupport

@Suite struct RegionInfoTests {
    static let unknownCap = InfoCapability(id: 99, version: 1, body: [9, 8, 7, 6, 5, 4, 3, 2])

    static var sample: RegionInfo {
        RegionInfo(
            flags: [.read, .write, .mmap], index: 2, size: 0x100_0000, offset: 0x20_0000_0000,
            capabilities: [
                .sparseMmap([SparseMmapArea(offset: 0, size: 0x2000), SparseMmapArea(offset: 0x3000, size: 0xf_d000)]),
                .msixMappable,
                .type(.intelIGDOpRegion),
                .nvlink2SSATarget(0x0004_0000_0000_0000),
                .nvlink2LinkSpeed(9),
                .unknown(unknownCap),
            ])
    }

    @Test func constantsMatchHeader() {
        #expect(RegionInfoFlags.read.rawValue == UInt32(VFIO_REGION_INFO_FLAG_READ))
        #expect(RegionInfoFlags.write.rawValue == UInt32(VFIO_REGION_INFO_FLAG_WRITE))
        #expect(RegionInfoFlags.mmap.rawValue == UInt32(VFIO_REGION_INFO_FLAG_MMAP))
        #expect(RegionInfoFlags.caps.rawValue == UInt32(VFIO_REGION_INFO_FLAG_CAPS))
        #expect(RegionInfoCapability.sparseMmapID == UInt16(VFIO_REGION_INFO_CAP_SPARSE_MMAP))
        #expect(RegionInfoCapability.typeID == UInt16(VFIO_REGION_INFO_CAP_TYPE))
        #expect(RegionInfoCapability.msixMappableID == UInt16(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE))
        #expect(RegionInfoCapability.nvlink2SSATargetID == UInt16(VFIO_REGION_INFO_CAP_NVLINK2_SSATGT))
        #expect(RegionInfoCapability.nvlink2LinkSpeedID == UInt16(VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD))
        #expect(RegionType.pciVendorTypeBit == UInt32(bitPattern: Int32(VFIO_REGION_TYPE_PCI_VENDOR_TYPE)))
        #expect(RegionType.pciVendorMask == UInt32(VFIO_REGION_TYPE_PCI_VENDOR_MASK))
        #expect(RegionType.gfxType == UInt32(VFIO_REGION_TYPE_GFX))
        #expect(RegionType.ccwType == UInt32(VFIO_REGION_TYPE_CCW))
        #expect(RegionType.migrationDeprecatedType == 3)
        #expect(RegionType.intelIGDOpRegion.subtype == UInt32(VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION))
        #expect(RegionType.intelIGDHostConfig.subtype == UInt32(VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG))
        #expect(RegionType.intelIGDLPCConfig.subtype == UInt32(VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG))
        #expect(RegionType.nvidiaNVLink2RAM.subtype == UInt32(VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM))
        #expect(RegionType.ibmNVLink2ATSD.subtype == UInt32(VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD))
        #expect(RegionType.gfxEDID.subtype == UInt32(VFIO_REGION_SUBTYPE_GFX_EDID))
        #expect(RegionType.ccwAsyncCommand.subtype == UInt32(VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD))
        #expect(RegionType.ccwSCHIB.subtype == UInt32(VFIO_REGION_SUBTYPE_CCW_SCHIB))
        #expect(RegionType.ccwCRW.subtype == UInt32(VFIO_REGION_SUBTYPE_CCW_CRW))
    }

    @Test func regionTypeNames() {
        #expect(RegionType.intelIGDOpRegion.type == 0x8000_8086)
        #expect(RegionType.intelIGDOpRegion.pciVendor == 0x8086)
        #expect(RegionType.gfxEDID.pciVendor == nil)
        #expect(RegionType.gfxEDID.description == "GFX_EDID")
        #expect(RegionType.migrationDeprecated.cName == "VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED")
        #expect(RegionType(type: RegionType.pciVendorType(0x1af4), subtype: 3).description == "pci-vendor 0x1af4:subtype 3")
        #expect(RegionType(type: 7, subtype: 1).description == "type 7:subtype 1")
        #expect(RegionType(type: 7, subtype: 1).cName == nil)
        // Subtype numbers repeat across types; the pair is what is unique.
        #expect(Set(RegionType.known.map(\.0)).count == RegionType.known.count)
    }

    @Test func roundTripWithoutCapabilities() throws {
        let info = RegionInfo(flags: [.read, .write], index: 7, size: 256, offset: 0x70_0000_0000)
        try expectRoundTrip(info)
        #expect(info.encoded().count == 32)
    }

    @Test func roundTripWithCapabilityChain() throws {
        let info = Self.sample
        try expectRoundTrip(info)
        let decoded = try RegionInfo(decoding: info.encoded())
        #expect(decoded.regionType == .intelIGDOpRegion)
        #expect(decoded.sparseMmapAreas?.count == 2)
        #expect(decoded.capabilities.last == .unknown(Self.unknownCap))
    }

    @Test func layoutAgainstHeader() throws {
        #expect(MemoryLayout<vfio_region_info>.size == RegionInfo.fixedSize)
        #expect(MemoryLayout<vfio_region_info_cap_sparse_mmap>.size == 16)
        #expect(MemoryLayout<vfio_region_sparse_mmap_area>.size == SparseMmapArea.size)
        #expect(MemoryLayout<vfio_region_info_cap_type>.size == 16)
        #expect(MemoryLayout<vfio_region_info_cap_nvlink2_ssatgt>.size == 16)
        #expect(MemoryLayout<vfio_region_info_cap_nvlink2_lnkspd>.size == 16)

        let bytes = Self.sample.encoded()
        let c = asCStruct(vfio_region_info.self, bytes)
        #expect(c.argsz == UInt32(bytes.count))
        #expect(c.flags == UInt32(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS))
        #expect(c.index == 2)
        #expect(c.cap_offset == 32)
        #expect(c.size == 0x100_0000)
        #expect(c.offset == 0x20_0000_0000)

        // Walk the chain with the C structs.
        var at = Int(c.cap_offset)
        let sparse = asCStruct(vfio_region_info_cap_sparse_mmap.self, Array(bytes[at...]))
        #expect(sparse.header.id == 1 && sparse.header.version == 1 && sparse.nr_areas == 2)
        let area1 = asCStruct(vfio_region_sparse_mmap_area.self, Array(bytes[(at + 16 + 16)...]))
        #expect(area1.offset == 0x3000 && area1.size == 0xf_d000)
        at = Int(sparse.header.next)
        #expect(at == 32 + 16 + 32)
        let msix = asCStruct(vfio_info_cap_header.self, Array(bytes[at...]))
        #expect(msix.id == 3 && msix.next == UInt32(at + 8))
        at = Int(msix.next)
        let type = asCStruct(vfio_region_info_cap_type.self, Array(bytes[at...]))
        #expect(type.header.id == 2 && type.type == 0x8000_8086 && type.subtype == 1)
        at = Int(type.header.next)
        let ssatgt = asCStruct(vfio_region_info_cap_nvlink2_ssatgt.self, Array(bytes[at...]))
        #expect(ssatgt.header.id == 4 && ssatgt.tgt == 0x0004_0000_0000_0000)
        at = Int(ssatgt.header.next)
        let lnkspd = asCStruct(vfio_region_info_cap_nvlink2_lnkspd.self, Array(bytes[at...]))
        #expect(lnkspd.header.id == 5 && lnkspd.link_speed == 9)
        at = Int(lnkspd.header.next)
        let last = asCStruct(vfio_info_cap_header.self, Array(bytes[at...]))
        #expect(last.id == 99 && last.next == 0 && at + 16 == bytes.count)
    }

    @Test func queryHasIndexAndCapacity() throws {
        let query = RegionInfo.query(index: 7, capacity: 128)
        #expect(query.count == 128)
        #expect(le32(query, 0) == 128)
        #expect(le32(query, 8) == 7)
        #expect(query[4..<8].allSatisfy { $0 == 0 } && query[12...].allSatisfy { $0 == 0 })
        let c = asCStruct(vfio_region_info.self, query)
        #expect(c.index == 7 && c.argsz == 128)
    }

    @Test func replyThatAskedForMoreRoom() throws {
        // CAPS set, cap_offset 0, argsz raised beyond the 32-byte buffer we offered.
        var writer = ByteWriter()
        writer.u32(0x90)
        writer.u32(RegionInfoFlags([.read, .mmap, .caps]).rawValue)
        writer.u32(0)
        writer.u32(0)
        writer.u64(0x4000)
        writer.u64(0)
        let info = try RegionInfo(decoding: writer.bytes)
        #expect(info.capabilities.isEmpty && info.capabilitiesOmitted)
        #expect(info.size == 0x4000)
        // Re-encoding keeps the flags as reported.
        #expect(try RegionInfo(decoding: info.encoded()) == info)
    }

    @Test func argszRetryGetsTheChain() throws {
        let full = Self.sample.encoded()
        let reply = try ArgszRetry.run("VFIO_DEVICE_GET_REGION_INFO", request: RegionInfo.query(index: 2, capacity: 32)) { (buffer: inout [UInt8]) throws(VFIOError) in
            if buffer.count < full.count {
                // What the kernel does: CAPS flag, cap_offset 0, argsz = needed size.
                var short = Array(full.prefix(32))
                short.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(full.count).littleEndian, toByteOffset: 0, as: UInt32.self) }
                short.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self) }
                buffer = short
            } else {
                buffer = full
            }
        }
        #expect(try RegionInfo(decoding: reply) == Self.sample)
    }

    @Test func rejections() throws {
        let good = Self.sample.encoded()
        var small = good
        small[0] = 24; small[1] = 0; small[2] = 0; small[3] = 0
        #expect(throws: VFIOError.malformed("vfio_region_info", "argsz 24 is smaller than the 32-byte structure")) {
            _ = try RegionInfo(decoding: small)
        }
        // A chain that loops back to the first capability.
        var loop = good
        let lastOffset = 32 + 16 + 32 + 8 + 16 + 16 + 16
        loop.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(32).littleEndian, toByteOffset: lastOffset + 4, as: UInt32.self) }
        #expect(throws: VFIOError.self) { _ = try RegionInfo(decoding: loop) }
        // Sparse mmap whose nr_areas does not fit in the capability.
        let tooMany = InfoCapability(id: 1, version: 1, body: [3, 0, 0, 0, 0, 0, 0, 0] + Array(repeating: 0, count: 32))
        #expect(throws: VFIOError.malformed("vfio_region_info_cap_sparse_mmap", "nr_areas 3 needs 48 bytes, the capability has 32")) {
            _ = try RegionInfoCapability(tooMany)
        }
        let hugeCount = InfoCapability(id: 1, version: 1, body: [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        #expect(throws: VFIOError.self) { _ = try RegionInfoCapability(hugeCount) }
        // Type capability with half a body.
        #expect(throws: VFIOError.self) { _ = try RegionInfoCapability(InfoCapability(id: 2, version: 1, body: [1, 0, 0, 0])) }
        // A chain cut by the buffer.
        #expect(throws: VFIOError.self) { _ = try RegionInfo(decoding: Array(good.prefix(40))) }
        // Other versions of known ids stay raw rather than being misread.
        let v2 = InfoCapability(id: 2, version: 2, body: [1, 0, 0, 0])
        #expect(try RegionInfoCapability(v2) == .unknown(v2))
    }
}

@Suite struct RegionEDIDTests {
    @Test func roundTripAndLayout() throws {
        let edid = GFXEDIDRegion(edidOffset: 0x1000, edidMaxSize: 0x400, edidSize: 128, maxXRes: 3840, maxYRes: 2160, linkState: GFXEDIDRegion.linkUp)
        try expectRoundTrip(edid)
        #expect(MemoryLayout<vfio_region_gfx_edid>.size == GFXEDIDRegion.fixedSize)
        let c = asCStruct(vfio_region_gfx_edid.self, edid.encoded())
        #expect(c.edid_offset == 0x1000 && c.edid_max_size == 0x400 && c.edid_size == 128)
        #expect(c.max_xres == 3840 && c.max_yres == 2160)
        #expect(c.link_state == UInt32(VFIO_DEVICE_GFX_LINK_STATE_UP))
        #expect(GFXEDIDRegion.linkDown == UInt32(VFIO_DEVICE_GFX_LINK_STATE_DOWN))
        #expect(MemoryLayout<vfio_region_gfx_edid>.offset(of: \.link_state) == GFXEDIDRegion.linkStateOffset)
        #expect(MemoryLayout<vfio_region_gfx_edid>.offset(of: \.edid_size) == GFXEDIDRegion.edidSizeOffset)
        #expect(MemoryLayout<vfio_region_gfx_edid>.offset(of: \.max_yres) == GFXEDIDRegion.maxYResOffset)
        #expect(edid.isLinkUp)
    }
}

@Suite struct RegionIndexTests {
    @Test func pciAndS390IndicesMatchHeader() {
        #expect(PCIRegionIndex.bar0.rawValue == UInt32(VFIO_PCI_BAR0_REGION_INDEX))
        #expect(PCIRegionIndex.bar5.rawValue == UInt32(VFIO_PCI_BAR5_REGION_INDEX))
        #expect(PCIRegionIndex.rom.rawValue == UInt32(VFIO_PCI_ROM_REGION_INDEX))
        #expect(PCIRegionIndex.config.rawValue == UInt32(VFIO_PCI_CONFIG_REGION_INDEX))
        #expect(PCIRegionIndex.vga.rawValue == UInt32(VFIO_PCI_VGA_REGION_INDEX))
        #expect(PCIRegionIndex.count == UInt32(VFIO_PCI_NUM_REGIONS))
        #expect(PCIRegionIndex.bar(3) == .bar3 && PCIRegionIndex.bar(6) == nil)
        #expect(PCIRegionIndex.bar2.cName == "VFIO_PCI_BAR2_REGION_INDEX")
        #expect(PCIIRQIndex.allCases.map(\.rawValue) == [0, 1, 2, 3, 4])
        #expect(PCIIRQIndex.msix.rawValue == UInt32(VFIO_PCI_MSIX_IRQ_INDEX))
        #expect(PCIIRQIndex.req.rawValue == UInt32(VFIO_PCI_REQ_IRQ_INDEX))
        #expect(PCIIRQIndex.count == UInt32(VFIO_PCI_NUM_IRQS))
        #expect(CCWRegionIndex.count == UInt32(VFIO_CCW_NUM_REGIONS))
        #expect(CCWIRQIndex.req.rawValue == UInt32(VFIO_CCW_REQ_IRQ_INDEX))
        #expect(CCWIRQIndex.count == UInt32(VFIO_CCW_NUM_IRQS))
        // 6.1's header has no vfio-ap enum; 6.14's has VFIO_AP_REQ_IRQ_INDEX (0) alone.
        #expect(APIRQIndex.allCases.map(\.rawValue) == [0])
        #expect(APIRQIndex.count == 1)
    }
}
