import Foundation
import Glibc
import Testing
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

extension GuestEnvironment {
    /// `SWIFT_VFIO_MDPY`: the mdpy mdevs' UUIDs (`run.sh --kernel custom --mdpy N`, type mdpy-vga).
    static let mdpys: [String] = (ProcessInfo.processInfo.environment["SWIFT_VFIO_MDPY"] ?? "").split(separator: " ").map(String.init)
    /// `SWIFT_VFIO_MBOCHS`: the mbochs mdevs' UUIDs (`run.sh --kernel custom --mbochs N`, type mbochs-small).
    static let mbochses: [String] = (ProcessInfo.processInfo.environment["SWIFT_VFIO_MBOCHS"] ?? "").split(separator: " ").map(String.init)
}

/// The mediated displays of the harness's 6.12 kernel: `VFIO_DEVICE_QUERY_GFX_PLANE` and
/// `VFIO_DEVICE_GET_GFX_DMABUF` against the kernel's samples mdpy (region planes only)
/// and mbochs (dma-buf planes only), and the framebuffer read through what each offers.
@Suite(.serialized, .enabled(if: GuestEnvironment.enabled, "runs inside the guest harness (SWIFT_VFIO_GUEST=1)"))
struct GuestGFXTests {
    /// `DRM_FORMAT_XRGB8888`, fourcc 'XR24'.
    static let xrgb8888: UInt32 = 0x3432_5258

    static var mdpyAccesses: [HostDevice.Access] { GuestEnvironment.mdpys.isEmpty ? [] : GuestEnvironment.accesses }
    static var mbochsAccesses: [HostDevice.Access] { GuestEnvironment.mbochses.isEmpty ? [] : GuestEnvironment.accesses }

    @Test(arguments: mdpyAccesses)
    func mdpyOffersARegionPlaneHoldingTheFramebuffer(access: HostDevice.Access) async throws {
        try await withGuestDevice {
            let mdpy = try HostDevice.open(mdev: GuestEnvironment.mdpys[0], access: access)
            #expect(try mdpy.offersGFXPlanes(as: .region))
            #expect(try !mdpy.offersGFXPlanes(as: .dmabuf))
            // mdpy-vga: 640x480 XRGB8888, its 1.2 MB framebuffer in a 2 MiB block (rounded up
            // to a power of two), exposed as region 16, an alias of BAR0.
            let plane = try mdpy.gfxPlane(as: .region)
            #expect(plane.drmFormat == Self.xrgb8888)
            #expect(plane.drmFormatModifier == 0)
            #expect(plane.width == 640 && plane.height == 480 && plane.stride == 640 * 4)
            #expect(plane.size == 2 << 20)
            #expect(plane.xPos == 0 && plane.yPos == 0)
            let regionIndex = try #require(plane.regionIndex)
            #expect(regionIndex == 16)
            #expect(throws: VFIOError.errno("VFIO_DEVICE_QUERY_GFX_PLANE", EINVAL)) { try mdpy.gfxPlane(as: .dmabuf) }
            #expect(throws: VFIOError.errno("VFIO_DEVICE_GET_GFX_DMABUF", ENOTTY)) { try mdpy.gfxDMABuf(0) }

            let region = try mdpy.regionInfo(regionIndex)
            #expect(region.size == UInt64(plane.size))
            #expect(region.flags.contains([.read, .write, .mmap]))
            let framebuffer = try mdpy.mapping(region: regionIndex, offset: 0, size: Int(plane.size))
            // After a reset mdpy fills row y with the grey y * 255 / height.
            try mdpy.resetIgnoringFlags()  // (mdpy answers VFIO_DEVICE_RESET without the flag)
            for y in [0, 1, 240, 479] {
                let grey = UInt8(y * 255 / 480)
                let row = Array(framebuffer.bytes[(y * Int(plane.stride))..<((y + 1) * Int(plane.stride))])
                #expect(row.allSatisfy { $0 == grey }, "row \(y) is grey \(grey)")
            }
            // What a guest writes to BAR0 (mapped) is what the plane's region shows.
            let bar = try mdpy.mapping(region: PCIRegionIndex.bar0.rawValue, offset: 0, size: Int(plane.size))
            let stride = Int(plane.stride)
            let pattern = (0..<stride).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            let y = 123
            pattern.withUnsafeBytes { bar.bytes.baseAddress!.advanced(by: y * stride).copyMemory(from: $0.baseAddress!, byteCount: stride) }
            #expect(framebuffer.bytes[(y * stride)..<((y + 1) * stride)].elementsEqual(pattern), "row \(y) shows the pattern")
            // 6.12's mdpy copies every pread/pwrite of BAR0 at the start of the framebuffer
            // (mdev_access ignores the offset), 4 bytes at a time: a pwrite of row 200 leaves
            // row 200 grey and its last 4 bytes in bytes 0-3.
            try pattern.withUnsafeBytes { try mdpy.write(region: PCIRegionIndex.bar0.rawValue, offset: UInt64(200 * stride), from: $0) }
            #expect(framebuffer.bytes[(200 * stride)..<(201 * stride)].allSatisfy { $0 == UInt8(200 * 255 / 480) })
            #expect(Array(framebuffer.bytes[0..<4]) == Array(pattern[(stride - 4)...]))
        }
    }

