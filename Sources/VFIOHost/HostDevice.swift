import CVFIO
import Glibc
import Synchronization
import VFIO
import VFIOSystem

/// A device bound to a VFIO driver in this kernel, opened through the legacy container
/// and group or through its cdev and iommufd. Conforms to the user-side `VFIODevice`.
///
/// Every descriptor (device, group, container, iommufd) and mapping is released when the
/// last reference goes away; a failure while opening releases what was opened so far.
public final class HostDevice: VFIODevice {
    /// How a device is reached.
    public enum Access: String, Sendable, CaseIterable {
        /// The cdev and iommufd when the kernel offers both (`/dev/iommu` and the device's
        /// `/dev/vfio/devices/vfioN`), else the container and group.
        case automatic
        /// `/dev/vfio/vfio` and `/dev/vfio/N`, type1v2 (no-IOMMU for `/dev/vfio/noiommu-N`).
        case container
        /// `/dev/vfio/devices/vfioN` bound to `/dev/iommu`.
        case iommufd
    }

    /// What the device is bound through.
    public enum Binding: Sendable {
        case group(VFIOContainer, VFIOGroup)
        case iommufd(IOMMUFD, deviceID: UInt32)
    }

    public let name: String
    /// The PCI address, when known.
    public let address: String?
    public let descriptor: OwnedDescriptor
    public let binding: Binding
    let ioctl: Ioctl
    private struct State: Sendable {
        var space: (any DMASpace)?
        var regions: [UInt32: RegionInfo] = [:]
        var info: DeviceInfo?
        /// iommufd: the HWPT attached (kept alive while attached; `descriptor`, declared
        /// first, closes before it is released, so its `IOMMU_DESTROY` finds it free) and
        /// the `pt_id` the kernel reported for the attachment.
        var hwpt: HWPT?
        var pageTableID: UInt32?
    }
    private let state: Mutex<State>
    /// The descriptor and mappings `release()` gives up (DeviceRelease.swift).
    let releaseState: DeviceRelease

    /// Wraps an open device descriptor (for custom setups and tests); `space` is where its
    /// DMA goes (the container, or the IOAS it is attached to).
    public init(name: String, address: String?, descriptor: OwnedDescriptor, binding: Binding, space: (any DMASpace)?, system: HostSystem = .live) {
        self.name = name
        self.address = address
        self.descriptor = descriptor
        self.binding = binding
        self.ioctl = Ioctl(system: system)
        self.state = Mutex(State(space: space))
        self.releaseState = DeviceRelease(descriptor: descriptor)
    }

    /// The descriptor closes here, before the DMA space (IOAS, HWPT, container) goes: the
    /// kernel detaches the device first, so a HWPT it held can be destroyed.
    deinit { releaseState.deviceGone() }

    // MARK: Opening

    /// Opens the PCI device at `address` (bound to vfio-pci).
    /// - Parameters:
    ///   - container: a container to add the device's group to (several groups share one);
    ///     a new one when nil (container access only).
    ///   - ioas: an IOAS to attach to (devices share it); a new iommufd and IOAS when nil
    ///     (iommufd access only).
    /// - Throws: `ENOENT` for no such device; `.unsupported` for a device without an IOMMU
    ///   group, a non-viable group, or `.iommufd` where the kernel has no cdev or iommufd.
    public static func open(pciAddress address: String, access: Access = .automatic, sysfs: Sysfs = Sysfs(),
                            system: HostSystem = .live, container: VFIOContainer? = nil, ioas: IOAS? = nil) throws(VFIOError) -> HostDevice {
        let record = try sysfs.pciDevice(address)
        var chosen = access
        if access == .automatic {
            if let cdev = record.cdevPath, Sysfs.exists("/dev/iommu"), Sysfs.exists(cdev), container == nil {
                _ = cdev
                chosen = .iommufd
            } else {
                chosen = ioas == nil ? .container : .iommufd
            }
        }
        switch chosen {
        case .iommufd:
            guard let cdev = record.cdevPath else {
                throw .unsupported("open \(address)", "the device has no VFIO cdev (needs CONFIG_VFIO_DEVICE_CDEV and a vfio driver)")
            }
            return try openCdev(cdev, name: address, address: address, system: system, ioas: ioas)
        default:
            guard let group = record.iommuGroup else {
                throw .unsupported("open \(address)", "the device is in no IOMMU group (is the IOMMU on?)")
            }
            return try openInGroup(group, deviceName: address, address: address, name: address, system: system, container: container)
        }
    }

