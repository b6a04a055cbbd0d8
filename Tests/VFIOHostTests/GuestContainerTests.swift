import Foundation
import Glibc
import Testing
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

/// The type1 container against the guest's kernel (Debian's 6.1 and the harness's 6.12):
/// the IOMMU models, `VFIO_GROUP_UNSET_CONTAINER`, dirty bitmaps (`VFIO_IOMMU_DIRTY_PAGES`
/// and unmap with `GET_DIRTY_BITMAP`), unmap-all and the vaddr update. Facts from
/// drivers/vfio/{container,group,vfio_iommu_type1}.c as of 6.12.
@Suite(.serialized, .enabled(if: GuestEnvironment.enabled, "runs inside the guest harness (SWIFT_VFIO_GUEST=1)"))
struct GuestContainerTests {
    static let page: UInt64 = 4096
    /// A fixed IOVA inside the valid ranges and edu's 28-bit DMA reach.
    static let base: UInt64 = 0x10_0000

    /// Opens edu through a container (a new type1v2 one unless `container` is given).
    func withContainerEdu<T>(_ container: VFIOContainer? = nil, _ body: (HostDevice, VFIOContainer, VFIOGroup) async throws -> T) async throws -> T {
        try await withGuestDevice {
            let edu = try HostDevice.open(pciAddress: GuestEnvironment.edu, access: .container, container: container)
            guard case .group(let container, let group) = edu.binding else { throw VFIOError.unsupported("test", "not a container device") }
            return try await body(edu, container, group)
        }
    }

    /// Pages `[0, 4)` and `[6, 7)` of `base` mapped, pages 4 and 5 left out.
    struct TwoMappings {
        let a = try! DMABuffer(size: 4 * Int(GuestContainerTests.page))
        let b = try! DMABuffer(size: Int(GuestContainerTests.page))
        func map(_ container: VFIOContainer) throws {
            let base = GuestContainerTests.base, page = GuestContainerTests.page
            try container.map(a, offset: 0, size: a.size, iova: base, access: .readWrite)
            try container.map(b, offset: 0, size: b.size, iova: base + 6 * page, access: .readWrite)
        }
    }

