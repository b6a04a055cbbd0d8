import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// A VFIO group (`/dev/vfio/N`, or `/dev/vfio/noiommu-N` for a device without an IOMMU),
/// opened by a container. A group file opens once system-wide (`EBUSY` for a second open).
public final class VFIOGroup: Sendable {
    /// The IOMMU group number.
    public let number: Int
    /// Whether this is a no-IOMMU group (`/dev/vfio/noiommu-N`).
    public let isNoIOMMU: Bool
    public let descriptor: OwnedDescriptor
    let ioctl: Ioctl

    init(number: Int, isNoIOMMU: Bool = false, descriptor: OwnedDescriptor, ioctl: Ioctl) {
        self.number = number
        self.isNoIOMMU = isNoIOMMU
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
    /// - Throws: `EINVAL` while the group is in no container (or its container has no
    ///   IOMMU set); `ENODEV` for no such device in the group; `EPERM` for a no-IOMMU
    ///   group without `CAP_SYS_RAWIO`.
    public func openDevice(_ name: String) throws(VFIOError) -> OwnedDescriptor {
        var bytes = Array(name.utf8) + [0]
        let fd = try ioctl.call("VFIO_GROUP_GET_DEVICE_FD", try descriptor.requireOpen("VFIO_GROUP_GET_DEVICE_FD"), CVFIO_VFIO_GROUP_GET_DEVICE_FD, &bytes)
        return OwnedDescriptor(fd)
    }
}

/// A legacy VFIO container (`/dev/vfio/vfio`): holds one or more groups, and their devices
/// share its DMA mappings. Its IOMMU model (`ContainerIOMMUModel`: type1v2 by default,
/// type1, or no-IOMMU) is chosen when it is made and set (`VFIO_SET_IOMMU`) with the
/// first group.
///
/// A no-IOMMU container maps nothing: `map`, `unmap`, `info` and the IOVA ranges throw
/// `.unsupported` without reaching the kernel, and the device is given physical addresses
/// (`PhysicalDMAMemory`). See `ContainerIOMMUModel.noIOMMU` for what that mode costs.
public final class VFIOContainer: DMASpace {
    public let descriptor: OwnedDescriptor
    /// The IOMMU model the container sets with its first group.
    public let model: ContainerIOMMUModel
    let ioctl: Ioctl
    struct State: Sendable {
        var groups: [Int: VFIOGroup] = [:]
        var iommuSet = false
        var book = DMABookkeeping()
    }
    let state = Monitor(State())

    /// Opens a container and checks the API version and that the kernel offers `model`.
    /// - Throws: `VFIO_GET_API_VERSION` errors or `.unsupported` for another version;
    ///   `.unsupported` when `VFIO_CHECK_EXTENSION` denies the model (for no-IOMMU: the
    ///   kernel lacks `CONFIG_VFIO_NOIOMMU` or `enable_unsafe_noiommu_mode` is off);
    ///   `open` errors (`ENOENT` without vfio).
    public init(system: HostSystem = .live, path: String = "/dev/vfio/vfio", model: ContainerIOMMUModel = .type1v2) throws(VFIOError) {
        ioctl = Ioctl(system: system)
        descriptor = OwnedDescriptor(try ioctl.open(path))
        self.model = model
        let version = try ioctl.call("VFIO_GET_API_VERSION", descriptor.raw, CVFIO_VFIO_GET_API_VERSION)
        guard version == CVFIO_VFIO_API_VERSION else {
            throw .unsupported("VFIO_GET_API_VERSION", "the kernel speaks VFIO API version \(version), this library \(CVFIO_VFIO_API_VERSION)")
        }
        guard try checkExtension(model.containerExtension) else {
            if model == .noIOMMU { throw .unsupported("VFIO_CHECK_EXTENSION", NoIOMMU.notEnabledText) }
            throw .unsupported("VFIO_CHECK_EXTENSION", "the kernel offers no \(model.cName)")
        }
    }

    /// A container for IOMMU group `number`: no-IOMMU when the group is a no-IOMMU group
    /// (`/dev/vfio/noiommu-N` exists), else type1v2. `HostDevice` opens groups this way.
    public static func forGroup(_ number: Int, system: HostSystem = .live) throws(VFIOError) -> VFIOContainer {
        try VFIOContainer(system: system, model: NoIOMMU.isNoIOMMUGroup(number) ? .noIOMMU : .type1v2)
    }