    /// Opens a mediated device (e.g. the kernel's `mtty` sample) by its UUID: through
    /// its group (`/sys/bus/mdev/devices/UUID/iommu_group`, an emulated-IOMMU group;
    /// `VFIO_GROUP_GET_DEVICE_FD` takes the UUID) or its cdev
    /// (`/sys/bus/mdev/devices/UUID/vfio-dev/vfioN`), as `open(pciAddress:)` chooses.
    /// The device's `name` is the UUID, its `address` nil.
    /// - Throws: `ENOENT` for no such mdev; `.unsupported` as `open(pciAddress:)`.
    public static func open(mdev uuid: String, access: Access = .automatic, sysfs: Sysfs = Sysfs(),
                            system: HostSystem = .live, container: VFIOContainer? = nil, ioas: IOAS? = nil) throws(VFIOError) -> HostDevice {
        let record = try sysfs.mdevDevice(uuid)
        var chosen = access
        if access == .automatic {
            if let cdev = record.cdevPath, Sysfs.exists("/dev/iommu"), Sysfs.exists(cdev), container == nil {
                chosen = .iommufd
            } else {
                chosen = ioas == nil ? .container : .iommufd
            }
        }
        switch chosen {
        case .iommufd:
            guard let cdev = record.cdevPath else {
                throw .unsupported("open mdev \(record.uuid)", "the device has no VFIO cdev (needs CONFIG_VFIO_DEVICE_CDEV)")
            }
            return try openCdev(cdev, name: record.uuid, address: nil, system: system, ioas: ioas)
        default:
            guard let group = record.iommuGroup else {
                throw .unsupported("open mdev \(record.uuid)", "the device is in no IOMMU group")
            }
            return try openInGroup(group, deviceName: record.uuid, address: nil, name: record.uuid, system: system, container: container)
        }
    }

    /// Opens a device by path: a group (`/dev/vfio/N`: its first PCI device, else its
    /// first mediated device) or a cdev (`/dev/vfio/devices/vfioN`, PCI or mediated).
    public static func open(path: String, sysfs: Sysfs = Sysfs(), system: HostSystem = .live,
                            container: VFIOContainer? = nil, ioas: IOAS? = nil) throws(VFIOError) -> HostDevice {
        let last = String(path.split(separator: "/").last ?? "")
        if path.hasPrefix("/dev/vfio/devices/") {
            // The cdev's device is a PCI address or, for an mdev, its UUID (no address).
            let address = (try? sysfs.addressOfCdev(last)).flatMap { sysfs.isMdev($0) ? nil : $0 }
            return try openCdev(path, name: path, address: address, system: system, ioas: ioas)
        }
        guard let number = Int(last.hasPrefix("noiommu-") ? String(last.dropFirst("noiommu-".count)) : last) else {
            throw .invalidArgument("open \(path)", "not a VFIO group (/dev/vfio/N, /dev/vfio/noiommu-N) or device cdev (/dev/vfio/devices/vfioN)")
        }
        let group = try sysfs.iommuGroup(number)
        if let address = group.deviceAddresses.first(where: { (try? sysfs.pciDevice($0)) != nil }) {
            return try openInGroup(number, deviceName: address, address: address, name: path, system: system, container: container)
        }
        if let uuid = group.deviceAddresses.first(where: { sysfs.isMdev($0) }) {
            return try openInGroup(number, deviceName: uuid, address: nil, name: path, system: system, container: container)
        }
        throw .errno("open \(path): IOMMU group \(number) has no PCI or mediated device", ENODEV)
    }

    /// Opens `deviceName` (a PCI address or an mdev UUID) in group `number`.
    static func openInGroup(_ number: Int, deviceName: String, address: String?, name: String, system: HostSystem,
                            container given: VFIOContainer?) throws(VFIOError) -> HostDevice {
        let container: VFIOContainer
        // A no-IOMMU group (/dev/vfio/noiommu-N) needs a no-IOMMU container.
        if let given { container = given } else { container = try VFIOContainer.forGroup(number, system: system) }
        let group = try container.group(number)
        let fd = try group.openDevice(deviceName)
        return HostDevice(name: name, address: address, descriptor: fd, binding: .group(container, group), space: container, system: system)
    }

