import CVFIO
import Glibc
import Testing
@testable import VFIO
import TestSupport

@Suite struct DeviceHotResetTests {
    static let groupInfo = PCIHotResetInfo(devices: [
        PCIDependentDevice(groupID: 14, segment: 0, bus: 0x3b, devfn: 0x00),
        PCIDependentDevice(groupID: 15, segment: 0, bus: 0x3b, devfn: 0x01),
        PCIDependentDevice(groupID: 15, segment: 0x10, bus: 0xff, devfn: 0xfa),
    ])

    static let cdevInfo = PCIHotResetInfo(flags: [.devID, .devIDOwned], devices: [
        PCIDependentDevice(deviceID: .id(3), segment: 0, bus: 1, devfn: 0x08),
        PCIDependentDevice(deviceID: .owned, segment: 0, bus: 1, devfn: 0x09),
        PCIDependentDevice(deviceID: .notOwned, segment: 0, bus: 1, devfn: 0x0a),
    ])

    @Test func dependentDeviceViews() throws {
        let device = PCIDependentDevice(rawID: 0xffff_ffff, segment: 0x10, bus: 0xff, devfn: 0xfa)
        try expectRoundTrip(device)
        #expect(device.deviceID == .notOwned && device.groupID == 0xffff_ffff)
        #expect(device.slot == 0x1f && device.function == 2)
        #expect(device.address == "0010:ff:1f.2")
        #expect(PCIDependentDevice.DeviceID(rawValue: 0) == .owned)
        #expect(PCIDependentDevice.DeviceID(rawValue: 7) == .id(7))
        #expect(PCIDependentDevice.devidNotOwned == UInt32(bitPattern: -1))
        #expect(MemoryLayout<vfio_pci_dependent_device>.size == PCIDependentDevice.fixedSize)
        // 6.1's header has only group_id in the union; its offset is the same word.
        let c = asCStruct(vfio_pci_dependent_device.self, device.encoded())
        #expect(c.group_id == 0xffff_ffff && c.segment == 0x10 && c.bus == 0xff && c.devfn == 0xfa)
    }

    @Test func infoRoundTripAndLayout() throws {
        try expectRoundTrip(Self.groupInfo)
        try expectRoundTrip(Self.cdevInfo)
        try expectRoundTrip(PCIHotResetInfo(devices: []))
        #expect(MemoryLayout<vfio_pci_hot_reset_info>.size == PCIHotResetInfo.fixedSize)
        let bytes = Self.cdevInfo.encoded()
        #expect(bytes.count == 12 + 24)
        let c = asCStruct(vfio_pci_hot_reset_info.self, bytes)
        #expect(c.argsz == 36 && c.flags == 3 && c.count == 3)
        let second = asCStruct(vfio_pci_dependent_device.self, Array(bytes[20...]))
        #expect(second.group_id == 0 && second.devfn == 0x09)
        #expect(PCIHotResetInfoFlags.devID.rawValue == 1 && PCIHotResetInfoFlags.devIDOwned.rawValue == 2)
    }