    /// `VFIO_CHECK_EXTENSION`. Before the first group it asks every IOMMU backend the
    /// kernel has; after it, only the container's own (a no-IOMMU container then answers
    /// only for `VFIO_NOIOMMU_IOMMU`). `VFIO_UPDATE_VADDR` and `VFIO_DMA_CC_IOMMU` are 0
    /// before the first group.
    public func checkExtension(_ ext: ContainerExtension) throws(VFIOError) -> Bool {
        try ioctl.call("VFIO_CHECK_EXTENSION", try descriptor.requireOpen("VFIO_CHECK_EXTENSION"), CVFIO_VFIO_CHECK_EXTENSION, value: UInt(ext.rawValue)) > 0
    }

    /// The group `number`, opened (`model.groupPath(number)`) and added to this container
    /// on first use (`add`).
    /// - Throws: `.unsupported` when the group is not viable (a device in it is bound to a
    ///   host driver) or, for a no-IOMMU container, when there is no `/dev/vfio/noiommu-N`;
    ///   `EBUSY` when the group is open elsewhere (another container or process);
    ///   `ENOENT` for no such group; `EPERM` for a no-IOMMU group without `CAP_SYS_RAWIO`.
    public func group(_ number: Int) throws(VFIOError) -> VFIOGroup {
        let path = model.groupPath(number)
        return try state.withLock { (state: inout State) throws(VFIOError) -> VFIOGroup in
            if let group = state.groups[number] { return group }
            let fd: Int32
            do throws(VFIOError) {
                fd = try ioctl.open(path)
            } catch {
                if error.errnoValue == ENOENT && model == .noIOMMU {
                    throw .unsupported("open(\(path))", "IOMMU group \(number) is not a no-IOMMU group: \(NoIOMMU.groupsText)")
                }
                throw error
            }
            let group = VFIOGroup(number: number, isNoIOMMU: model == .noIOMMU, descriptor: OwnedDescriptor(fd), ioctl: ioctl)
            try attach(group, &state)
            return group
        }
    }

    /// `VFIO_GROUP_SET_CONTAINER`: adds a group taken out of another container (`remove`)
    /// to this one; the first group also sets the IOMMU (`VFIO_SET_IOMMU` with `model`).
    /// - Throws: `.invalidArgument` for a no-IOMMU group in an IOMMU container or the
    ///   reverse (the kernel would answer `EPERM` or `ENODEV`); `.unsupported` for a group
    ///   that is not viable; `EINVAL` when the group is in a container already; `ENODEV`
    ///   when its device went away. When `VFIO_SET_IOMMU` fails the group is taken out
    ///   again (`VFIO_GROUP_UNSET_CONTAINER`).
    public func add(_ group: VFIOGroup) throws(VFIOError) {
        try state.withLock { (state: inout State) throws(VFIOError) in
            if state.groups[group.number] === group { return }
            try attach(group, &state)
        }
    }

    private func attach(_ group: VFIOGroup, _ state: inout State) throws(VFIOError) {
        let fd = try descriptor.requireOpen("VFIO_GROUP_SET_CONTAINER")
        guard group.isNoIOMMU == (model == .noIOMMU) else {
            throw .invalidArgument("VFIO_GROUP_SET_CONTAINER", group.isNoIOMMU
                ? "IOMMU group \(group.number) is a no-IOMMU group; it needs a no-IOMMU container (ContainerIOMMUModel.noIOMMU)"
                : "IOMMU group \(group.number) has an IOMMU; a no-IOMMU container takes only no-IOMMU groups")
        }
        let status = try group.status()
        guard status.flags.contains(.viable) else {
            throw .unsupported("VFIO_GROUP_GET_STATUS", "IOMMU group \(group.number) is not viable: bind every device in it to vfio-pci (or unbind it)")
        }
        var container = [UInt8](repeating: 0, count: 4)
        withUnsafeBytes(of: fd.littleEndian) { for i in 0..<4 { container[i] = $0[i] } }
        let groupFD = try group.descriptor.requireOpen("VFIO_GROUP_SET_CONTAINER")
        try ioctl.call("VFIO_GROUP_SET_CONTAINER", groupFD, CVFIO_VFIO_GROUP_SET_CONTAINER, &container)
        if !state.iommuSet {
            do {
                try ioctl.call("VFIO_SET_IOMMU", fd, CVFIO_VFIO_SET_IOMMU, value: UInt(model.containerExtension.rawValue))
            } catch {
                _ = try? ioctl.call("VFIO_GROUP_UNSET_CONTAINER", groupFD, CVFIO_VFIO_GROUP_UNSET_CONTAINER)
                throw error
            }
            state.iommuSet = true
        }
        state.groups[group.number] = group
    }

