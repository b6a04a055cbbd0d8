import CVFIO
import Foundation
import Synchronization
import Testing
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

/// Descriptors of this process whose target contains `marker` (a unique file name), and
/// lines of /proc/self/maps that contain it: leak counts that other tests running in
/// parallel cannot disturb.
func openDescriptors(matching marker: String) -> Int {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return names.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0))?.contains(marker) == true }.count
}

func mappings(matching marker: String) -> Int {
    procSelfMaps().filter { $0.contains(marker) }.count
}

/// A scripted kernel behind `HostSystem`: every open gives a descriptor of one temp file
/// (so leaks can be counted), `VFIO_GROUP_GET_DEVICE_FD` gives a memfd standing in for the
/// device, and `handler` answers ioctls. Calls are logged by request number.
final class FakeKernel: @unchecked Sendable {
    let marker = "swift-vfio-fake-" + UUID().uuidString
    let filePath: String
    private let lock = NSLock()
    private var requests: [UInt] = []
    private var _handler: (Int32, UInt, UnsafeMutableRawPointer?) -> Int32 = { _, _, _ in -ENOTTY }
    private var _preadHandler: ((UnsafeMutableRawBufferPointer, Int64) -> Int)?
    /// The device region layout the memfd device has (its size).
    let deviceSize = 0x20000

    init() {
        filePath = NSTemporaryDirectory() + marker
        _ = FileManager.default.createFile(atPath: filePath, contents: Data())
    }

    deinit { try? FileManager.default.removeItem(atPath: filePath) }

    /// Answers pointer ioctls; return a value or `-errno`. The default answers the
    /// container/group handshake (API version 0, type1v2, viable groups).
    var handler: (Int32, UInt, UnsafeMutableRawPointer?) -> Int32 {
        get { lock.withLock { _handler } }
        set { lock.withLock { _handler = newValue } }
    }
    var preadHandler: ((UnsafeMutableRawBufferPointer, Int64) -> Int)? {
        get { lock.withLock { _preadHandler } }
        set { lock.withLock { _preadHandler = newValue } }
    }
    var valueHandler: ((UInt, UInt) -> Int32)?

    var log: [UInt] { lock.withLock { requests } }
    func count(_ request: UInt) -> Int { log.filter { $0 == request }.count }

    func openDeviceMemfd() -> Int32 {
        let fd = cvfio_memfd_create(marker, UInt32(MFD_CLOEXEC))
        _ = ftruncate(fd, off_t(deviceSize))
        return fd
    }

    var system: HostSystem {
        HostSystem(
            open: { [self] _, _ in Glibc.open(filePath, O_RDWR | O_CLOEXEC) },
            ioctlPointer: { [self] fd, request, argument in
                lock.withLock { requests.append(request) }
                return handler(fd, request, argument)
            },
            ioctlValue: { [self] fd, request, value in
                lock.withLock { requests.append(request) }
                if let valueHandler, case let answer = valueHandler(request, value), answer != Int32.min { return answer }
                switch request {
                case CVFIO_VFIO_GET_API_VERSION: return 0
                case CVFIO_VFIO_CHECK_EXTENSION: return 1
                default: return 0
                }
            },
            pread: { [self] fd, buffer, offset in
                if let preadHandler { return preadHandler(buffer, offset) }
                let result = Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
                return result >= 0 ? result : -Int(errno)
            },
            pwrite: { fd, buffer, offset in
                let result = Glibc.pwrite(fd, buffer.baseAddress, buffer.count, off_t(offset))
                return result >= 0 ? result : -Int(errno)
            }
        )
    }

