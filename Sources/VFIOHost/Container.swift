import CVFIO
import Glibc
import Synchronization
import VFIO
import VFIOSystem

/// A VFIO group (`/dev/vfio/N`), attached to a container.
public final class VFIOGroup: Sendable {
    /// The IOMMU group number.
    public let number: Int
    public let descriptor: OwnedDescriptor
    let ioctl: Ioctl

    init(number: Int, descriptor: OwnedDescriptor, ioctl: Ioctl) {
        self.number = number
        self.descriptor = descriptor
        self.ioctl = ioctl
    }

    /// `VFIO_GROUP_GET_STATUS`.
    public func status() throws(VFIOError) -> GroupStatus {
        var bytes = GroupStatus().encoded()
        try ioctl.call("VFIO_GROUP_GET_STATUS", try descriptor.requireOpen("VFIO_GROUP_GET_STATUS"), CVFIO_VFIO_GROUP_GET_STATUS, &bytes)
        return try GroupStatus(decoding: bytes)
    }

    /// `VFIO_GROUP_GET_DEVICE_FD` for the device named `name` (its PCI address).
    public func openDevice(_ name: String) throws(VFIOError) -> OwnedDescriptor {
        var bytes = Array(name.utf8) + [0]
        let fd = try ioctl.call("VFIO_GROUP_GET_DEVICE_FD", try descriptor.requireOpen("VFIO_GROUP_GET_DEVICE_FD"), CVFIO_VFIO_GROUP_GET_DEVICE_FD, &bytes)
        return OwnedDescriptor(fd)
    }
}

/// A legacy VFIO container (`/dev/vfio/vfio`) with the type1v2 IOMMU: holds one or more
/// groups, and their devices share its DMA mappings.
public final class VFIOContainer: DMASpace {
    public let descriptor: OwnedDescriptor
    let ioctl: Ioctl
    private struct State: Sendable {
        var groups: [Int: VFIOGroup] = [:]
        var iommuSet = false
        var book = DMABookkeeping()
    }
    private let state = Mutex(State())

    /// Opens a container and checks the API version and type1v2 support.
    /// - Throws: `VFIO_GET_API_VERSION` errors or `.unsupported` for another version;
    ///   `.unsupported` without `VFIO_TYPE1v2_IOMMU`; `open` errors (`ENOENT` without vfio).
    public init(system: HostSystem = .live, path: String = "/dev/vfio/vfio") throws(VFIOError) {
        ioctl = Ioctl(system: system)
        descriptor = OwnedDescriptor(try ioctl.open(path))
        let version = try ioctl.call("VFIO_GET_API_VERSION", descriptor.raw, CVFIO_VFIO_GET_API_VERSION)
        guard version == CVFIO_VFIO_API_VERSION else {
            throw .unsupported("VFIO_GET_API_VERSION", "the kernel speaks VFIO API version \(version), this library \(CVFIO_VFIO_API_VERSION)")
        }
        guard try checkExtension(.type1v2) else {
            throw .unsupported("VFIO_CHECK_EXTENSION", "the kernel offers no VFIO_TYPE1v2_IOMMU")
        }
    }

    /// `VFIO_CHECK_EXTENSION`.
    public func checkExtension(_ ext: ContainerExtension) throws(VFIOError) -> Bool {
        try ioctl.call("VFIO_CHECK_EXTENSION", try descriptor.requireOpen("VFIO_CHECK_EXTENSION"), CVFIO_VFIO_CHECK_EXTENSION, value: UInt(ext.rawValue)) > 0
    }

    /// The group `number`, opened and attached to this container on first use (the first
    /// group also sets the type1v2 IOMMU).
    /// - Throws: `.unsupported` when the group is not viable (a device in it is bound to a
    ///   host driver); `EBUSY` when another process or container holds it.
    public func group(_ number: Int) throws(VFIOError) -> VFIOGroup {
        let fd = try descriptor.requireOpen("VFIO_GROUP_SET_CONTAINER")
        return try state.withLock { (state: inout State) throws(VFIOError) -> VFIOGroup in
            if let group = state.groups[number] { return group }
            let group = VFIOGroup(number: number, descriptor: OwnedDescriptor(try ioctl.open("/dev/vfio/\(number)")), ioctl: ioctl)
            let status = try group.status()
            guard status.flags.contains(.viable) else {
                throw .unsupported("VFIO_GROUP_GET_STATUS", "IOMMU group \(number) is not viable: bind every device in it to vfio-pci (or unbind it)")
            }
            var container = [UInt8](repeating: 0, count: 4)
            withUnsafeBytes(of: fd.littleEndian) { for i in 0..<4 { container[i] = $0[i] } }
            try ioctl.call("VFIO_GROUP_SET_CONTAINER", group.descriptor.raw, CVFIO_VFIO_GROUP_SET_CONTAINER, &container)
            if !state.iommuSet {
                try ioctl.call("VFIO_SET_IOMMU", fd, CVFIO_VFIO_SET_IOMMU, value: UInt(ContainerExtension.type1v2.rawValue))
                state.iommuSet = true
            }
            state.groups[number] = group
            return group
        }
    }

