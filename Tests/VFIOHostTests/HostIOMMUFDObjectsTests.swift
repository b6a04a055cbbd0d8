import CVFIO
import Glibc
import Synchronization
import Testing
import VFIO
@testable import VFIOHost
import VFIOSystem

/// HWPTs, hardware info and the attach encoding against a fake kernel: what goes on the
/// wire, what comes back, and how `EOPNOTSUPP` is answered.
@Suite struct HostIOMMUFDObjectsTests {
    /// The raw VT-d data of QEMU 7.2's legacy-mode unit (no SMTS, no SLADS).
    static let vtd = IOMMUFDHWInfoVTD(flags: .errata772415SPR17, capabilityRegister: 0x00d2_008c_2226_0286,
                                      extendedCapabilityRegister: 0xf0_0f4a)

    final class Log: Sendable {
        let state = Mutex<[(request: UInt, argsz: Int, bytes: [UInt8])]>([])
        func append(_ request: UInt, _ p: UnsafeMutableRawPointer) {
            let size = Int(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
            state.withLock { $0.append((request, size, Array(UnsafeRawBufferPointer(start: p, count: min(size, 64))))) }
        }
        func calls(_ request: UInt) -> [(argsz: Int, bytes: [UInt8])] {
            state.withLock { $0.filter { $0.request == request }.map { ($0.argsz, $0.bytes) } }
        }
    }