    /// A handler for the group handshake and device fd, deferring everything else to `rest`.
    func groupHandler(viable: Bool = true, rest: @escaping (Int32, UInt, UnsafeMutableRawPointer?) -> Int32 = { _, _, _ in -ENOTTY })
        -> (Int32, UInt, UnsafeMutableRawPointer?) -> Int32 {
        // Unowned: the handler is stored in the kernel, which must go away (and remove
        // its file) when the test ends.
        { [unowned self] fd, request, argument in
            switch request {
            case CVFIO_VFIO_GROUP_GET_STATUS:
                argument!.storeBytes(of: UInt32(viable ? 1 : 0).littleEndian, toByteOffset: 4, as: UInt32.self)
                return 0
            case CVFIO_VFIO_GROUP_SET_CONTAINER: return 0
            case CVFIO_VFIO_GROUP_GET_DEVICE_FD: return openDeviceMemfd()
            default: return rest(fd, request, argument)
            }
        }
    }
}

/// Copies `bytes` to `pointer` (what the kernel does with a reply).
func reply(_ bytes: [UInt8], to pointer: UnsafeMutableRawPointer?) {
    bytes.withUnsafeBytes { pointer!.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
}

/// Answers `VFIO_DEVICE_GET_REGION_INFO` as vfio-pci does: the whole info when `argsz`
/// leaves room for its capability chain, else the fixed part with CAPS set, no chain, and
/// the size needed in `argsz`.
func replyRegionInfo(_ info: RegionInfo, to pointer: UnsafeMutableRawPointer?) {
    let full = info.encoded()
    if argsz(pointer) >= full.count {
        reply(full, to: pointer)
        return
    }
    var head = Array(full[0..<RegionInfo.fixedSize])
    head.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(full.count).littleEndian, as: UInt32.self) }
    head.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self) }  // cap_offset
    reply(head, to: pointer)
}

func argsz(_ pointer: UnsafeMutableRawPointer?) -> Int {
    Int(UInt32(littleEndian: pointer!.loadUnaligned(as: UInt32.self)))
}

/// Opens a HostDevice on a fake kernel through a container and group 7.
func fakeDevice(_ kernel: FakeKernel) throws -> HostDevice {
    let container = try VFIOContainer(system: kernel.system)
    let group = try container.group(7)
    let fd = try group.openDevice("0000:01:00.0")
    return HostDevice(name: "0000:01:00.0", address: "0000:01:00.0", descriptor: fd, binding: .group(container, group),
                      space: container, system: kernel.system)
}

@Suite struct HostIoctlTests {
    @Test func eintrIsRetriedUntilTheCallAnswers() throws {
        let kernel = FakeKernel()
        let attempts = Mutex(0)
        kernel.valueHandler = { request, _ in
            guard request == CVFIO_VFIO_GET_API_VERSION else { return Int32.min }
            return attempts.withLock { count in
                count += 1
                return count <= 3 ? -EINTR : 0
            }
        }
        _ = try VFIOContainer(system: kernel.system)
        #expect(attempts.withLock { $0 } == 4)
    }

    @Test func errorsNameTheIoctlAndTheErrnoAndCloseTheDescriptor() throws {
        let kernel = FakeKernel()
        kernel.valueHandler = { request, _ in request == CVFIO_VFIO_CHECK_EXTENSION ? -EINVAL : Int32.min }
        let error = #expect(throws: VFIOError.self) { try VFIOContainer(system: kernel.system) }
        #expect(error?.operation == "VFIO_CHECK_EXTENSION")
        #expect(error?.errnoValue == EINVAL)
        #expect(error?.description.contains("EINVAL") == true)
        #expect(openDescriptors(matching: kernel.marker) == 0)
    }

    @Test func aWrongAPIVersionIsUnsupported() throws {
        let kernel = FakeKernel()
        kernel.valueHandler = { request, _ in request == CVFIO_VFIO_GET_API_VERSION ? 1 : Int32.min }
        let error = #expect(throws: VFIOError.self) { try VFIOContainer(system: kernel.system) }
        #expect(error?.operation == "VFIO_GET_API_VERSION")
        #expect(openDescriptors(matching: kernel.marker) == 0)
    }