    static func openCdev(_ path: String, name: String, address: String?, system: HostSystem, ioas given: IOAS?) throws(VFIOError) -> HostDevice {
        let ioctl = Ioctl(system: system)
        let iommufd: IOMMUFD
        if let given { iommufd = given.iommufd } else { iommufd = try IOMMUFD(system: system) }
        let fd = OwnedDescriptor(try ioctl.open(path))
        var bind = BindIOMMUFD(iommufd: iommufd.descriptor.raw).encoded()
        try ioctl.call("VFIO_DEVICE_BIND_IOMMUFD", fd.raw, CVFIO_VFIO_DEVICE_BIND_IOMMUFD, &bind)
        let deviceID = try BindIOMMUFD(decoding: bind).outDeviceID
        let device = HostDevice(name: name, address: address, descriptor: fd, binding: .iommufd(iommufd, deviceID: deviceID), space: nil, system: system)
        if let given { try device.attach(given) } else { try device.attach(try iommufd.allocateIOAS()) }
        return device
    }

    // MARK: iommufd attachment

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`: attaches the device to `ioas`, or, when attached
    /// already (to an IOAS or a HWPT), replaces its page table with `ioas` atomically
    /// (cdev only). Returns the `pt_id` the kernel wrote back: the HWPT the device now
    /// uses, for an IOAS the domain the kernel allocated or shared for it.
    /// - Throws: `.unsupported` for a device opened through a group or bound to another
    ///   iommufd; `ENOENT` for a destroyed IOAS.
    @discardableResult
    public func attach(_ ioas: IOAS) throws(VFIOError) -> UInt32 {
        try attachPageTable(ioas.id, of: ioas.iommufd, space: ioas, hwpt: nil)
    }

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` with a HWPT (`IOMMU_HWPT_ALLOC`): attaches the
    /// device to it, or replaces its IOAS or HWPT with it atomically; its DMA then goes
    /// through the HWPT's IOAS. The device keeps the HWPT alive until detached or
    /// replaced. Returns the `pt_id` the kernel wrote back (the HWPT's id).
    /// - Throws: `.unsupported` as `attach(_: IOAS)`; `EINVAL` when the device's IOMMU
    ///   cannot use that domain.
    @discardableResult
    public func attach(_ hwpt: HWPT) throws(VFIOError) -> UInt32 {
        try attachPageTable(hwpt.id, of: hwpt.iommufd, space: hwpt.ioas, hwpt: hwpt)
    }

    private func attachPageTable(_ id: UInt32, of owner: IOMMUFD, space: IOAS, hwpt: HWPT?) throws(VFIOError) -> UInt32 {
        guard case .iommufd(let iommufd, _) = binding, iommufd === owner else {
            throw .unsupported("VFIO_DEVICE_ATTACH_IOMMUFD_PT", "the device is not bound to this page table's iommufd")
        }
        var bytes = AttachIOMMUFDPageTable(pageTableID: id).encoded()
        let fd = try descriptor.requireOpen("VFIO_DEVICE_ATTACH_IOMMUFD_PT")
        return try state.withLock { (state: inout State) throws(VFIOError) -> UInt32 in
            try ioctl.call("VFIO_DEVICE_ATTACH_IOMMUFD_PT", fd, CVFIO_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &bytes)
            let attached = try AttachIOMMUFDPageTable(decoding: bytes).pageTableID
            state.space = space
            state.hwpt = hwpt
            state.pageTableID = attached
            return attached
        }
    }

    /// `VFIO_DEVICE_DETACH_IOMMUFD_PT`: the device then has no DMA space (cdev only).
    public func detach() throws(VFIOError) {
        guard case .iommufd = binding else {
            throw .unsupported("VFIO_DEVICE_DETACH_IOMMUFD_PT", "the device was opened through a group")
        }
        var bytes = DetachIOMMUFDPageTable().encoded()
        let fd = try descriptor.requireOpen("VFIO_DEVICE_DETACH_IOMMUFD_PT")
        try state.withLock { (state: inout State) throws(VFIOError) in
            try ioctl.call("VFIO_DEVICE_DETACH_IOMMUFD_PT", fd, CVFIO_VFIO_DEVICE_DETACH_IOMMUFD_PT, &bytes)
            state.space = nil
            state.hwpt = nil
            state.pageTableID = nil
        }
    }

    /// The HWPT id the kernel reported at the last attach (nil when detached or opened
    /// through a group).
    public var attachedPageTableID: UInt32? { state.withLock { $0.pageTableID } }

