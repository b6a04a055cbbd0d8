import CVFIO
import Foundation
import Synchronization
import Testing
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

/// The container's IOMMU models, group removal, unmap sizes, dirty bitmaps and
/// `PhysicalDMAMemory`, against `FakeKernel` (no device).
@Suite struct HostContainerModelTests {
    /// The values `VFIO_SET_IOMMU` and `VFIO_CHECK_EXTENSION` were called with.
    final class Values: @unchecked Sendable {
        let calls = Mutex<[(UInt, UInt)]>([])
        func record(_ request: UInt, _ value: UInt) { calls.withLock { $0.append((request, value)) } }
        func values(of request: UInt) -> [UInt] { calls.withLock { $0.filter { $0.0 == request }.map(\.1) } }
    }

    func kernel(noIOMMUOffered: Bool = true, values: Values) -> FakeKernel {
        let kernel = FakeKernel()
        kernel.handler = kernel.groupHandler()
        kernel.valueHandler = { request, value in
            values.record(request, value)
            if request == CVFIO_VFIO_CHECK_EXTENSION && value == UInt(ContainerExtension.noIOMMU.rawValue) { return noIOMMUOffered ? 1 : 0 }
            return Int32.min
        }
        return kernel
    }

    @Test func eachModelIsCheckedAndSetWithItsOwnNumber() throws {
        for model in ContainerIOMMUModel.allCases {
            let values = Values()
            let kernel = kernel(values: values)
            let container = try VFIOContainer(system: kernel.system, model: model)
            #expect(container.model == model)
            let group = try container.group(3)
            #expect(group.isNoIOMMU == (model == .noIOMMU))
            #expect(values.values(of: CVFIO_VFIO_CHECK_EXTENSION).first == UInt(model.containerExtension.rawValue))
            #expect(values.values(of: CVFIO_VFIO_SET_IOMMU) == [UInt(model.containerExtension.rawValue)])
        }
        #expect(ContainerIOMMUModel.type1.cName == "VFIO_TYPE1_IOMMU")
        #expect(ContainerIOMMUModel.noIOMMU.groupPath(4) == "/dev/vfio/noiommu-4")
        #expect(ContainerIOMMUModel.type1v2.groupPath(4) == "/dev/vfio/4")
        #expect(ContainerIOMMUModel(name: "noiommu") == .noIOMMU && ContainerIOMMUModel(name: "VFIO_TYPE1_IOMMU") == .type1)
        #expect(ContainerIOMMUModel(name: "spapr-tce") == nil)
    }

    @Test func noIOMMUModeOffIsNamedAndNothingLeaks() throws {
        let kernel = kernel(noIOMMUOffered: false, values: Values())
        let error = #expect(throws: VFIOError.self) { try VFIOContainer(system: kernel.system, model: .noIOMMU) }
        guard case .unsupported(let why)? = error?.reason else { Issue.record("\(String(describing: error))"); return }
        #expect(why.contains("enable_unsafe_noiommu_mode") && why.contains("CONFIG_VFIO_NOIOMMU"))
        #expect(openDescriptors(matching: kernel.marker) == 0)
    }

    @Test func aNoIOMMUContainerNeverIssuesType1Ioctls() throws {
        let kernel = kernel(values: Values())
        let container = try VFIOContainer(system: kernel.system, model: .noIOMMU)
        _ = try container.group(3)
        let buffer = try DMABuffer(size: 4096)
        #expect(throws: VFIOError.self) { try container.map(buffer, offset: 0, size: 4096, iova: 0, access: .readWrite) }
        #expect(throws: VFIOError.self) { try container.unmap(iova: 0, size: 4096) }
        #expect(throws: VFIOError.self) { try container.info() }
        #expect(throws: VFIOError.self) { try container.startDirtyTracking() }
        #expect(throws: VFIOError.self) { try container.dirtyBitmap(iova: 0, size: 4096) }
        #expect(throws: VFIOError.self) { try container.updateVaddr(buffer, size: 4096, iova: 0) }
        for request in [CVFIO_VFIO_IOMMU_MAP_DMA, CVFIO_VFIO_IOMMU_UNMAP_DMA, CVFIO_VFIO_IOMMU_GET_INFO, CVFIO_VFIO_IOMMU_DIRTY_PAGES] {
            #expect(kernel.count(request) == 0)
        }
    }