    /// The groups attached so far.
    public var groups: [VFIOGroup] { state.withLock { Array($0.groups.values) } }

    /// `VFIO_IOMMU_GET_INFO` (after the first group), capability chain included.
    public func info() throws(VFIOError) -> Type1Info {
        let reply = try ioctl.query("VFIO_IOMMU_GET_INFO", try descriptor.requireOpen("VFIO_IOMMU_GET_INFO"), CVFIO_VFIO_IOMMU_GET_INFO, Type1Info.request())
        return try Type1Info(decoding: reply)
    }

    public func validIOVARanges() throws(VFIOError) -> [IOVARange] {
        let info = try info()
        for capability in info.capabilities {
            if case .iovaRanges(let ranges) = capability {
                var result: [IOVARange] = []
                for range in ranges { result.append(try IOVARange(start: range.start, last: range.end)) }
                return result
            }
        }
        return [try IOVARange(start: 0, last: .max)]
    }

    public func map(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError) {
        let vaddr = try dmaAddress(memory, offset: offset, size: size, operation: "VFIO_IOMMU_MAP_DMA")
        var flags: Type1DMAMapFlags = []
        if access.contains(.read) { flags.insert(.read) }
        if access.contains(.write) { flags.insert(.write) }
        let request = Type1DMAMap(flags: flags, vaddr: vaddr, iova: iova, size: UInt64(size))
        try request.validate()
        var bytes = request.encoded()
        let fd = try descriptor.requireOpen("VFIO_IOMMU_MAP_DMA")
        try state.withLock { (state: inout State) throws(VFIOError) in
            try ioctl.call("VFIO_IOMMU_MAP_DMA", fd, CVFIO_VFIO_IOMMU_MAP_DMA, &bytes)
            state.book.mappings[iova] = .init(memory: memory, size: UInt64(size))
            try? state.book.allocator?.reserve(iova: iova, size: UInt64(size))
        }
    }

    public func map(_ memory: any DMAMemory, offset: Int, size: Int, access: DMAAccess, alignment: UInt64, limit: UInt64) throws(VFIOError) -> UInt64 {
        let iova = try allocateIOVA(size: UInt64(size), alignment: alignment, limit: limit)
        do {
            try map(memory, offset: offset, size: size, iova: iova, access: access)
        } catch {
            state.withLock { $0.book.allocator?.release(iova: iova) }
            throw error
        }
        return iova
    }

    /// Reserves an IOVA range inside the valid ranges without mapping it.
    public func allocateIOVA(size: UInt64, alignment: UInt64 = 4096, limit: UInt64 = .max) throws(VFIOError) -> UInt64 {
        let ranges = try state.withLock { $0.book.allocator } == nil ? validIOVARanges() : []
        return try state.withLock { (state: inout State) throws(VFIOError) -> UInt64 in
            if state.book.allocator == nil { state.book.allocator = try IOVAAllocator(validRanges: ranges) }
            return try state.book.allocator!.allocate(size: size, alignment: alignment, limit: limit)
        }
    }