    /// Where the device's DMA goes now: the container, or the attached IOAS.
    /// - Throws: `.unsupported` when detached.
    public func dmaSpace() throws(VFIOError) -> any DMASpace {
        guard let space = state.withLock({ $0.space }) else {
            throw .unsupported("DMA", "the device is attached to no IOAS")
        }
        return space
    }

    /// The access the device was opened with.
    public var access: Access {
        if case .iommufd = binding { return .iommufd }
        return .container
    }

    // MARK: VFIODevice

    public func deviceInfo() throws(VFIOError) -> DeviceInfo {
        let reply = try ioctl.query("VFIO_DEVICE_GET_INFO", try descriptor.requireOpen("VFIO_DEVICE_GET_INFO"), CVFIO_VFIO_DEVICE_GET_INFO, DeviceInfo.query())
        let info = try DeviceInfo(decoding: reply)
        state.withLock { $0.info = info }
        return info
    }

    /// `VFIO_DEVICE_GET_REGION_INFO`, asked first with `argsz` of the bare struct (32) and
    /// again with the size the driver states when the region has capabilities, as QEMU
    /// asks: the kernel's `mbochs` sample refuses a larger first `argsz` with `EINVAL`.
    public func regionInfo(_ index: UInt32) throws(VFIOError) -> RegionInfo {
        let reply = try ioctl.query("VFIO_DEVICE_GET_REGION_INFO", try descriptor.requireOpen("VFIO_DEVICE_GET_REGION_INFO"),
                                    CVFIO_VFIO_DEVICE_GET_REGION_INFO, RegionInfo.query(index: index, capacity: RegionInfo.fixedSize))
        let info = try RegionInfo(decoding: reply)
        state.withLock { $0.regions[index] = info }
        return info
    }

    public func irqInfo(_ index: UInt32) throws(VFIOError) -> IRQInfo {
        var bytes = IRQInfo.query(index: index)
        try ioctl.call("VFIO_DEVICE_GET_IRQ_INFO", try descriptor.requireOpen("VFIO_DEVICE_GET_IRQ_INFO"), CVFIO_VFIO_DEVICE_GET_IRQ_INFO, &bytes)
        return try IRQInfo(decoding: bytes)
    }

    /// The region's info, from the cache filled by the first query.
    func cachedRegion(_ index: UInt32) throws(VFIOError) -> RegionInfo {
        if let info = state.withLock({ $0.regions[index] }) { return info }
        return try regionInfo(index)
    }

    /// The device-fd offset of `[offset, offset + count)` in region `index`, checked.
    func fileOffset(_ operation: String, region index: UInt32, offset: UInt64, count: Int, need flag: RegionInfoFlags) throws(VFIOError) -> Int64 {
        let info = try cachedRegion(index)
        guard info.flags.contains(flag) else {
            throw .unsupported(operation, "region \(index) is not \(flag == .read ? "readable" : "writable")")
        }
        // What the kernel answers for an access past the region: EINVAL.
        guard count >= 0, offset <= info.size, UInt64(count) <= info.size - offset else {
            throw .errno(operation, EINVAL)
        }
        return Int64(bitPattern: info.offset &+ offset)
    }