    @Test func removingTheLastGroupForgetsTheMappingsAndSetsTheIOMMUAgainOnAdd() throws {
        let values = Values()
        let kernel = kernel(values: values)
        let handshake = kernel.handler
        let unsetAnswer = Mutex<Int32>(-EBUSY)
        kernel.valueHandler = { request, value in
            values.record(request, value)
            return request == CVFIO_VFIO_GROUP_UNSET_CONTAINER ? unsetAnswer.withLock { $0 } : Int32.min
        }
        kernel.handler = { fd, request, argument in
            switch request {
            case CVFIO_VFIO_IOMMU_MAP_DMA, CVFIO_VFIO_IOMMU_UNMAP_DMA: return 0
            default: return handshake(fd, request, argument)
            }
        }
        let container = try VFIOContainer(system: kernel.system)
        let group = try container.group(3)
        let buffer = try DMABuffer(size: 4096)
        try container.map(buffer, offset: 0, size: 4096, iova: 0x1000, access: .readWrite)
        // EBUSY (a device open): the group stays.
        #expect(throws: VFIOError.errno("VFIO_GROUP_UNSET_CONTAINER", EBUSY)) { try container.remove(group) }
        #expect(container.groups.count == 1)
        unsetAnswer.withLock { $0 = 0 }
        try container.remove(group)
        #expect(container.groups.isEmpty)
        // A group not in the container never reaches the kernel.
        #expect(throws: VFIOError.self) { try container.remove(group) }
        #expect(kernel.count(CVFIO_VFIO_GROUP_UNSET_CONTAINER) == 2)
        // Added again: SET_CONTAINER and SET_IOMMU again; the old IOVA maps again.
        try container.add(group)
        try container.add(group)
        #expect(kernel.count(CVFIO_VFIO_GROUP_SET_CONTAINER) == 2)
        #expect(values.values(of: CVFIO_VFIO_SET_IOMMU).count == 2)
        try container.map(buffer, offset: 0, size: 4096, iova: 0x1000, access: .readWrite)
        // No-IOMMU groups and IOMMU containers do not mix.
        let noIOMMU = try VFIOContainer(system: kernel.system, model: .noIOMMU)
        let other = try noIOMMU.group(5)
        try noIOMMU.remove(other)
        let error = #expect(throws: VFIOError.self) { try container.add(other) }
        if case .invalidArgument = error?.reason {} else { Issue.record("\(String(describing: error))") }
    }