    @Test func enospcReplyReportsNeededSize() throws {
        // The kernel's ENOSPC answer: argsz as the caller gave it (12 + 8), count = 3.
        var query = PCIHotResetInfo.query(capacity: 20)
        #expect(query.count == 20 && le32(query, 0) == 20)
        query.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(3).littleEndian, toByteOffset: 8, as: UInt32.self) }
        #expect(try PCIHotResetInfo.reply(query) == .needsRoom(count: 3, neededSize: 36))
        #expect(PCIHotResetInfo.neededSize(count: 3) == 36)
        #expect(throws: VFIOError.malformed("vfio_pci_hot_reset_info", "count 3 needs argsz 36, argsz is 20 (an ENOSPC reply: retry with 36 bytes)")) {
            _ = try PCIHotResetInfo(decoding: query)
        }
        // The retry with the right size decodes.
        var full = Self.groupInfo.encoded(capacity: 64)
        #expect(try PCIHotResetInfo.reply(full) == .complete(Self.groupInfo))
        // A count far larger than anything that fits is reported, not read.
        full.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(0xffff_ffff).littleEndian, toByteOffset: 8, as: UInt32.self) }
        #expect(try PCIHotResetInfo.reply(full) == .needsRoom(count: 0xffff_ffff, neededSize: 12 + 8 * 0xffff_ffff))
    }

    @Test func infoRejections() throws {
        #expect(throws: VFIOError.malformed("vfio_pci_hot_reset_info", "argsz 8 is smaller than the 12-byte structure")) {
            _ = try PCIHotResetInfo(decoding: [8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        }
        // argsz covers the entries, the buffer does not.
        let bytes = Self.groupInfo.encoded()
        #expect(throws: VFIOError.malformed("vfio_pci_hot_reset_info", "count 3 needs 36 bytes, the buffer has 30")) {
            _ = try PCIHotResetInfo(decoding: Array(bytes.prefix(30)))
        }
        #expect(try PCIHotResetInfo.reply(Array(bytes.prefix(30))) == .needsRoom(count: 3, neededSize: 36))
    }

    @Test func hotResetRoundTripAndLayout() throws {
        let groups = PCIHotReset(fds: [5, 6, 9])
        try expectRoundTrip(groups)
        try expectRoundTrip(PCIHotReset.cdev)
        #expect(PCIHotReset.cdev.encoded() == [12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(MemoryLayout<vfio_pci_hot_reset>.size == PCIHotReset.fixedSize)
        let bytes = groups.encoded()
        let c = asCStruct(vfio_pci_hot_reset.self, bytes)
        #expect(c.argsz == 24 && c.flags == 0 && c.count == 3)
        #expect(le32(bytes, 12) == 5 && le32(bytes, 20) == 9)
    }

    @Test func hotResetRejections() {
        var flagged = PCIHotReset(fds: [3]).encoded()
        flagged[4] = 1
        #expect(throws: VFIOError.malformed("vfio_pci_hot_reset", "flags must be 0, got 0x1")) {
            _ = try PCIHotReset(decoding: flagged)
        }
        var overCount = PCIHotReset(fds: [3]).encoded()
        overCount[8] = 2
        #expect(throws: VFIOError.malformed("vfio_pci_hot_reset", "count 2 needs 8 byte(s) of group_fds, argsz 16 leaves 4")) {
            _ = try PCIHotReset(decoding: overCount)
        }
        #expect(throws: VFIOError.malformed("vfio_pci_hot_reset", "count 2 needs 8 byte(s) of group_fds, the buffer has 4")) {
            _ = try PCIHotReset(decoding: [20, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])
        }
        #expect(throws: VFIOError.self) {
            _ = try PCIHotReset(decoding: [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f])
        }
    }
}

@Suite struct DeviceGFXTests {
    static let plane = GFXPlaneInfo(
        flags: .dmabuf, drmPlaneType: GFXPlaneInfo.drmPlaneCursor, drmFormat: 0x3432_5241,
        drmFormatModifier: 0x0100_0000_0000_0001, width: 64, height: 64, stride: 256, size: 16384,
        xPos: 100, yPos: 200, xHot: GFXPlaneInfo.noHotspot, yHot: 7, regionIndexOrDMABufID: 0x55)

    @Test func roundTripAndLayout() throws {
        try expectRoundTrip(Self.plane)
        #expect(MemoryLayout<vfio_device_gfx_plane_info>.size == GFXPlaneInfo.fixedSize)
        let c = asCStruct(vfio_device_gfx_plane_info.self, Self.plane.encoded())
        #expect(c.argsz == 64 && c.flags == UInt32(VFIO_GFX_PLANE_TYPE_DMABUF))
        #expect(c.drm_plane_type == 2 && c.drm_format == 0x3432_5241 && c.drm_format_mod == 0x0100_0000_0000_0001)
        #expect(c.width == 64 && c.height == 64 && c.stride == 256 && c.size == 16384)
        #expect(c.x_pos == 100 && c.y_pos == 200 && c.x_hot == 0xffff_ffff && c.y_hot == 7)
        #expect(c.dmabuf_id == 0x55 && c.region_index == 0x55)
        #expect(Self.plane.dmabufID == 0x55 && Self.plane.regionIndex == nil)
        #expect(GFXPlaneFlags.probe.rawValue == UInt32(VFIO_GFX_PLANE_TYPE_PROBE))
        #expect(GFXPlaneFlags.region.rawValue == UInt32(VFIO_GFX_PLANE_TYPE_REGION))
    }