    public func read(region index: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        var position = try fileOffset("pread", region: index, offset: offset, count: buffer.count, need: .read)
        let fd = try descriptor.requireOpen("pread")
        var done = 0
        while done < buffer.count {
            let got = try SystemCall.retryingNegatedErrno("pread") {
                ioctl.system.pread(fd, UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), position)
            }
            if got == 0 { throw .errno("pread", EIO) }
            done += got
            position += Int64(got)
        }
    }

    public func write(region index: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        var position = try fileOffset("pwrite", region: index, offset: offset, count: buffer.count, need: .write)
        let fd = try descriptor.requireOpen("pwrite")
        var done = 0
        while done < buffer.count {
            let put = try SystemCall.retryingNegatedErrno("pwrite") {
                ioctl.system.pwrite(fd, UnsafeRawBufferPointer(rebasing: buffer[done...]), position)
            }
            if put == 0 { throw .errno("pwrite", EIO) }
            done += put
            position += Int64(put)
        }
    }

    public func mapRegion(_ index: UInt32, offset: UInt64, size: Int) throws(VFIOError) -> any MappedRegion {
        try mapping(region: index, offset: offset, size: size)
    }

    /// `mapRegion` with the concrete type, for `load`/`store`.
    public func mapping(region index: UInt32, offset: UInt64, size: Int) throws(VFIOError) -> DeviceMapping {
        let info = try cachedRegion(index)
        guard info.flags.contains(.mmap) else {
            throw .unsupported("mmap", "region \(index) is not mmap-able (no VFIO_REGION_INFO_FLAG_MMAP)")
        }
        // A range past the region, misaligned, or outside every sparse area: EINVAL, as
        // the kernel's mmap answers.
        guard size > 0, offset <= info.size, UInt64(size) <= info.size - offset else { throw .errno("mmap", EINVAL) }
        let page = UInt64(SystemCall.pageSize)
        guard offset % page == 0, UInt64(size) % page == 0 else { throw .errno("mmap", EINVAL) }
        if let areas = info.sparseMmapAreas {
            let end = offset + UInt64(size)
            guard areas.contains(where: { offset >= $0.offset && end <= $0.offset + $0.size }) else { throw .errno("mmap", EINVAL) }
        }
        return try releaseState.register { () throws(VFIOError) -> DeviceMapping in
            try DeviceMapping(fd: try descriptor.requireOpen("mmap"), fileOffset: info.offset + offset, size: size,
                              regionOffset: offset, readable: info.flags.contains(.read), writable: info.flags.contains(.write))
        }
    }

    /// Maps every mmap-able part of region `index`: its sparse areas, or the whole region.
    public func mapAll(region index: UInt32) throws(VFIOError) -> [DeviceMapping] {
        let info = try cachedRegion(index)
        let areas = info.sparseMmapAreas ?? [SparseMmapArea(offset: 0, size: info.size)]
        var result: [DeviceMapping] = []
        for area in areas where area.size > 0 {
            result.append(try mapping(region: index, offset: area.offset, size: Int(area.size)))
        }
        return result
    }

    public func setIRQs(_ set: IRQSet) throws(VFIOError) {
        var bytes = set.encoded()
        try ioctl.call("VFIO_DEVICE_SET_IRQS", try descriptor.requireOpen("VFIO_DEVICE_SET_IRQS"), CVFIO_VFIO_DEVICE_SET_IRQS, &bytes)
    }

    public func reset() throws(VFIOError) {
        var info: DeviceInfo
        if let cached = state.withLock({ $0.info }) { info = cached } else { info = try deviceInfo() }
        guard info.flags.contains(.reset) else {
            throw .unsupported("VFIO_DEVICE_RESET", "the device offers no reset (no VFIO_DEVICE_FLAGS_RESET)")
        }
        try ioctl.call("VFIO_DEVICE_RESET", try descriptor.requireOpen("VFIO_DEVICE_RESET"), CVFIO_VFIO_DEVICE_RESET)
    }

    /// `VFIO_DEVICE_RESET` without looking at `VFIO_DEVICE_FLAGS_RESET`, for drivers that
    /// answer it without advertising it. The kernel's `mtty` sample is one: its device
    /// flags are PCI only, yet its reset returns the migration state (RESUMING after a
    /// refused stream, ERROR) to RUNNING and drops its data sessions; the serial port's
    /// registers are kept. A driver without a reset answers `ENOTTY`.
    public func resetIgnoringFlags() throws(VFIOError) {
        try ioctl.call("VFIO_DEVICE_RESET", try descriptor.requireOpen("VFIO_DEVICE_RESET"), CVFIO_VFIO_DEVICE_RESET)
    }

    public func feature(_ request: DeviceFeature) throws(VFIOError) -> DeviceFeaturePayload? {
        var bytes = request.encoded()
        try ioctl.call("VFIO_DEVICE_FEATURE", try descriptor.requireOpen("VFIO_DEVICE_FEATURE"), CVFIO_VFIO_DEVICE_FEATURE, &bytes)
        guard case .get(let payload) = request else { return nil }
        return try DeviceFeaturePayload.decode(feature: payload.feature, data: Array(bytes[DeviceFeature.fixedSize...]))
    }

    public func validIOVARanges() throws(VFIOError) -> [IOVARange] {
        try dmaSpace().validIOVARanges()
    }

    public func mapDMA(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError) {
        try dmaSpace().map(memory, offset: offset, size: size, iova: iova, access: access)
    }

    /// Maps `memory` (all of it by default) at an IOVA allocated inside the valid ranges,
    /// aligned to `alignment` (the page size by default), ending at or below `limit` (the
    /// device's DMA reach); returns the IOVA.
    public func mapDMA(_ memory: any DMAMemory, offset: Int = 0, size: Int? = nil, access: DMAAccess = .readWrite,
                       alignment: UInt64 = UInt64(SystemCall.pageSize), limit: UInt64 = .max) throws(VFIOError) -> UInt64 {
        try dmaSpace().map(memory, offset: offset, size: size ?? (memory.size - offset), access: access,
                           alignment: alignment, limit: limit)
    }

    public func unmapDMA(iova: UInt64, size: UInt64) throws(VFIOError) {
        try dmaSpace().unmap(iova: iova, size: size)
    }

    /// Unmaps every DMA mapping of the device's DMA space (shared with other devices in it).
    public func unmapAllDMA() throws(VFIOError) {
        try dmaSpace().unmapAll()
    }

    public func hotResetInfo() throws(VFIOError) -> PCIHotResetInfo {
        let reply = try ioctl.query("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", try descriptor.requireOpen("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO"),
                                    CVFIO_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, PCIHotResetInfo.query(), neededSize: PCIHotResetInfo.neededSize)
        return try PCIHotResetInfo(decoding: reply)
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET`: resets the bus the device is on. Through a group, every
    /// affected group must be open in this device's container (or be passed in `groups`);
    /// through the cdev, every affected device must be bound to the same iommufd.
    public func hotReset(groups extra: [VFIOGroup] = []) throws(VFIOError) {
        let request: PCIHotReset
        switch binding {
        case .iommufd:
            request = .cdev
        case .group(let container, let group):
            var byNumber: [Int: VFIOGroup] = [group.number: group]
            for other in container.groups + extra { byNumber[other.number] = other }
            let info = try hotResetInfo()
            var fds: [Int32] = []
            for number in Set(info.devices.map { Int($0.groupID) }).sorted() {
                guard let other = byNumber[number] else {
                    throw .unsupported("VFIO_DEVICE_PCI_HOT_RESET", "IOMMU group \(number) is affected but not open in this container")
                }
                fds.append(other.descriptor.raw)
            }
            request = PCIHotReset(fds: fds)
        }
        var bytes = request.encoded()
        try ioctl.call("VFIO_DEVICE_PCI_HOT_RESET", try descriptor.requireOpen("VFIO_DEVICE_PCI_HOT_RESET"), CVFIO_VFIO_DEVICE_PCI_HOT_RESET, &bytes)
    }

    public func setIOEventfd(_ ioeventfd: IOEventfd) throws(VFIOError) {
        var bytes = ioeventfd.encoded()
        try ioctl.call("VFIO_DEVICE_IOEVENTFD", try descriptor.requireOpen("VFIO_DEVICE_IOEVENTFD"), CVFIO_VFIO_DEVICE_IOEVENTFD, &bytes)
    }

    // MARK: Interrupt helpers

    /// Triggers of IRQ `index` from `start` become signals on `eventfds` (-1 leaves one unset).
    public func enableInterrupts(_ index: PCIIRQIndex, start: UInt32 = 0, eventfds: [Int32]) throws(VFIOError) {
        try setIRQs(.enableEventfds(index: index.rawValue, start: start, eventfds))
    }

    /// Turns IRQ `index` off (every vector).
    public func disableInterrupts(_ index: PCIIRQIndex) throws(VFIOError) {
        try setIRQs(.disable(index: index.rawValue))
    }

    /// Masks INTx.
    public func maskINTx() throws(VFIOError) { try setIRQs(.maskINTx()) }

    /// Unmasks INTx (after the interrupt was handled; INTx is masked when it fires).
    public func unmaskINTx() throws(VFIOError) { try setIRQs(.unmaskINTx()) }

    /// A signal on `eventfd` unmasks INTx (the resample path a VMM wires to KVM's irqfd);
    /// -1 removes it.
    public func setINTxUnmaskEventfd(_ eventfd: Int32) throws(VFIOError) {
        try setIRQs(IRQSet(index: PCIIRQIndex.intx.rawValue, action: .unmask, data: .eventfds([eventfd])))
    }

    /// The device-fd offset of `offset` in region `index`, for `IOEventfd.offset`.
    public func deviceOffset(region index: UInt32, offset: UInt64) throws(VFIOError) -> UInt64 {
        try cachedRegion(index).offset + offset
    }
}