    /// `VFIO_GROUP_UNSET_CONTAINER`: takes `group` out of this container. Its file stays
    /// open (a group opens once), so it can be given to another container with `add`.
    /// When it was the last group, the kernel releases the container's IOMMU: every DMA
    /// mapping is unmapped and unpinned, and the next group sets the IOMMU again; this
    /// container then forgets its mappings and IOVA allocations too.
    /// - Throws: `EBUSY` while a device of the group is open (close it first);
    ///   `.invalidArgument` for a group that is not in this container (the kernel's
    ///   `EINVAL` is for a group in no container; a group in another container would be
    ///   taken out of that one, so this is checked first).
    public func remove(_ group: VFIOGroup) throws(VFIOError) {
        try state.withLock { (state: inout State) throws(VFIOError) in
            guard state.groups[group.number] === group else {
                throw .invalidArgument("VFIO_GROUP_UNSET_CONTAINER", "IOMMU group \(group.number) is not in this container")
            }
            try ioctl.call("VFIO_GROUP_UNSET_CONTAINER", try group.descriptor.requireOpen("VFIO_GROUP_UNSET_CONTAINER"),
                           CVFIO_VFIO_GROUP_UNSET_CONTAINER)
            state.groups[group.number] = nil
            if state.groups.isEmpty {
                state.iommuSet = false
                state.book = DMABookkeeping()
            }
        }
    }

    /// The groups attached so far.
    public var groups: [VFIOGroup] { state.withLock { Array($0.groups.values) } }

    /// Throws the no-IOMMU answer for `operation` on a no-IOMMU container.
    func requireIOMMU(_ operation: String) throws(VFIOError) {
        if model == .noIOMMU { throw .unsupported(operation, NoIOMMU.noMappingText) }
    }

    /// `VFIO_IOMMU_GET_INFO` (after the first group), capability chain included.
    /// - Throws: `.unsupported` on a no-IOMMU container; `EINVAL` before the first group.
    public func info() throws(VFIOError) -> Type1Info {
        try requireIOMMU("VFIO_IOMMU_GET_INFO")
        let reply = try ioctl.query("VFIO_IOMMU_GET_INFO", try descriptor.requireOpen("VFIO_IOMMU_GET_INFO"), CVFIO_VFIO_IOMMU_GET_INFO, Type1Info.request())
        return try Type1Info(decoding: reply)
    }

    /// The IOVA ranges of `VFIO_IOMMU_GET_INFO`'s IOVA-range capability (all of 64 bits
    /// without one). `.unsupported` on a no-IOMMU container.
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

    /// `VFIO_IOMMU_MAP_DMA` of `[offset, offset + size)` of `memory` at `iova`.
    /// - Throws: `.unsupported` on a no-IOMMU container (nothing reaches the kernel);
    ///   `EEXIST` for an IOVA mapped already; `EINVAL` outside the valid ranges; `ENOMEM`
    ///   past `RLIMIT_MEMLOCK`; `ENOSPC` past the kernel's mapping count.
    public func map(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError) {
        try requireIOMMU("VFIO_IOMMU_MAP_DMA")
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
            state.book.record(memory, iova: iova, size: UInt64(size))
        }
    }