    public func unmap(iova: UInt64, size: UInt64) throws(VFIOError) {
        try unmap(Type1DMAUnmap(iova: iova, size: size)) { $0.forget(iova: iova, size: size) }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_ALL` (needs `VFIO_UNMAP_ALL`).
    public func unmapAll() throws(VFIOError) {
        try unmap(Type1DMAUnmap(flags: .all, iova: 0, size: 0)) { $0.forgetAll() }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_VADDR`: keeps the mappings at
    /// `[iova, iova + size)` but invalidates their virtual addresses, so the memory can be
    /// replaced (live update); DMA to them blocks until `updateVaddr`. Needs `VFIO_UPDATE_VADDR`.
    public func invalidateVaddr(iova: UInt64, size: UInt64) throws(VFIOError) {
        try unmap(Type1DMAUnmap(flags: .vaddr, iova: iova, size: size)) { _ in }
    }

    /// `VFIO_IOMMU_MAP_DMA` with `VFIO_DMA_MAP_FLAG_VADDR`: gives the mapping at `iova`,
    /// invalidated by `invalidateVaddr`, its new memory.
    public func updateVaddr(_ memory: any DMAMemory, offset: Int = 0, size: Int, iova: UInt64) throws(VFIOError) {
        let vaddr = try dmaAddress(memory, offset: offset, size: size, operation: "VFIO_IOMMU_MAP_DMA")
        var bytes = Type1DMAMap(flags: .vaddr, vaddr: vaddr, iova: iova, size: UInt64(size)).encoded()
        let fd = try descriptor.requireOpen("VFIO_IOMMU_MAP_DMA")
        try state.withLock { (state: inout State) throws(VFIOError) in
            try ioctl.call("VFIO_IOMMU_MAP_DMA", fd, CVFIO_VFIO_IOMMU_MAP_DMA, &bytes)
            if state.book.mappings[iova] != nil { state.book.mappings[iova]!.memory = memory }
        }
    }

    private func unmap(_ request: Type1DMAUnmap, forget: (inout DMABookkeeping) -> Void) throws(VFIOError) {
        try request.validate()
        var bytes = request.encoded()
        let fd = try descriptor.requireOpen("VFIO_IOMMU_UNMAP_DMA")
        try state.withLock { (state: inout State) throws(VFIOError) in
            try ioctl.call("VFIO_IOMMU_UNMAP_DMA", fd, CVFIO_VFIO_IOMMU_UNMAP_DMA, &bytes)
            forget(&state.book)
        }
    }

    // MARK: Dirty-page logging (type1)

    /// `VFIO_IOMMU_DIRTY_PAGES` with `VFIO_IOMMU_DIRTY_PAGES_FLAG_START`.
    public func startDirtyTracking() throws(VFIOError) {
        var bytes = Type1DirtyPages(.start).encoded()
        try ioctl.call("VFIO_IOMMU_DIRTY_PAGES", try descriptor.requireOpen("VFIO_IOMMU_DIRTY_PAGES"), CVFIO_VFIO_IOMMU_DIRTY_PAGES, &bytes)
    }

    /// `VFIO_IOMMU_DIRTY_PAGES` with `VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP`.
    public func stopDirtyTracking() throws(VFIOError) {
        var bytes = Type1DirtyPages(.stop).encoded()
        try ioctl.call("VFIO_IOMMU_DIRTY_PAGES", try descriptor.requireOpen("VFIO_IOMMU_DIRTY_PAGES"), CVFIO_VFIO_IOMMU_DIRTY_PAGES, &bytes)
    }

    /// `VFIO_IOMMU_DIRTY_PAGES` with `VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP` for
    /// `[iova, iova + size)` (which must cover whole mappings) at `pageSize` granularity:
    /// one bit per page, little-endian 64-bit words, cleared as read.
    public func dirtyBitmap(iova: UInt64, size: UInt64, pageSize: UInt64 = 4096) throws(VFIOError) -> [UInt8] {
        guard pageSize > 0, pageSize & (pageSize - 1) == 0 else {
            throw .invalidArgument("VFIO_IOMMU_DIRTY_PAGES", "page size \(pageSize) is not a power of two")
        }
        let count = Int(Type1Bitmap.requiredSize(forLength: size, pageSize: pageSize))
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(count, 8), alignment: 8)
        defer { storage.deallocate() }
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 8))
        let bitmap = Type1Bitmap(pageSize: pageSize, size: UInt64(count), data: UInt64(UInt(bitPattern: storage)))
        var bytes = Type1DirtyPages(.getBitmap(Type1DirtyBitmapRange(iova: iova, size: size, bitmap: bitmap))).encoded()
        try ioctl.call("VFIO_IOMMU_DIRTY_PAGES", try descriptor.requireOpen("VFIO_IOMMU_DIRTY_PAGES"), CVFIO_VFIO_IOMMU_DIRTY_PAGES, &bytes)
        return Array(UnsafeRawBufferPointer(start: storage, count: count))
    }
}