    /// BIND (device 42), IOAS_ALLOC (ids from 1), ATTACH (writes back `autoDomain` for
    /// IOAS 1-9, else the id given), HWPT_ALLOC (id 100; `hwptErrno` if set), GET_HW_INFO
    /// (VT-d, `capabilities`, data of `dataLength` bytes), DESTROY.
    func handler(_ log: Log, hwptErrno: Int32? = nil, capabilities: IOMMUFDHWCapabilities = [], dataLength: Int = 24)
        -> (Int32, UInt, UnsafeMutableRawPointer?) -> Int32 {
        let nextIOAS = Mutex<UInt32>(1)
        return { _, request, argument in
            let p = argument!
            log.append(request, p)
            switch request {
            case CVFIO_VFIO_DEVICE_BIND_IOMMUFD:
                p.storeBytes(of: UInt32(42).littleEndian, toByteOffset: 12, as: UInt32.self)
            case CVFIO_IOMMU_IOAS_ALLOC:
                let id = nextIOAS.withLock { value -> UInt32 in defer { value += 1 }; return value }
                p.storeBytes(of: id.littleEndian, toByteOffset: 8, as: UInt32.self)
            case CVFIO_VFIO_DEVICE_ATTACH_IOMMUFD_PT:
                let id = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
                if id < 10 { p.storeBytes(of: (id + 50).littleEndian, toByteOffset: 8, as: UInt32.self) }
            case CVFIO_VFIO_DEVICE_DETACH_IOMMUFD_PT, CVFIO_IOMMU_DESTROY:
                break
            case CVFIO_IOMMU_HWPT_ALLOC:
                if let hwptErrno { return -hwptErrno }
                p.storeBytes(of: UInt32(100).littleEndian, toByteOffset: 16, as: UInt32.self)
            case CVFIO_IOMMU_GET_HW_INFO:
                let offered = Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
                let buffer = UnsafeMutableRawPointer(bitPattern: UInt(UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))))!
                let data = Self.vtd.encoded() + [UInt8](repeating: 0xab, count: max(0, dataLength - 24))
                reply(Array(data.prefix(offered)), to: buffer)
                p.storeBytes(of: UInt32(dataLength).littleEndian, toByteOffset: 12, as: UInt32.self)
                p.storeBytes(of: IOMMUFDHWInfoType.intelVTD.rawValue.littleEndian, toByteOffset: 24, as: UInt32.self)
                p.storeBytes(of: capabilities.rawValue.littleEndian, toByteOffset: 32, as: UInt64.self)
            default:
                return -ENOTTY
            }
            return 0
        }
    }

    func open(_ kernel: FakeKernel, _ tree: FakeSysfs) throws -> HostDevice {
        try HostDevice.open(path: "/dev/vfio/devices/vfio0", sysfs: tree.sysfs, system: kernel.system)
    }

    @Test func attachAndDetachGoOutAt614SizesAndReturnTheKernelsPageTableID() throws {
        let kernel = FakeKernel()
        let log = Log()
        kernel.handler = handler(log)
        let tree = try FakeSysfs()
        try {
            let device = try open(kernel, tree)
            // The open attached IOAS 1; the kernel wrote back domain 51.
            #expect(device.attachedPageTableID == 51)
            let attach = try #require(log.calls(CVFIO_VFIO_DEVICE_ATTACH_IOMMUFD_PT).first)
            #expect(attach.argsz == 12 && Array(attach.bytes.prefix(12)) == [12, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
            let hwpt = try device.allocateHWPT()
            #expect(hwpt.id == 100 && hwpt.ioas.id == 1)
            let request = try IOMMUFDHWPTAlloc(decoding: Array(try #require(log.calls(CVFIO_IOMMU_HWPT_ALLOC).first).bytes.prefix(48)))
            #expect(request.deviceID == 42 && request.parentID == 1 && request.flags == [] && request.dataType == .none)
            #expect(try device.attach(hwpt) == 100 && device.attachedPageTableID == 100)
            try device.detach()
            #expect(device.attachedPageTableID == nil)
            let detach = try #require(log.calls(CVFIO_VFIO_DEVICE_DETACH_IOMMUFD_PT).first)
            #expect(detach.argsz == 8 && Array(detach.bytes.prefix(8)) == [8, 0, 0, 0, 0, 0, 0, 0])
        }()
        // The HWPT was destroyed once released, before its IOAS.
        let destroyed = log.calls(CVFIO_IOMMU_DESTROY).map { UInt32($0.bytes[4]) }
        #expect(destroyed.firstIndex(of: 100).map { index in destroyed.firstIndex(of: 1).map { index < $0 } ?? false } == true)
    }

    @Test func aRefusedDirtyTrackingHWPTIsAnsweredByTheCapability() throws {
        let kernel = FakeKernel()
        let log = Log()
        kernel.handler = handler(log, hwptErrno: EOPNOTSUPP)
        let tree = try FakeSysfs()
        let device = try open(kernel, tree)
        #expect(throws: VFIOError.unsupported("IOMMU_HWPT_ALLOC", "the IOMMU lacks dirty tracking (IOMMU_HW_CAP_DIRTY_TRACKING is clear); the kernel answered EOPNOTSUPP")) {
            _ = try device.allocateHWPT(flags: .dirtyTracking)
        }
        #expect(throws: VFIOError.unsupported("IOMMU_HWPT_ALLOC", "the IOMMU cannot be a nesting parent (VT-d ECAP needs SMTS and NEST; has: QI IR PT); the kernel answered EOPNOTSUPP")) {
            _ = try device.allocateHWPT(flags: .nestParent)
        }
        // Without flags, or with the capability present, the errno stays as the kernel gave it.
        #expect(throws: VFIOError.errno("IOMMU_HWPT_ALLOC", EOPNOTSUPP)) { _ = try device.allocateHWPT() }
        kernel.handler = handler(log, hwptErrno: EOPNOTSUPP, capabilities: .dirtyTracking)
        #expect(throws: VFIOError.errno("IOMMU_HWPT_ALLOC", EOPNOTSUPP)) { _ = try device.allocateHWPT(flags: .dirtyTracking) }
        // Flags that are not for a paging HWPT never reach the kernel.
        let before = log.calls(CVFIO_IOMMU_HWPT_ALLOC).count
        #expect(throws: VFIOError.self) { _ = try device.allocateHWPT(flags: .pasid) }
        #expect(log.calls(CVFIO_IOMMU_HWPT_ALLOC).count == before)
    }

    @Test func hardwareInfoAsksAgainWhenTheDataIsLargerThanTheBuffer() throws {
        let kernel = FakeKernel()
        let log = Log()
        kernel.handler = handler(log, capabilities: .dirtyTracking, dataLength: 100)
        let tree = try FakeSysfs()
        let device = try open(kernel, tree)
        let info = try device.iommuHardwareInfo()
        #expect(log.calls(CVFIO_IOMMU_GET_HW_INFO).count == 2)
        #expect(info.data.count == 100 && info.capabilities == .dirtyTracking)
        #expect(try info.intelVTD() == Self.vtd)
    }
}
