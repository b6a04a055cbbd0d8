import CVFIO
import Foundation
import Glibc
import Testing
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

/// `release()`, the REQ watcher and the GFX calls against the fake kernel (a memfd stands
/// in for the device descriptor), outside the guest.
@Suite struct HostDeviceReleaseTests {
    /// Region 0: the memfd's first 0x10000 bytes, mmap-able. IRQ 4 (REQ): one eventfd; a
    /// SET_IRQS trigger on it hands the eventfd to `setReq`.
    func handler(_ kernel: FakeKernel, setReq: @escaping @Sendable (Int32) -> Void = { _ in })
        -> (Int32, UInt, UnsafeMutableRawPointer?) -> Int32 {
        kernel.groupHandler { _, request, argument in
            switch request {
            case CVFIO_VFIO_DEVICE_GET_REGION_INFO:
                replyRegionInfo(RegionInfo(flags: [.read, .write, .mmap], index: 0, size: 0x10000, offset: 0), to: argument)
                return 0
            case CVFIO_VFIO_DEVICE_GET_IRQ_INFO:
                let index = UInt32(littleEndian: argument!.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
                guard index == PCIIRQIndex.req.rawValue else { return -EINVAL }
                reply(IRQInfo(flags: [.eventfd], index: index, count: 1).encoded(), to: argument)
                return 0
            case CVFIO_VFIO_DEVICE_SET_IRQS:
                // struct vfio_irq_set: argsz, flags, index, start, count, then the eventfds.
                let count = UInt32(littleEndian: argument!.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
                if count == 1 { setReq(Int32(littleEndian: argument!.loadUnaligned(fromByteOffset: 20, as: Int32.self))) }
                return 0
            default: return -ENOTTY
            }
        }
    }

    @Test func releaseTakesBackTheMappingsAndTheDescriptor() throws {
        let kernel = FakeKernel()
        kernel.handler = handler(kernel)
        let device = try fakeDevice(kernel)
        try device.write(UInt32(0xfeed_f00d), region: 0, offset: 0x100)
        let mapping = try device.mapping(region: 0, offset: 0, size: 0x1000)
        #expect(mapping.load(UInt32.self, at: 0x100) == 0xfeed_f00d)
        #expect(mappings(matching: kernel.marker) == 1)
        #expect(openDescriptors(matching: "memfd:" + kernel.marker) == 1)

        #expect(!device.isReleased)
        device.release()
        #expect(device.isReleased)
        // Nothing of this process refers to the device file any more: the mapping is
        // anonymous memory, the descriptor number points at "/" (O_PATH).
        #expect(mappings(matching: kernel.marker) == 0)
        #expect(openDescriptors(matching: "memfd:" + kernel.marker) == 0)
        #expect(mapping.load(UInt32.self, at: 0x100) == 0)
        mapping.store(UInt32(1), at: 0)  // a stale store changes nothing of the device, and does not fault
        #expect(device.descriptor.raw >= 0)
        #expect(throws: VFIOError.errno("pread", EBADF)) { try device.read(UInt32.self, region: 0, offset: 0x100) }
        #expect(throws: VFIOError.errno("mmap", EBADF)) { try device.mapping(region: 0, offset: 0, size: 0x1000) }
        device.release()  // once only
    }

    @Test func theOwnerIsToldAndReleasesBeforeTheDeadline() async throws {
        let kernel = FakeKernel()
        let req = Monitor<Int32?>(nil)
        kernel.handler = handler(kernel) { fd in req.withLock { $0 = fd } }
        let device = try fakeDevice(kernel)
        let told = Monitor<[HostDevice.ReleaseRequest]>([])
        try device.honourReleaseRequests(within: .seconds(60)) { request in
            told.withLock { $0.append(request) }
            request.releaseDevice()
        }
        #expect(throws: VFIOError.self) { try device.honourReleaseRequests { _ in } }
        let fd = try #require(req.withLock { $0 })
        // The kernel's request: a signal on the REQ eventfd.
        var one: UInt64 = 1
        #expect(write(fd, &one, 8) == 8)
        #expect(await poll(for: .seconds(30)) { device.isReleased })
        #expect(told.withLock { $0.map(\.device) } == ["0000:01:00.0"])
        #expect(told.withLock { $0.map(\.deadline) } == [.seconds(60)])
        #expect(openDescriptors(matching: "memfd:" + kernel.marker) == 0)
    }

    @Test func aDeviceNotReleasedByItsOwnerIsReleasedAtTheDeadline() async throws {
        let kernel = FakeKernel()
        let req = Monitor<Int32?>(nil)
        kernel.handler = handler(kernel) { fd in req.withLock { $0 = fd } }
        let device = try fakeDevice(kernel)
        let releasedWhenTold = Monitor<Bool?>(nil)
        try device.honourReleaseRequests(within: .milliseconds(200)) { [weak device] _ in
            releasedWhenTold.withLock { $0 = device?.isReleased }
        }
        let fd = try #require(req.withLock { $0 })
        let start = ContinuousClock.now
        var one: UInt64 = 1
        #expect(write(fd, &one, 8) == 8)
        #expect(await poll(for: .seconds(30)) { device.isReleased })
        #expect(ContinuousClock.now - start >= .milliseconds(200))
        #expect(releasedWhenTold.withLock { $0 } == false)
    }

    @Test func aDeviceWithoutAReqIRQIsRefused() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.groupHandler { _, request, argument in
            guard request == CVFIO_VFIO_DEVICE_GET_IRQ_INFO else { return -ENOTTY }
            reply(IRQInfo(flags: [], index: 4, count: 0).encoded(), to: argument)
            return 0
        }
        let device = try fakeDevice(kernel)
        let error = #expect(throws: VFIOError.self) { try device.honourReleaseRequests { _ in } }
        if case .unsupported? = error?.reason {} else { Issue.record("expected .unsupported, got \(String(describing: error))") }
        #expect(kernel.count(CVFIO_VFIO_DEVICE_SET_IRQS) == 0)
    }

    @Test func gfxPlaneQueryAndDMABufAreTypedCalls() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.groupHandler { [unowned kernel] _, request, argument in
            switch request {
            case CVFIO_VFIO_DEVICE_QUERY_GFX_PLANE:
                guard let query = try? GFXPlaneInfo(decoding: Array(UnsafeRawBufferPointer(start: argument, count: GFXPlaneInfo.fixedSize))) else {
                    return -EFAULT
                }
                if query.flags.contains(.probe) { return query.flags == [.probe, .dmabuf] ? 0 : -EINVAL }
                guard query.flags == .dmabuf else { return -EINVAL }
                reply(GFXPlaneInfo(flags: .dmabuf, drmPlaneType: query.drmPlaneType, drmFormat: 0x3432_5258, width: 64, height: 64,
                                   stride: 256, size: 0x4000, regionIndexOrDMABufID: 7).encoded(), to: argument)
                return 0
            case CVFIO_VFIO_DEVICE_GET_GFX_DMABUF:
                let id = UInt32(littleEndian: argument!.loadUnaligned(as: UInt32.self))
                return id == 7 ? kernel.openDeviceMemfd() : -ENOENT
            default: return -ENOTTY
            }
        }
        let device = try fakeDevice(kernel)
        #expect(try device.offersGFXPlanes(as: .dmabuf))
        #expect(try !device.offersGFXPlanes(as: .region))
        let plane = try device.gfxPlane(as: .dmabuf)
        #expect(plane.dmabufID == 7 && plane.regionIndex == nil && plane.width == 64 && plane.drmFormat == 0x3432_5258)
        #expect(throws: VFIOError.errno("VFIO_DEVICE_QUERY_GFX_PLANE", EINVAL)) { try device.gfxPlane(as: .region) }
        #expect(throws: VFIOError.errno("VFIO_DEVICE_GET_GFX_DMABUF", ENOENT)) { try device.gfxDMABuf(8) }
        let before = openDescriptors(matching: "memfd:" + kernel.marker)
        do {
            let dmabuf = try device.gfxDMABuf(7)
            #expect(dmabuf.id == 7)
            #expect(try dmabuf.size() == kernel.deviceSize)
            #expect(fcntl(dmabuf.descriptor.raw, F_GETFD) & FD_CLOEXEC != 0)
            let pixels = try dmabuf.map(size: 0x4000)
            #expect(pixels.load(UInt32.self, at: 0) == 0)
        }
        #expect(openDescriptors(matching: "memfd:" + kernel.marker) == before)
    }

    @Test func regionInfoIsAskedFirstWithTheBareStructSize() throws {
        let kernel = FakeKernel()
        let sizes = Monitor<[Int]>([])
        kernel.handler = kernel.groupHandler { _, request, argument in
            guard request == CVFIO_VFIO_DEVICE_GET_REGION_INFO else { return -ENOTTY }
            sizes.withLock { $0.append(argsz(argument)) }
            // mbochs refuses an argsz above its struct (48 bytes) with EINVAL.
            if argsz(argument) > 48 { return -EINVAL }
            replyRegionInfo(RegionInfo(flags: [.read], index: 0, size: 0x1000, offset: 0), to: argument)
            return 0
        }
        let device = try fakeDevice(kernel)
        #expect(try device.regionInfo(0).size == 0x1000)
        #expect(sizes.withLock { $0 } == [RegionInfo.fixedSize])
    }
}