    /// Writes a bochs dispi register (BAR2, 16-bit registers from 0x500).
    func dispi(_ device: HostDevice, _ index: UInt64, _ value: UInt16) throws {
        try device.write(value, region: PCIRegionIndex.bar2.rawValue, offset: 0x500 + 2 * index)
    }

    @Test(arguments: mbochsAccesses)
    func mbochsOffersTheFramebufferAsADMABuf(access: HostDevice.Access) async throws {
        try await withGuestDevice {
            let mbochs = try HostDevice.open(mdev: GuestEnvironment.mbochses[0], access: access)
            #expect(try mbochs.offersGFXPlanes(as: .dmabuf))
            #expect(try !mbochs.offersGFXPlanes(as: .region))
            #expect(throws: VFIOError.errno("VFIO_DEVICE_QUERY_GFX_PLANE", EINVAL)) { try mbochs.gfxPlane(as: .region) }
            try mbochs.resetIgnoringFlags()  // (as mdpy)
            // No mode set: the primary plane is disabled (zero format and size).
            #expect(try mbochs.gfxPlane(as: .dmabuf).isDisabled)

            // The guest's part: a 640x480x32 mode through the bochs dispi registers
            // (XRES 1, YRES 2, BPP 3, ENABLE 4 = ENABLED | LFB_ENABLED).
            try dispi(mbochs, 1, 640)
            try dispi(mbochs, 2, 480)
            try dispi(mbochs, 3, 32)
            try dispi(mbochs, 4, 0x41)
            let size = 640 * 480 * 4

            // 6.12's mbochs makes the dma-buf on the first query of a mode but drops the
            // pointer it got (mbochs_query_gfx_plane) and answers ENOMEM; the next query
            // finds it, and so does every later one while the mode stays.
            #expect(throws: VFIOError.errno("VFIO_DEVICE_QUERY_GFX_PLANE", ENOMEM)) { try mbochs.gfxPlane(as: .dmabuf) }
            let plane = try mbochs.gfxPlane(as: .dmabuf)
            #expect(plane.drmFormat == Self.xrgb8888 && plane.drmFormatModifier == 0)
            #expect(plane.width == 640 && plane.height == 480 && plane.stride == 2560 && plane.size == UInt32(size))
            #expect(plane.xPos == 0 && plane.yPos == 0)
            let id = try #require(plane.dmabufID)
            #expect(id != 0)
            #expect(try mbochs.gfxPlane(as: .dmabuf).dmabufID == id)
            // The cursor plane: mbochs has none.
            #expect(try mbochs.gfxPlane(GFXPlaneInfo.drmPlaneCursor, as: .dmabuf).isDisabled)

            #expect(throws: VFIOError.errno("VFIO_DEVICE_GET_GFX_DMABUF", ENOENT)) { try mbochs.gfxDMABuf(id + 100) }
            let dmabuf = try mbochs.gfxDMABuf(id)
            #expect(dmabuf.id == id)
            #expect(try dmabuf.size() == size)
            // mbochs exports its dma-bufs read-only and its mmap handler wants VM_SHARED,
            // which the kernel clears for a shared mapping of a file not open for writing:
            // no CPU mapping of the dma-buf in 6.12 (an importer such as a GPU reads it).
            #expect(throws: VFIOError.errno("mmap", EINVAL)) { try dmabuf.map(size: size) }

            // 6.12's mbochs places a pwrite of BAR0 two pages after the offset asked (it
            // subtracts the MMIO BAR's file offset, not video memory's); a mapping is right.
            let video = try mbochs.mapping(region: PCIRegionIndex.bar0.rawValue, offset: 0, size: 4 * 4096)
            video.store(UInt32(0), at: 2 * 4096)
            try mbochs.write(UInt32(0x1234_5678), region: PCIRegionIndex.bar0.rawValue, offset: 0)
            #expect(video.load(UInt32.self, at: 2 * 4096) == 0x1234_5678)
            #expect(video.load(UInt32.self, at: 0) != 0x1234_5678)

            // Another mode, another dma-buf (again ENOMEM first).
            try dispi(mbochs, 1, 800)
            try dispi(mbochs, 2, 600)
            #expect(throws: VFIOError.errno("VFIO_DEVICE_QUERY_GFX_PLANE", ENOMEM)) { try mbochs.gfxPlane(as: .dmabuf) }
            let larger = try mbochs.gfxPlane(as: .dmabuf)
            #expect(larger.width == 800 && larger.height == 600 && larger.stride == 3200 && larger.size == 800 * 600 * 4)
            #expect(larger.dmabufID != nil && larger.dmabufID != id)
            // Disabled again: a disabled plane.
            try dispi(mbochs, 4, 0)
            #expect(try mbochs.gfxPlane(as: .dmabuf).isDisabled)
        }
    }

    @Test(.enabled(if: GuestEnvironment.enabled))
    func vfioPCIHasNoDisplay() async throws {
        try await withGuestDevice {
            let edu = try HostDevice.open(pciAddress: GuestEnvironment.edu, access: .container)
            #expect(throws: VFIOError.errno("VFIO_DEVICE_QUERY_GFX_PLANE", ENOTTY)) { try edu.offersGFXPlanes(as: .region) }
            #expect(throws: VFIOError.errno("VFIO_DEVICE_GET_GFX_DMABUF", ENOTTY)) { try edu.gfxDMABuf(1) }
        }
    }
}