    @Test func dirtyBitmapsReportEveryMappedPageOnEveryReadAndUnmapReturnsTheSameBits() async throws {
        try await withContainerEdu { edu, container, _ in
            #expect(container.model == .type1v2)
            let info = try container.info()
            let migration = info.capabilities.compactMap { capability -> Type1MigrationCapability? in
                if case .migration(let value) = capability { return value } else { return nil }
            }.first
            let smallest = try #require(migration).pageSizeBitmap
            #expect(smallest == Self.page, "the migration capability names the one bitmap page size the kernel takes")
            try edu.enableBusMaster()
            let mappings = TwoMappings()
            try mappings.map(container)
            let seven = 7 * Self.page

            // GET_BITMAP while logging is off: EINVAL.
            #expect(throws: VFIOError.errno("VFIO_IOMMU_DIRTY_PAGES", EINVAL)) { try container.dirtyBitmap(iova: Self.base, size: seven) }
            try container.startDirtyTracking()
            try container.startDirtyTracking()  // starting twice is no error

            // The device writes one page; type1 cannot know which, so every mapped page
            // of the range reads dirty and the two pages between the mappings read clean.
            try edu.eduDMA(from: Edu.buffer, to: Self.base + Self.page, count: 64, toRAM: true)
            let first = try container.dirtyBitmap(iova: Self.base, size: seven)
            #expect(first.bytes.count == 8, "7 pages: one 64-bit word")
            #expect(first.dirtyPages == [0, 1, 2, 3, 6])
            #expect(first.bytes == [0x4f, 0, 0, 0, 0, 0, 0, 0])
            // Reading clears the bits, then the kernel marks again every page it holds
            // pinned: for a device behind the IOMMU, all of them. The second read is the same.
            let second = try container.dirtyBitmap(iova: Self.base, size: seven)
            #expect(second.bytes == first.bytes)
            #expect(first.kernelBytes == first.bytes)
            // What the kernel wrote the second time: mapping B (page 6, not on a 64-page
            // boundary of the range) was shifted in place by the first read and only its
            // own bit cleared, so stale bits follow it (6.1 and 6.12; see Type1DirtyBitmap).
            #expect(second.kernelBytes != second.bytes, "the kernel no longer leaves stale bits past a shifted mapping")
            #expect(second.kernelBytes[0] & 0x80 != 0, "page 7, never mapped, reads dirty in the kernel's bitmap")
            // 65 pages: two words; the bits past the mappings stay clear.
            let wide = try container.dirtyBitmap(iova: Self.base, size: 65 * Self.page)
            #expect(wide.bytes.count == 16)
            #expect(wide.dirtyPages == [0, 1, 2, 3, 6])

            // Page sizes other than the smallest IOMMU page, and ranges that split a
            // mapping: EINVAL.
            #expect(throws: VFIOError.errno("VFIO_IOMMU_DIRTY_PAGES", EINVAL)) { try container.dirtyBitmap(iova: Self.base, size: 8 * Self.page, pageSize: 8192) }
            #expect(throws: VFIOError.errno("VFIO_IOMMU_DIRTY_PAGES", EINVAL)) { try container.dirtyBitmap(iova: Self.base, size: 8 * Self.page, pageSize: 2 << 20) }
            #expect(throws: VFIOError.errno("VFIO_IOMMU_DIRTY_PAGES", EINVAL)) { try container.dirtyBitmap(iova: Self.base + Self.page, size: 3 * Self.page) }
            #expect(throws: VFIOError.errno("VFIO_IOMMU_DIRTY_PAGES", EINVAL)) { try container.dirtyBitmap(iova: Self.base, size: 2 * Self.page) }
            #expect(throws: VFIOError.self) { try container.dirtyBitmap(iova: Self.base, size: seven, pageSize: 3000) }
            #expect(throws: VFIOError.errno("VFIO_IOMMU_UNMAP_DMA", EINVAL)) {
                try container.unmapCollectingDirtyBitmap(iova: Self.base, size: seven, pageSize: 8192)
            }

            // Unmapping with the bitmap returns the bits a GET_BITMAP gives, and the bytes
            // of both whole mappings.
            let (unmapped, dirty) = try container.unmapCollectingDirtyBitmap(iova: Self.base, size: seven)
            #expect(unmapped == 5 * Self.page)
            #expect(dirty.bytes == first.bytes)
            // Nothing is mapped there now: the range reads clean, and an unmap finds nothing.
            #expect(try container.dirtyBitmap(iova: Self.base, size: seven).dirtyPages == [])
            #expect(try container.unmapReportingSize(iova: Self.base, size: seven) == 0)

            try container.stopDirtyTracking()
            try container.stopDirtyTracking()
            // Unmap with a bitmap while logging is off: EINVAL, and nothing is unmapped.
            try mappings.map(container)
            #expect(throws: VFIOError.errno("VFIO_IOMMU_UNMAP_DMA", EINVAL)) { try container.unmapCollectingDirtyBitmap(iova: Self.base, size: seven) }
            // type1v2 refuses an unmap that splits a mapping.
            #expect(throws: VFIOError.errno("VFIO_IOMMU_UNMAP_DMA", EINVAL)) { try container.unmapReportingSize(iova: Self.base + Self.page, size: Self.page) }
            #expect(try container.unmapReportingSize(iova: Self.base, size: seven) == 5 * Self.page)
            withExtendedLifetime(mappings) {}
        }
    }

    @Test func aType1ContainerKeepsTheV1UnmapRulesAndRefusesDirtyTracking() async throws {
        let container = try VFIOContainer(model: .type1)
        #expect(container.model == .type1)
        try await withContainerEdu(container) { edu, container, group in
            #expect(container.groups.map(\.number) == [group.number])
            #expect(try container.checkExtension(.type1))
            try edu.enableBusMaster()
            let buffer = try DMABuffer(size: 2 * Int(Self.page))
            try container.map(buffer, offset: 0, size: buffer.size, iova: Self.base, access: .readWrite)
            for i in 0..<128 { buffer.bytes[i] = UInt8(truncatingIfNeeded: i &* 3 &+ 1) }
            try edu.eduDMA(from: Self.base, to: Edu.buffer, count: 128, toRAM: false)

            // v1: an unmap starting inside a mapping succeeds and unmaps nothing ...
            #expect(try container.unmapReportingSize(iova: Self.base + Self.page, size: Self.page) == 0)
            try edu.eduDMA(from: Edu.buffer, to: Self.base + Self.page, count: 128, toRAM: true)
            #expect(Array(buffer.bytes[4096..<4224]) == Array(buffer.bytes[0..<128]), "the mapping is still there")
            // ... and dirty-page logging is v2 only: EACCES.
            #expect(throws: VFIOError.errno("VFIO_IOMMU_DIRTY_PAGES", EACCES)) { try container.startDirtyTracking() }
            // One covering the mapping's first page removes all of it.
            #expect(try container.unmapReportingSize(iova: Self.base, size: Self.page) == 2 * Self.page)
            #expect(try container.unmapReportingSize(iova: Self.base, size: 2 * Self.page) == 0)
        }
    }

    @Test func unsetContainerWaitsForTheDeviceAndTheLastGroupTakesTheIOMMUWithIt() async throws {
        try await withGuestDevice {
            let first = try VFIOContainer()
            var edu: HostDevice? = try HostDevice.open(pciAddress: GuestEnvironment.edu, access: .container, container: first)
            guard case .group(_, let group)? = edu?.binding else { Issue.record("not a container device"); return }
            let buffer = try DMABuffer(size: Int(Self.page))
            try first.map(buffer, offset: 0, size: buffer.size, iova: Self.base, access: .readWrite)

            // A device of the group is open: EBUSY, and nothing changes.
            #expect(throws: VFIOError.errno("VFIO_GROUP_UNSET_CONTAINER", EBUSY)) { try first.remove(group) }
            #expect(first.groups.count == 1)
            #expect(try group.status().flags.contains(.containerSet))

            edu?.descriptor.close()
            edu = nil
            try first.remove(group)
            #expect(first.groups.isEmpty)
            let status = try group.status().flags
            #expect(status.contains(.viable) && !status.contains(.containerSet))
            #expect(throws: VFIOError.self) { try first.remove(group) }
            // The last group took the IOMMU with it: the container answers no type1 ioctl
            // (EINVAL: no backend) and has no mapping left; a device cannot be opened.
            #expect(throws: VFIOError.errno("VFIO_IOMMU_MAP_DMA", EINVAL)) {
                try first.map(buffer, offset: 0, size: buffer.size, iova: Self.base, access: .readWrite)
            }
            #expect(throws: VFIOError.errno("VFIO_IOMMU_GET_INFO", EINVAL)) { try first.info() }
            #expect(throws: VFIOError.errno("VFIO_GROUP_GET_DEVICE_FD", EINVAL)) { try group.openDevice(GuestEnvironment.edu) }

            // The same open group joins another container, of another model.
            let second = try VFIOContainer(model: .type1)
            try second.add(group)
            #expect(try group.status().flags.contains(.containerSet))
            let again = try HostDevice.open(pciAddress: GuestEnvironment.edu, access: .container, container: second)
            try again.enableBusMaster()
            try second.map(buffer, offset: 0, size: buffer.size, iova: Self.base, access: .readWrite)
            for i in 0..<64 { buffer.bytes[i] = 0xa0 &+ UInt8(i) }
            try again.eduDMA(from: Self.base, to: Edu.buffer, count: 64, toRAM: false)
            try again.eduDMA(from: Edu.buffer, to: Self.base + 2048, count: 64, toRAM: true)
            #expect(Array(buffer.bytes[2048..<2112]) == Array(buffer.bytes[0..<64]))
            // Back in a container with an IOMMU, the first can be given the group again.
            again.descriptor.close()
            try second.remove(group)
            try first.add(group)
            try first.map(buffer, offset: 0, size: buffer.size, iova: Self.base, access: .readWrite)
            try first.unmap(iova: Self.base, size: Self.page)
        }
    }

    @Test func unmapAllFreesEveryIOVA() async throws {
        try await withContainerEdu { edu, container, group in
            #expect(try container.checkExtension(.type1v2))
            #expect(try group.status().flags.contains([.viable, .containerSet]))
            #expect(try container.info().iovaPageSizes & 4096 != 0)
            let a = try DMABuffer(size: 4096 * 4)
            let b = try DMABuffer(size: 4096)
            let ia = try edu.mapDMA(a, limit: Edu.dmaLimit)
            let ib = try edu.mapDMA(b, limit: Edu.dmaLimit)
            #expect(try container.checkExtension(.unmapAll))
            try container.unmapAll()
            // Both IOVAs are free again.
            try edu.mapDMA(a, offset: 0, size: a.size, iova: ia, access: .readWrite)
            try edu.mapDMA(b, offset: 0, size: b.size, iova: ib, access: .readWrite)
            try container.unmapAll()
        }
    }

    /// `VFIO_UPDATE_VADDR` is answered by the container's own type1 backend only (0 before
    /// the first group sets it, since Linux 6.3 and in Debian's 6.1), then 1 without
    /// mediated devices; invalidate and update then keep the pages mapped.
    @Test func vaddrUpdateIsOfferedOnceTheIOMMUIsSetAndReachesTheNewMemory() async throws {
        let fresh = try VFIOContainer()
        let before = try fresh.checkExtension(.updateVaddr)
        print("VFIO_UPDATE_VADDR before the first group: \(before)")
        #expect(!before)
        try await withContainerEdu(fresh) { edu, container, _ in
            #expect(try container.checkExtension(.updateVaddr))
            try edu.enableBusMaster()
            let buffer = try DMABuffer(size: 4096)
            let iova = try edu.mapDMA(buffer, limit: Edu.dmaLimit)
            // An update of a mapping whose address is still valid: EINVAL.
            #expect(throws: VFIOError.errno("VFIO_IOMMU_MAP_DMA", EINVAL)) { try container.updateVaddr(buffer, size: 4096, iova: iova) }
            try container.invalidateVaddr(iova: iova, size: 4096)
            // The pages stay pinned and mapped; the new virtual address must reach the same
            // memory (here a second mapping of the buffer's memfd).
            let view = try SecondMapping(of: buffer)
            try container.updateVaddr(view, size: 4096, iova: iova)
            for i in 0..<64 { view.bytes[i] = UInt8(i + 1) }
            try edu.eduDMA(from: iova, to: Edu.buffer, count: 64, toRAM: false)
            try edu.eduDMA(from: Edu.buffer, to: iova + 1024, count: 64, toRAM: true)
            #expect(Array(view.bytes[1024..<1088]) == (1...64).map { UInt8($0) })
            #expect(Array(buffer.bytes[1024..<1088]) == (1...64).map { UInt8($0) })
            // No mapping at that IOVA: ENOENT.
            #expect(throws: VFIOError.errno("VFIO_IOMMU_MAP_DMA", ENOENT)) { try container.updateVaddr(view, size: 4096, iova: iova + 0x100_0000) }
            try edu.unmapDMA(iova: iova, size: 4096)
        }
    }
}