    @Test func severalGroupsShareOneContainerWhichSetsTheIOMMUOnce() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.groupHandler()
        let container = try VFIOContainer(system: kernel.system)
        let three = try container.group(3)
        let four = try container.group(4)
        #expect(try container.group(3) === three)
        #expect(three.number == 3 && four.number == 4)
        #expect(kernel.count(CVFIO_VFIO_GROUP_SET_CONTAINER) == 2)
        #expect(kernel.count(CVFIO_VFIO_SET_IOMMU) == 1)
        #expect(Set(container.groups.map(\.number)) == [3, 4])
        #expect(openDescriptors(matching: kernel.marker) == 3)
    }

    @Test func aNonViableGroupIsRefusedAndItsDescriptorClosed() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.groupHandler(viable: false)
        let container = try VFIOContainer(system: kernel.system)
        let error = #expect(throws: VFIOError.self) { try container.group(3) }
        if case .unsupported = error?.reason {} else { Issue.record("expected .unsupported, got \(String(describing: error))") }
        #expect(kernel.count(CVFIO_VFIO_GROUP_SET_CONTAINER) == 0)
        #expect(openDescriptors(matching: kernel.marker) == 1)  // the container only
    }

    @Test func setContainerFailingClosesTheGroup() throws {
        let kernel = FakeKernel()
        let handshake = kernel.groupHandler()
        kernel.handler = { fd, request, argument in
            request == CVFIO_VFIO_GROUP_SET_CONTAINER ? -EBUSY : handshake(fd, request, argument)
        }
        try {
            let container = try VFIOContainer(system: kernel.system)
            let error = #expect(throws: VFIOError.self) { try container.group(3) }
            #expect(error?.operation == "VFIO_GROUP_SET_CONTAINER" && error?.errnoValue == EBUSY)
        }()
        #expect(openDescriptors(matching: kernel.marker) == 0)
    }

    @Test func regionInfoIsAskedAgainOnceWithTheLargerArgszTheKernelStates() throws {
        let kernel = FakeKernel()
        let areas = (0..<20).map { SparseMmapArea(offset: UInt64($0) * 0x1000, size: 0x800) }
        let full = RegionInfo(flags: [.read, .write, .mmap], index: 0, size: 0x20000, offset: 0, capabilities: [.sparseMmap(areas)]).encoded()
        #expect(full.count > 256)
        kernel.handler = kernel.groupHandler { _, request, argument in
            guard request == CVFIO_VFIO_DEVICE_GET_REGION_INFO else { return -ENOTTY }
            if argsz(argument) < full.count {
                // The fixed part with CAPS set, no chain, and the size needed.
                var head = RegionInfo(flags: [.read, .write, .mmap], index: 0, size: 0x20000, offset: 0).encoded()
                head[4] |= UInt8(RegionInfoFlags.caps.rawValue)
                head.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(full.count).littleEndian, as: UInt32.self) }
                reply(head, to: argument)
                return 0
            }
            reply(full, to: argument)
            return 0
        }
        let device = try fakeDevice(kernel)
        let info = try device.regionInfo(0)
        #expect(info.sparseMmapAreas == areas)
        #expect(kernel.count(CVFIO_VFIO_DEVICE_GET_REGION_INFO) == 2)
    }

    @Test func hotResetInfoIsAskedAgainAfterENOSPCWithTheCountTheKernelStates() throws {
        let kernel = FakeKernel()
        let devices = (0..<10).map { PCIDependentDevice(groupID: 7, segment: 0, bus: 1, devfn: UInt8($0)) }
        let full = PCIHotResetInfo(devices: devices).encoded()
        kernel.handler = kernel.groupHandler { _, request, argument in
            guard request == CVFIO_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO else { return -ENOTTY }
            if argsz(argument) < full.count {
                argument!.storeBytes(of: UInt32(10).littleEndian, toByteOffset: 8, as: UInt32.self)
                return -ENOSPC
            }
            reply(full, to: argument)
            return 0
        }
        let device = try fakeDevice(kernel)
        let info = try device.hotResetInfo()
        #expect(info.devices == devices)
        #expect(kernel.count(CVFIO_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO) == 2)
    }

    @Test func aSecondTooSmallReplyIsMalformedAfterExactlyOneRetry() throws {
        let kernel = FakeKernel()
        let count = Mutex<UInt32>(10)
        kernel.handler = kernel.groupHandler { _, request, argument in
            guard request == CVFIO_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO else { return -ENOTTY }
            let next = count.withLock { value -> UInt32 in value += 10; return value }
            argument!.storeBytes(of: next.littleEndian, toByteOffset: 8, as: UInt32.self)
            return -ENOSPC
        }
        let device = try fakeDevice(kernel)
        let error = #expect(throws: VFIOError.self) { try device.hotResetInfo() }
        #expect(error?.operation == "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO")
        if case .malformed = error?.reason {} else { Issue.record("expected .malformed, got \(String(describing: error))") }
        #expect(kernel.count(CVFIO_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO) == 2)
    }

    @Test func setIRQsErrorsNameTheIoctlAndErrno() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.groupHandler { _, request, _ in request == CVFIO_VFIO_DEVICE_SET_IRQS ? -EINVAL : -ENOTTY }
        let device = try fakeDevice(kernel)
        let error = #expect(throws: VFIOError.self) { try device.enableInterrupts(.msi, eventfds: [3]) }
        #expect(error == .errno("VFIO_DEVICE_SET_IRQS", EINVAL))
        let feature = #expect(throws: VFIOError.self) { try device.feature(.probe(.migration, get: true)) }
        #expect(feature == .errno("VFIO_DEVICE_FEATURE", ENOTTY))
    }

    /// A fake device whose region 0 is the memfd's first 0x10000 bytes (mmap-able in two
    /// sparse areas) and region 1 its next 0x1000 (no mmap).
    func regionHandler(_ kernel: FakeKernel) -> (Int32, UInt, UnsafeMutableRawPointer?) -> Int32 {
        kernel.groupHandler { _, request, argument in
            guard request == CVFIO_VFIO_DEVICE_GET_REGION_INFO else { return -ENOTTY }
            let index = UInt32(littleEndian: argument!.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            let info: RegionInfo
            switch index {
            case 0: info = RegionInfo(flags: [.read, .write, .mmap], index: 0, size: 0x10000, offset: 0,
                                      capabilities: [.sparseMmap([SparseMmapArea(offset: 0, size: 0x1000), SparseMmapArea(offset: 0x8000, size: 0x2000)])])
            case 1: info = RegionInfo(flags: [.read, .write], index: 1, size: 0x1000, offset: 0x10000)
            default: return -EINVAL
            }
            replyRegionInfo(info, to: argument)
            return 0
        }
    }

    @Test func preadRetriesEINTRAndContinuesShortReads() throws {
        let kernel = FakeKernel()
        kernel.handler = regionHandler(kernel)
        let device = try fakeDevice(kernel)
        try device.write(UInt32(0x1122_3344), region: 1, offset: 8)
        let calls = Mutex(0)
        kernel.preadHandler = { buffer, offset in
            let n = calls.withLock { value -> Int in value += 1; return value }
            if n == 1 { return -Int(EINTR) }
            // One byte at a time, from the region layout above (region 1 at 0x10000).
            #expect(offset >= 0x10008)
            buffer[0] = [0x44, 0x33, 0x22, 0x11][Int(offset - 0x10008)]
            return 1
        }
        #expect(try device.read(UInt32.self, region: 1, offset: 8) == 0x1122_3344)
        #expect(calls.withLock { $0 } == 5)
        kernel.preadHandler = { _, _ in -Int(EIO) }
        #expect(throws: VFIOError.errno("pread", EIO)) { try device.read(UInt8.self, region: 1, offset: 0) }
    }

    @Test func accessesOutsideARegionAreRefusedBeforeTheKernel() throws {
        let kernel = FakeKernel()
        kernel.handler = regionHandler(kernel)
        let device = try fakeDevice(kernel)
        #expect(throws: VFIOError.errno("pread", EINVAL)) { try device.read(UInt64.self, region: 1, offset: 0xffc) }
        #expect(throws: VFIOError.errno("pwrite", EINVAL)) { try device.write(UInt32(1), region: 1, offset: 0x1000) }
        #expect(throws: VFIOError.self) { try device.read(UInt32.self, region: 9, offset: 0) }
    }

    @Test func mappingsFollowFlagsAndSparseAreasAndAreReleased() throws {
        let kernel = FakeKernel()
        kernel.handler = regionHandler(kernel)
        let before = mappings(matching: kernel.marker)
        try {
            let device = try fakeDevice(kernel)
            let first = try device.mapping(region: 0, offset: 0, size: 0x1000)
            first.store(UInt32(0xdead_beef), at: 0x10)
            #expect(try device.read(UInt32.self, region: 0, offset: 0x10) == 0xdead_beef)
            let second = try device.mapAll(region: 0)
            #expect(second.map(\.regionOffset) == [0, 0x8000])
            withExtendedLifetime((first, second)) {
                #expect(mappings(matching: kernel.marker) == before + 3)
            }
            #expect(throws: VFIOError.errno("mmap", EINVAL)) { try device.mapping(region: 0, offset: 0x2000, size: 0x1000) }  // between areas
            #expect(throws: VFIOError.errno("mmap", EINVAL)) { try device.mapping(region: 0, offset: 0x8000, size: 0x3000) }  // past an area
            #expect(throws: VFIOError.errno("mmap", EINVAL)) { try device.mapping(region: 0, offset: 0x100, size: 0x1000) }  // misaligned
            let noMmap = #expect(throws: VFIOError.self) { try device.mapping(region: 1, offset: 0, size: 0x1000) }
            if case .unsupported = noMmap?.reason {} else { Issue.record("expected .unsupported") }
        }()
        #expect(mappings(matching: kernel.marker) == before)
        #expect(openDescriptors(matching: kernel.marker) == 0)
    }

    @Test func dmaMapsAtAnAllocatedIOVAInsideTheRangesAndReleasesItOnFailure() throws {
        let kernel = FakeKernel()
        let ranges = [Type1IOVARange(start: 0, end: 0xfedf_ffff), Type1IOVARange(start: 0xfef0_0000, end: 0xffff_ffff)]
        struct Call: Equatable { var vaddr: UInt64; var iova: UInt64; var size: UInt64 }
        let maps = Mutex<[Call]>([])
        let failNext = Mutex(false)
        kernel.handler = kernel.groupHandler { _, request, argument in
            switch request {
            case CVFIO_VFIO_IOMMU_GET_INFO:
                reply(Type1Info(flags: [.pageSizes], iovaPageSizes: 0x4000_1000, capabilities: [.iovaRanges(ranges)]).encoded(), to: argument)
                return 0
            case CVFIO_VFIO_IOMMU_MAP_DMA:
                if failNext.withLock({ $0 }) { return -EEXIST }
                let raw = Array(UnsafeRawBufferPointer(start: argument, count: Type1DMAMap.fixedSize))
                let map = try! Type1DMAMap(decoding: raw)
                maps.withLock { $0.append(Call(vaddr: map.vaddr, iova: map.iova, size: map.size)) }
                return 0
            case CVFIO_VFIO_IOMMU_UNMAP_DMA: return 0
            default: return -ENOTTY
            }
        }
        let device = try fakeDevice(kernel)
        #expect(try device.validIOVARanges() == [try IOVARange(start: 0, last: 0xfedf_ffff), try IOVARange(start: 0xfef0_0000, last: 0xffff_ffff)])
        let buffer = try DMABuffer(size: 8192)
        let iova = try device.mapDMA(buffer, limit: (1 << 28) - 1)
        #expect(maps.withLock { $0 } == [Call(vaddr: UInt64(UInt(bitPattern: buffer.baseAddress)), iova: iova, size: 8192)])
        #expect(iova + 8192 <= 1 << 28)
        failNext.withLock { $0 = true }
        let second = try DMABuffer(size: 4096)
        #expect(throws: VFIOError.errno("VFIO_IOMMU_MAP_DMA", EEXIST)) { _ = try device.mapDMA(second) }
        failNext.withLock { $0 = false }
        let third = try device.mapDMA(second)
        #expect(third == iova + 8192)  // the failed attempt's IOVA was given back
        try device.unmapDMA(iova: iova, size: 8192)
        #expect(try device.mapDMA(buffer) == iova)
        #expect(throws: VFIOError.self) { try device.mapDMA(buffer, offset: 100, size: 4096, iova: 0x10000, access: .read) }
    }
}