    @Test func queries() throws {
        let probe = GFXPlaneInfo.query(drmPlaneType: GFXPlaneInfo.drmPlanePrimary, kind: .region, probe: true)
        try expectRoundTrip(probe)
        #expect(probe.flags == [.probe, .region] && probe.isDisabled)
        let bytes = probe.encoded()
        #expect(le32(bytes, 4) == 5 && le32(bytes, 8) == 1)
        let region = GFXPlaneInfo(flags: .region, drmPlaneType: 1, regionIndexOrDMABufID: 10)
        #expect(region.regionIndex == 10 && region.dmabufID == nil)
    }

    @Test func rejectsSmallArgsz() {
        var bytes = Self.plane.encoded()
        bytes[0] = 60
        #expect(throws: VFIOError.malformed("vfio_device_gfx_plane_info", "argsz 60 is smaller than the 64-byte structure")) {
            _ = try GFXPlaneInfo(decoding: bytes)
        }
    }
}

@Suite struct DeviceIOEventfdTests {
    @Test func roundTripAndLayout() throws {
        for width in IOEventfd.Width.allCases {
            try expectRoundTrip(IOEventfd(width: width, offset: 0x1_0000_0040, data: 0x1122_3344_5566_7788, fd: 17))
        }
        try expectRoundTrip(IOEventfd(width: .bits16, offset: 8, data: 0xabcd, fd: -1))
        #expect(MemoryLayout<vfio_device_ioeventfd>.size == IOEventfd.fixedSize)
        let c = asCStruct(vfio_device_ioeventfd.self, IOEventfd(width: .bits32, offset: 0x40, data: 0xdead_beef, fd: 9).encoded())
        #expect(c.argsz == 32 && c.flags == UInt32(VFIO_DEVICE_IOEVENTFD_32))
        #expect(c.offset == 0x40 && c.data == 0xdead_beef && c.fd == 9)
        #expect(IOEventfd.Width.bits8.rawValue == UInt32(VFIO_DEVICE_IOEVENTFD_8))
        #expect(IOEventfd.Width.bits16.rawValue == UInt32(VFIO_DEVICE_IOEVENTFD_16))
        #expect(IOEventfd.Width.bits64.rawValue == UInt32(VFIO_DEVICE_IOEVENTFD_64))
        #expect(IOEventfd.sizeMask == UInt32(VFIO_DEVICE_IOEVENTFD_SIZE_MASK))
        #expect(IOEventfd.Width(byteCount: 8) == .bits64 && IOEventfd.Width(byteCount: 3) == nil)
        #expect(IOEventfd.Width.bits16.byteCount == 2)
    }

    @Test func rejectsBadFlags() {
        func withFlags(_ flags: UInt8) -> [UInt8] {
            var bytes = IOEventfd(width: .bits8, offset: 0, data: 0, fd: 3).encoded()
            bytes[4] = flags
            return bytes
        }
        #expect(throws: VFIOError.malformed("vfio_device_ioeventfd", "flags 0x0 must have exactly one size bit, not 0")) {
            _ = try IOEventfd(decoding: withFlags(0))
        }
        #expect(throws: VFIOError.malformed("vfio_device_ioeventfd", "flags 0x3 must have exactly one size bit, not 2")) {
            _ = try IOEventfd(decoding: withFlags(3))
        }
        #expect(throws: VFIOError.malformed("vfio_device_ioeventfd", "flags 0x14 have bits outside VFIO_DEVICE_IOEVENTFD_SIZE_MASK")) {
            _ = try IOEventfd(decoding: withFlags(0x14))
        }
        var small = withFlags(1)
        small[0] = 28
        #expect(throws: VFIOError.malformed("vfio_device_ioeventfd", "argsz 28 is smaller than the 32-byte structure")) {
            _ = try IOEventfd(decoding: small)
        }
    }
}