    @Test func aFailedSetIOMMUTakesTheGroupOutAgain() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.groupHandler()
        kernel.valueHandler = { request, _ in request == CVFIO_VFIO_SET_IOMMU ? -ENODEV : Int32.min }
        try {
            let container = try VFIOContainer(system: kernel.system, model: .type1)
            #expect(throws: VFIOError.errno("VFIO_SET_IOMMU", ENODEV)) { try container.group(3) }
            #expect(container.groups.isEmpty)
            #expect(kernel.count(CVFIO_VFIO_GROUP_UNSET_CONTAINER) == 1)
        }()
        #expect(openDescriptors(matching: kernel.marker) == 0)
    }

    @Test func unmapReturnsTheKernelsSizeAndTheDirtyBitsMaskedToMappedPages() throws {
        let kernel = kernel(values: Values())
        let handshake = kernel.handler
        let seen = Mutex<[UInt8]>([])
        kernel.handler = { fd, request, argument in
            switch request {
            case CVFIO_VFIO_IOMMU_MAP_DMA: return 0
            case CVFIO_VFIO_IOMMU_UNMAP_DMA:
                let size = argsz(argument)
                seen.withLock { $0 = Array(UnsafeRawBufferPointer(start: argument, count: size)) }
                if size == 48 {
                    // vfio_bitmap at 24: pgsize, size, data. Pages 0-3 and stale 7 and 9.
                    let data = UnsafeMutableRawPointer(bitPattern: UInt(argument!.load(fromByteOffset: 40, as: UInt64.self)))!
                    data.storeBytes(of: UInt8(0x8f), as: UInt8.self)
                    data.storeBytes(of: UInt8(0x02), toByteOffset: 1, as: UInt8.self)
                }
                argument!.storeBytes(of: UInt64(3 * 4096), toByteOffset: 16, as: UInt64.self)
                return 0
            default: return handshake(fd, request, argument)
            }
        }
        let container = try VFIOContainer(system: kernel.system)
        _ = try container.group(3)
        let buffer = try DMABuffer(size: 4 * 4096)
        try container.map(buffer, offset: 0, size: buffer.size, iova: 0x10_0000, access: .readWrite)
        #expect(try container.unmapReportingSize(iova: 0x10_0000, size: 4096) == 3 * 4096)
        try container.map(buffer, offset: 0, size: buffer.size, iova: 0x10_0000, access: .readWrite)
        let (unmapped, dirty) = try container.unmapCollectingDirtyBitmap(iova: 0x10_0000, size: 10 * 4096)
        #expect(unmapped == 3 * 4096)
        let request = seen.withLock { $0 }
        #expect(request.count == 48)
        #expect(request[4] == 1, "VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP")
        #expect(request[24..<32] == [0, 0x10, 0, 0, 0, 0, 0, 0][...], "pgsize 4096")
        #expect(request[32] == 8, "10 pages: one 64-bit word")
        #expect(dirty.kernelBytes == [0x8f, 0x02, 0, 0, 0, 0, 0, 0])
        #expect(dirty.bytes == [0x0f, 0, 0, 0, 0, 0, 0, 0])
        #expect(dirty.dirtyPages == [0, 1, 2, 3] && dirty.pageCount == 10)
        // A page size that is not a power of two, or an empty range, stays here.
        #expect(throws: VFIOError.self) { try container.dirtyBitmap(iova: 0, size: 4096, pageSize: 3000) }
        #expect(throws: VFIOError.self) { try container.unmapCollectingDirtyBitmap(iova: 0, size: 0) }
        #expect(kernel.count(CVFIO_VFIO_IOMMU_DIRTY_PAGES) == 0)
    }

    @Test func pagemapEntriesDecode() {
        let present = PagemapEntry(rawValue: 1 << 63 | 1 << 61 | 0x12345)
        #expect(present.isPresent && present.isFileOrShared && !present.isSwapped)
        #expect(present.frameNumber == 0x12345)
        #expect(PagemapEntry(rawValue: 1 << 63 | 1 << 62 | 7).frameNumber == nil)
        #expect(PagemapEntry(rawValue: 0x12345).frameNumber == nil)
        #expect(PagemapEntry.fileOffset(of: 0x7f00_0000_3000, pageSize: 4096) == 0x7f00_0000_3 * 8)
    }

    /// A pagemap served by `pread`: `frames[i]` for page i of the buffer, 0 = hidden.
    func physical(_ buffer: DMABuffer, frames: [UInt64], present: Bool = true) throws -> PhysicalDMAMemory {
        let kernel = FakeKernel()
        let first = UInt64(UInt(bitPattern: buffer.baseAddress)) / 4096 * 8
        kernel.preadHandler = { target, offset in
            for i in 0..<(target.count / 8) {
                let page = Int((UInt64(offset) - first) / 8) + i
                let entry: UInt64 = (present ? 1 << 63 : 0) | frames[page]
                target.storeBytes(of: entry.littleEndian, toByteOffset: i * 8, as: UInt64.self)
            }
            return target.count
        }
        return try PhysicalDMAMemory(buffer, system: kernel.system)
    }

    @Test func physicalAddressesComeFromThePagemapAndHiddenFramesAreNamed() throws {
        let buffer = try DMABuffer(size: 3 * 4096, backing: .anonymous)
        let memory = try physical(buffer, frames: [0x100, 0x101, 0x200])
        #expect(memory.physicalAddresses == [0x100000, 0x101000, 0x200000])
        #expect(memory.physicalAddress(at: 4096 + 5) == 0x101005)
        #expect(memory.contiguousBytes(from: 16) == 2 * 4096 - 16)
        #expect(memory.contiguousBytes(from: 2 * 4096) == 4096)

        let hidden = #expect(throws: VFIOError.self) { try physical(buffer, frames: [0, 0, 0]) }
        guard case .unsupported(let why)? = hidden?.reason else { Issue.record("\(String(describing: hidden))"); return }
        #expect(why.contains("CAP_SYS_ADMIN"))
        let absent = #expect(throws: VFIOError.self) { try physical(buffer, frames: [1, 2, 3], present: false) }
        if case .unsupported = absent?.reason {} else { Issue.record("\(String(describing: absent))") }
    }
}