/// The cdev + iommufd path on a fake kernel.
@Suite struct HostIOMMUFDTests {
    struct Seen: Sendable {
        var attached: [UInt32] = []
        var detached = 0
        var maps: [(ioas: UInt32, iova: UInt64, length: UInt64, flags: UInt32)] = []
        var unmaps: [(ioas: UInt32, iova: UInt64, length: UInt64)] = []
        var rangeCalls = 0
        var destroyed: [UInt32] = []
    }

    /// Answers BIND (device id 42), IOAS_ALLOC (ids 1, 2, ...), ATTACH/DETACH, IOVA_RANGES
    /// (three ranges: EMSGSIZE while the caller offers fewer), MAP and UNMAP.
    final class SeenBox: Sendable {
        let state = Mutex(Seen())
        func withLock<T>(_ body: (inout Seen) -> T) -> T { state.withLock { body(&$0) } }
    }

    func handler(_ seen: SeenBox, failBind: Bool = false) -> (Int32, UInt, UnsafeMutableRawPointer?) -> Int32 {
        let nextIOAS = Mutex<UInt32>(1)
        let ranges = [IOMMUFDIOVARange(start: 0, last: 0xfedf_ffff), IOMMUFDIOVARange(start: 0xfef0_0000, last: 0x7f_ffff_ffff),
                      IOMMUFDIOVARange(start: 0x100_0000_0000, last: 0x1ff_ffff_ffff)]
        return { _, request, argument in
            let p = argument!
            switch request {
            case CVFIO_VFIO_DEVICE_BIND_IOMMUFD:
                if failBind { return -EBUSY }
                p.storeBytes(of: UInt32(42).littleEndian, toByteOffset: 12, as: UInt32.self)
                return 0
            case CVFIO_IOMMU_IOAS_ALLOC:
                let id = nextIOAS.withLock { value -> UInt32 in defer { value += 1 }; return value }
                p.storeBytes(of: id.littleEndian, toByteOffset: 8, as: UInt32.self)
                return 0
            case CVFIO_VFIO_DEVICE_ATTACH_IOMMUFD_PT:
                let id = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
                seen.withLock { $0.attached.append(id) }
                return 0
            case CVFIO_VFIO_DEVICE_DETACH_IOMMUFD_PT:
                seen.withLock { $0.detached += 1 }
                return 0
            case CVFIO_IOMMU_IOAS_IOVA_RANGES:
                seen.withLock { $0.rangeCalls += 1 }
                let offered = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
                p.storeBytes(of: UInt32(ranges.count).littleEndian, toByteOffset: 8, as: UInt32.self)
                if offered < UInt32(ranges.count) { return -EMSGSIZE }
                let array = UnsafeMutableRawPointer(bitPattern: UInt(UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))))!
                reply(IOMMUFDIOVARange.encodeArray(ranges), to: array)
                return 0
            case CVFIO_IOMMU_IOAS_MAP:
                let map = try! IOMMUFDIOASMap(decoding: Array(UnsafeRawBufferPointer(start: p, count: IOMMUFDIOASMap.fixedSize)))
                seen.withLock { $0.maps.append((map.ioasID, map.iova, map.length, map.flags.rawValue)) }
                return 0
            case CVFIO_IOMMU_IOAS_UNMAP:
                let unmap = try! IOMMUFDIOASUnmap(decoding: Array(UnsafeRawBufferPointer(start: p, count: IOMMUFDIOASUnmap.fixedSize)))
                seen.withLock { $0.unmaps.append((unmap.ioasID, unmap.iova, unmap.length)) }
                return 0
            case CVFIO_IOMMU_DESTROY:
                seen.withLock { $0.destroyed.append(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))) }
                return 0
            default:
                return -ENOTTY
            }
        }
    }

    @Test func bindAllocateAttachMapReplaceDetachAndRelease() throws {
        let kernel = FakeKernel()
        let seen = SeenBox()
        kernel.handler = handler(seen)
        let tree = try FakeSysfs()
        try {
            let device = try HostDevice.open(path: "/dev/vfio/devices/vfio0", sysfs: tree.sysfs, system: kernel.system)
            #expect(device.access == .iommufd)
            guard case .iommufd(let iommufd, let deviceID) = device.binding else { Issue.record("not bound to an iommufd"); return }
            #expect(deviceID == 42)
            #expect(seen.withLock { $0.attached } == [1])

            // Ranges: asked with room for 16, so one call.
            #expect(try device.validIOVARanges().count == 3)
            let buffer = try DMABuffer(size: 4096 * 2)
            let iova = try device.mapDMA(buffer, limit: (1 << 28) - 1)
            let map = seen.withLock { $0.maps.last! }
            #expect(map.ioas == 1 && map.iova == iova && map.length == 8192)
            #expect(map.flags == IOMMUFDIOASMapFlags([.fixedIOVA, .readable, .writeable]).rawValue)

            // Replace with a second IOAS, then detach.
            let second = try iommufd.allocateIOAS()
            try device.attach(second)
            #expect(seen.withLock { $0.attached } == [1, 2])
            #expect((try device.dmaSpace() as? IOAS) === second)
            try device.detach()
            #expect(seen.withLock { $0.detached } == 1)
            #expect(throws: VFIOError.self) { try device.mapDMA(buffer) }
            try second.unmapAll()
            #expect(seen.withLock { $0.unmaps.last! }.length == .max)
        }()
        #expect(Set(seen.withLock { $0.destroyed }) == [1, 2], "both IOASes destroyed when released")
        #expect(openDescriptors(matching: kernel.marker) == 0)
    }

    @Test func iovaRangesAreAskedAgainAfterEMSGSIZE() throws {
        let kernel = FakeKernel()
        let seen = SeenBox()
        kernel.handler = handler(seen)
        let iommufd = try IOMMUFD(system: kernel.system)
        let ioas = try iommufd.allocateIOAS()
        // Three ranges fit in the 16 offered first: one call.
        #expect(try ioas.validIOVARanges().count == 3)
        #expect(seen.withLock { $0.rangeCalls } == 1)

        // Twenty do not: EMSGSIZE with the count, then a second call with room for it.
        let many = (0..<20).map { IOMMUFDIOVARange(start: UInt64($0) << 32, last: UInt64($0) << 32 + 0xffff) }
        let calls = Mutex(0)
        kernel.handler = { _, request, argument in
            guard request == CVFIO_IOMMU_IOAS_IOVA_RANGES, let p = argument else { return 0 }
            calls.withLock { $0 += 1 }
            let offered = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            p.storeBytes(of: UInt32(many.count).littleEndian, toByteOffset: 8, as: UInt32.self)
            if offered < UInt32(many.count) { return -EMSGSIZE }
            reply(IOMMUFDIOVARange.encodeArray(many), to: UnsafeMutableRawPointer(bitPattern: UInt(UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt64.self))))!)
            return 0
        }
        let ranges = try ioas.validIOVARanges()
        #expect(ranges.count == 20 && ranges[19].start == 19 << 32)
        #expect(calls.withLock { $0 } == 2)
    }

    @Test func aFailedBindClosesTheDeviceAndTheIOMMUFD() throws {
        let kernel = FakeKernel()
        let seen = SeenBox()
        kernel.handler = handler(seen, failBind: true)
        let tree = try FakeSysfs()
        let error = #expect(throws: VFIOError.self) {
            try HostDevice.open(path: "/dev/vfio/devices/vfio0", sysfs: tree.sysfs, system: kernel.system)
        }
        #expect(error == .errno("VFIO_DEVICE_BIND_IOMMUFD", EBUSY))
        #expect(openDescriptors(matching: kernel.marker) == 0)
    }
}