    public func map(_ memory: any DMAMemory, offset: Int, size: Int, access: DMAAccess, alignment: UInt64, limit: UInt64) throws(VFIOError) -> UInt64 {
        try requireIOMMU("VFIO_IOMMU_MAP_DMA")
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
        let needsRanges = state.withLock { $0.book.allocator == nil }
        let ranges = needsRanges ? try validIOVARanges() : []
        return try state.withLock { (state: inout State) throws(VFIOError) -> UInt64 in
            if state.book.allocator == nil { state.book.allocator = try IOVAAllocator(validRanges: ranges) }
            return try state.book.allocator!.allocate(size: size, alignment: alignment, limit: limit)
        }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` of `[iova, iova + size)`. On type1v2 the range must not split
    /// a mapping (`EINVAL`); on type1 see `unmapReportingSize`.
    public func unmap(iova: UInt64, size: UInt64) throws(VFIOError) {
        _ = try unmapReportingSize(iova: iova, size: size)
    }

    /// `VFIO_IOMMU_UNMAP_DMA` of `[iova, iova + size)`, returning the bytes the kernel
    /// unmapped (the reply's `size`): the sum of the whole mappings removed, 0 when none
    /// lay in the range. On a type1 (v1) container a range that starts inside a mapping
    /// unmaps nothing and succeeds (0), and one that covers a mapping's first IOVA removes
    /// the whole mapping even past the range's end; type1v2 answers `EINVAL` for both.
    public func unmapReportingSize(iova: UInt64, size: UInt64) throws(VFIOError) -> UInt64 {
        try unmap(Type1DMAUnmap(iova: iova, size: size)) { $0.forget(iova: iova, size: size) }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_ALL` (needs `VFIO_UNMAP_ALL`).
    public func unmapAll() throws(VFIOError) {
        _ = try unmap(Type1DMAUnmap(flags: .all, iova: 0, size: 0)) { $0.forgetAll() }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_VADDR`: keeps the mappings at
    /// `[iova, iova + size)` but invalidates their virtual addresses, so the memory can be
    /// replaced (live update); DMA to them blocks until `updateVaddr`. Needs
    /// `VFIO_UPDATE_VADDR`, which a container answers only once its IOMMU is set, and not
    /// with mediated devices in it.
    public func invalidateVaddr(iova: UInt64, size: UInt64) throws(VFIOError) {
        _ = try unmap(Type1DMAUnmap(flags: .vaddr, iova: iova, size: size)) { _ in }
    }

    /// `VFIO_IOMMU_MAP_DMA` with `VFIO_DMA_MAP_FLAG_VADDR`: gives the mapping at `iova`,
    /// invalidated by `invalidateVaddr`, its new memory.
    /// - Throws: `ENOENT` for no mapping at `iova`; `EINVAL` for one whose address is
    ///   valid or whose range differs.
    public func updateVaddr(_ memory: any DMAMemory, offset: Int = 0, size: Int, iova: UInt64) throws(VFIOError) {
        try requireIOMMU("VFIO_IOMMU_MAP_DMA")
        let vaddr = try dmaAddress(memory, offset: offset, size: size, operation: "VFIO_IOMMU_MAP_DMA")
        var bytes = Type1DMAMap(flags: .vaddr, vaddr: vaddr, iova: iova, size: UInt64(size)).encoded()
        let fd = try descriptor.requireOpen("VFIO_IOMMU_MAP_DMA")
        try state.withLock { (state: inout State) throws(VFIOError) in
            try ioctl.call("VFIO_IOMMU_MAP_DMA", fd, CVFIO_VFIO_IOMMU_MAP_DMA, &bytes)
            if state.book.mappings[iova] != nil { state.book.mappings[iova]!.memory = memory }
        }
    }

    /// Issues `request` and, on success, updates the bookkeeping; returns the reply's size.
    func unmap(_ request: Type1DMAUnmap, forget: (inout DMABookkeeping) -> Void) throws(VFIOError) -> UInt64 {
        try requireIOMMU("VFIO_IOMMU_UNMAP_DMA")
        try request.validate()
        var bytes = request.encoded()
        let fd = try descriptor.requireOpen("VFIO_IOMMU_UNMAP_DMA")
        try state.withLock { (state: inout State) throws(VFIOError) in
            try ioctl.call("VFIO_IOMMU_UNMAP_DMA", fd, CVFIO_VFIO_IOMMU_UNMAP_DMA, &bytes)
            forget(&state.book)
        }
        var reader = ByteReader(bytes)
        reader.offset = 16
        return try reader.u64()
    }
}
