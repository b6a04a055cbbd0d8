import VFIO

// VFIODeviceKit: the device side of VFIO.
//
// How a server (the vfio-user server, or an in-process harness) hosts a `DeviceModel`:
//
// 1. Implement `DeviceContext` (thread-safe): `triggerIRQ` writes the eventfd the client
//    gave for (index, vector) with SET_IRQS and drops the signal when there is none;
//    `dmaRead`/`dmaWrite` copy through the client's DMA_MAP'ed memory (mmap of the passed
//    fds; a transfer may span several adjacent maps), or send DMA_READ/DMA_WRITE
//    messages only while no client request is being handled (`EDEADLK` from inside
//    one), and throw `EFAULT` for any unmapped byte (all-or-nothing);
//    `memory(forRegion:)` returns the server's mapping of the memfd it created for a
//    memory-backed region; `afterReply` queues work that runs after the current reply
//    is sent.
// 2. Create a memfd of `size` bytes for every region whose `backing` is `.memory`, map it,
//    and hand its fd out with the region's info; `RegionDescriptor.regionInfo(offset:)`
//    builds the reply (MMAP flag and sparse-mmap capability included).
// 3. Wrap the model in an `AttachedDevice(model:context:)` — it attaches the model to a
//    `TrackingContext` around the server's context (DMA dirty logging; interrupts held
//    while stopped) and builds the `MigrationDriver` of a migratable model — then serve
//    requests from one thread: DEVICE_GET_INFO from
//    `deviceInfo`, GET_REGION_INFO from `regions`, GET_IRQ_INFO from `irqs`,
//    REGION_READ/WRITE through one `DeviceAccess.Route` per region, made once (bounds
//    and flags by `checkAccess`, areas of memory served from it, the rest by callbacks),
//    DEVICE_RESET through `AttachedDevice.reset()`, DEVICE_FEATURE MIGRATION /
//    MIG_DEVICE_STATE / MIG_DATA_SIZE and MIG_DATA_READ / WRITE through
//    `AttachedDevice.migration` (ENOTTY when `nil`), DMA_LOGGING_START / STOP / REPORT
//    through `AttachedDevice.tracker`, SET_IRQS: keep the eventfds and tell the model with
//    `irqsConfigured(index:enabledVectors:)` (TRIGGER with eventfds; 0 when disabled) and
//    `irqMaskChanged` (MASK/UNMASK, e.g. QEMU's INTx unmask at EOI); a TRIGGER with
//    DATA_NONE/BOOL is a loopback the server signals itself; MASK/UNMASK with eventfds
//    are watched, each signal an `irqMaskChanged`. DMA_MAP/UNMAP: update the DMA space,
//    then `dmaMapped`/`dmaUnmapped`. GET_REGION_IO_FDS: an eventfd per
//    `RegionDescriptor.ioEventAreas` entry, watched, each signal an `ioEventSignalled`.
//    DEVICE_FEATURE numbers in `deviceFeatures`: `getFeature`/`setFeature`. A client's
//    arrival and departure: `sessionOpened`/`sessionClosed`; `requestRelease` signals the
//    client's REQ eventfd.
// 4. After each reply, run the work queued with `afterReply`, one item at a time, never
//    concurrently with a model callback (the vfio-user server: on its work thread, with
//    its device lock held).

// MARK: - Errno values

/// The Linux errno values the kit reports inside `VFIOError.errno`. The kit imports no C
/// library (it must stay free of syscalls), so the handful it needs are spelled here; they
/// are the numbers of `<asm-generic/errno-base.h>` / `<asm-generic/errno.h>`.
public enum DeviceErrno {
    public static let EPERM: Int32 = 1
    public static let ENOENT: Int32 = 2
    public static let EIO: Int32 = 5
    public static let E2BIG: Int32 = 7
    public static let ENOMEM: Int32 = 12
    public static let EFAULT: Int32 = 14
    public static let EBUSY: Int32 = 16
    public static let ENODEV: Int32 = 19
    public static let EINVAL: Int32 = 22
    public static let ENOTTY: Int32 = 25
    public static let ENOSPC: Int32 = 28
    public static let EDEADLK: Int32 = 35
    public static let ENOMSG: Int32 = 42
    public static let EOVERFLOW: Int32 = 75
    public static let EOPNOTSUPP: Int32 = 95
}

// MARK: - Regions and IRQs as a model declares them

/// How a region's bytes are served.
public enum RegionBacking: Sendable, Hashable {
    /// Every access goes to the model's `read(region:offset:into:)` /
    /// `write(region:offset:from:)`. Such a region cannot be mmapped.
    case callbacks
    /// The server provides memory for the whole region (a memfd of the region's size, or
    /// plain memory in process); the model reaches it with `DeviceContext.memory(forRegion:)`.
    ///
    /// `mmapAreas` (offsets relative to the region, page-aligned, inside the region) are the
    /// parts the client may `mmap`; they are announced with the sparse-mmap capability
    /// (`VFIO_REGION_INFO_CAP_SPARSE_MMAP`). Reads and writes that lie entirely inside one
    /// area are served by the server straight from the memory, without calling the model
    /// (exactly as a client's mmapped stores bypass it); every other access (register
    /// space, an MSI-X table) goes to the model's callbacks. `DeviceAccess` implements this
    /// routing; a server should use it rather than re-implement it.
    case memory(mmapAreas: [SparseMmapArea])
}

/// One region as the model declares it: what `VFIO_DEVICE_GET_REGION_INFO` describes.
public struct RegionDescriptor: Sendable, Hashable {
    /// The region index (`PCIRegionIndex` numbers for PCI devices).
    public var index: UInt32
    /// The size in bytes; 0 means the region is not implemented (an absent BAR).
    public var size: UInt64
    /// READ / WRITE as the model wants them. `.mmap` and `.caps` are derived from
    /// `backing` by `regionInfo(offset:)`; a model need not set them.
    public var flags: RegionInfoFlags
    public var backing: RegionBacking
    /// Registers a client may turn into ioeventfds (`IOEventArea`; vfio-user's
    /// `VFIO_USER_DEVICE_GET_REGION_IO_FDS`). Empty by default.
    public var ioEventAreas: [IOEventArea]

    public init(index: UInt32, size: UInt64, flags: RegionInfoFlags, backing: RegionBacking = .callbacks,
                ioEventAreas: [IOEventArea] = []) {
        self.index = index
        self.size = size
        self.flags = flags
        self.backing = backing
        self.ioEventAreas = ioEventAreas
    }

    /// An unimplemented region (size 0, no flags).
    public static func absent(_ index: UInt32) -> RegionDescriptor {
        RegionDescriptor(index: index, size: 0, flags: [])
    }

    /// The mmap-able areas (empty for callback regions).
    public var mmapAreas: [SparseMmapArea] {
        if case .memory(let areas) = backing { return areas }
        return []
    }

    /// True when the server must provide memory for this region.
    public var isMemoryBacked: Bool {
        if case .memory = backing { return true }
        return false
    }

    /// The area holding all of `[offset, offset + count)`, if one does.
    public func mmapArea(containing offset: UInt64, count: Int) -> SparseMmapArea? {
        let end = offset.addingReportingOverflow(UInt64(count))
        guard !end.overflow else { return nil }
        return mmapAreas.first { offset >= $0.offset && end.partialValue <= $0.offset + $0.size }
    }

    /// The `vfio_region_info` reply for this region. `offset` is the transport's: the
    /// kernel's `index << 40`, or what a vfio-user server uses as the mmap offset into the
    /// region's file descriptor. `.mmap` and a sparse-mmap capability are added when the
    /// region is memory-backed with at least one area.
    public func regionInfo(offset: UInt64) -> RegionInfo {
        var flags = self.flags.subtracting([.mmap, .caps])
        var capabilities: [RegionInfoCapability] = []
        if size > 0, case .memory(let areas) = backing, !areas.isEmpty {
            flags.insert(.mmap)
            capabilities.append(.sparseMmap(areas))
        }
        return RegionInfo(flags: flags, index: index, size: size, offset: offset, capabilities: capabilities)
    }
}

/// One IRQ index as the model declares it: what `VFIO_DEVICE_GET_IRQ_INFO` describes.
public struct IRQDescriptor: Sendable, Hashable {
    public var index: UInt32
    /// Number of vectors; 0 means the index is not supported.
    public var count: UInt32
    public var flags: IRQInfoFlags

    public init(index: UInt32, count: UInt32, flags: IRQInfoFlags) {
        self.index = index
        self.count = count
        self.flags = flags
    }

    /// The `vfio_irq_info` reply.
    public var irqInfo: IRQInfo { IRQInfo(flags: flags, index: index, count: count) }

    /// vfio-pci's five indices with the flags vfio-pci reports: INTx (eventfd, maskable,
    /// automasked; 1 vector when `intx`), MSI and MSI-X (eventfd, no-resize) with the given
    /// counts, ERR and REQ (eventfd) with the given counts.
    public static func pci(intx: Bool, msiVectors: UInt32, msixVectors: UInt32, err: UInt32 = 0, req: UInt32 = 0) -> [IRQDescriptor] {
        [
            IRQDescriptor(index: PCIIRQIndex.intx.rawValue, count: intx ? 1 : 0, flags: intx ? [.eventfd, .maskable, .automasked] : []),
            IRQDescriptor(index: PCIIRQIndex.msi.rawValue, count: msiVectors, flags: msiVectors > 0 ? [.eventfd, .noResize] : []),
            IRQDescriptor(index: PCIIRQIndex.msix.rawValue, count: msixVectors, flags: msixVectors > 0 ? [.eventfd, .noResize] : []),
            IRQDescriptor(index: PCIIRQIndex.err.rawValue, count: err, flags: err > 0 ? [.eventfd] : []),
            IRQDescriptor(index: PCIIRQIndex.req.rawValue, count: req, flags: req > 0 ? [.eventfd] : []),
        ]
    }
}

/// One interrupt to signal: vector `vector` of IRQ index `index` (for PCI, a `PCIIRQIndex`
/// raw value). The server turns it into a write to the eventfd the client gave for that
/// vector with `VFIO_DEVICE_SET_IRQS`, and drops it when the client gave none.
public struct IRQSignal: Sendable, Hashable, CustomStringConvertible {
    public var index: UInt32
    public var vector: UInt32

    public init(index: UInt32, vector: UInt32) {
        self.index = index
        self.vector = vector
    }

    public var description: String { "irq(\(index).\(vector))" }
}

// MARK: - The device context (implemented by the server)

/// A handle on memory the server provides for a memory-backed region (a mapping of the
/// region's memfd, or plain memory in process). Valid for as long as the model stays
/// attached to the context that returned it. The client may write the mmapped areas at any
/// time, concurrently with the model: treat their contents as untrusted and racy.
public struct RegionMemory: @unchecked Sendable {
    /// The whole region, `size` bytes.
    public let bytes: UnsafeMutableRawBufferPointer

    public init(_ bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }

    public var count: Int { bytes.count }

    /// Copies `[offset, offset + buffer.count)` out of the region.
    /// - Throws: `EFAULT` when the range does not lie inside the region.
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        let start = try check(offset, buffer.count, "RegionMemory.read")
        guard buffer.count > 0 else { return }
        buffer.baseAddress!.copyMemory(from: bytes.baseAddress! + start, byteCount: buffer.count)
    }

    /// Copies `buffer` into the region at `offset`.
    /// - Throws: `EFAULT` when the range does not lie inside the region.
    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        let start = try check(offset, buffer.count, "RegionMemory.write")
        guard buffer.count > 0 else { return }
        (bytes.baseAddress! + start).copyMemory(from: buffer.baseAddress!, byteCount: buffer.count)
    }

    private func check(_ offset: UInt64, _ count: Int, _ operation: String) throws(VFIOError) -> Int {
        guard offset <= UInt64(bytes.count), UInt64(count) <= UInt64(bytes.count) - offset else {
            throw .errno(operation, DeviceErrno.EFAULT)
        }
        return Int(offset)
    }
}

/// What a device model can ask of whoever serves it. The vfio-user server implements it
/// (eventfds, the client's memory, memfds); `InMemoryDeviceContext` implements it for tests
/// and in-process use.
///
/// Every method may be called from any thread (from inside a request handler, from
/// deferred work, or from a thread the model started), so implementations must be
/// thread-safe. None of them calls back into the model.
///
/// **DMA and the reply rule.** A vfio-user client such as QEMU holds its global lock while
/// it waits for the reply to its own request; a DMA_READ/DMA_WRITE message sent by the
/// server during that wait deadlocks. Direct access through the client's mapped memory is
/// safe at any time, message-based DMA is not, and the model cannot know which the server
/// will use. Models therefore never call `dmaRead`/`dmaWrite` synchronously from inside
/// `read`/`write`/`reset`: they queue the transfer with `afterReply`. A server may refuse
/// a message-based DMA attempted while a request is outstanding (`EDEADLK`).
public protocol DeviceContext: AnyObject, Sendable {
    /// Signals vector `vector` of IRQ index `index` (an eventfd write for the server).
    /// Signals for an index or vector the client has not enabled are dropped.
    func triggerIRQ(index: UInt32, vector: UInt32)

    /// Copies client memory at `iova` (a DMA address the client mapped with
    /// `VFIO_IOMMU_MAP_DMA` / `VFIO_USER_DMA_MAP`) into `buffer`. A transfer may span
    /// several adjacent mappings.
    /// - Throws: `VFIOError` with `EFAULT` when any byte of the range is not mapped
    ///   readable; nothing is read then.
    func dmaRead(iova: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError)

    /// Copies `buffer` into client memory at `iova`.
    /// - Throws: `VFIOError` with `EFAULT` when any byte of the range is not mapped
    ///   writable; client memory is not touched then.
    func dmaWrite(iova: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError)

    /// The memory the server provides for memory-backed region `index`, or `nil` when the
    /// region is not memory-backed (or the server has not set it up yet).
    func memory(forRegion index: UInt32) -> RegionMemory?

    /// Runs `work` once the reply to the request being served has been sent; work queued
    /// from outside a request (from a thread the model started) runs as soon as no request
    /// is being handled. Work runs one item at a time and in order, never concurrently
    /// with a model callback, on a thread the server chooses (the vfio-user server's work
    /// thread; the caller of `InMemoryDeviceContext.runDeferredWork()`), and may queue
    /// more work. This is the place for DMA (see above) and anything else that must not
    /// delay the reply.
    func afterReply(_ work: @escaping @Sendable () -> Void)

    /// Asks the client to release the device (the kernel's `vfio_pci_core_request()`, e.g.
    /// before a hot unplug): signals the eventfd the client gave with SET_IRQS for the REQ
    /// index of the device's bus (`DeviceInfoFlags.requestIRQIndex`; QEMU answers by
    /// unplugging the device from its guest). Not held while the device is stopped for
    /// migration: the request is the host's, not the device's.
    /// - Returns: false when nobody was asked (no client, or it set no REQ eventfd).
    ///   Default: false.
    func requestRelease() -> Bool
}

extension DeviceContext {
    public func requestRelease() -> Bool { false }
}

// MARK: - The device model

/// A device served through VFIO: what `struct vfio_device_ops` is to a kernel bus driver.
///
/// **Threading.** The server calls a model's methods from one thread at a time (never two
/// callbacks concurrently, and in the order the client's requests arrived). A model that
/// starts its own work (a thread, a timer) protects the state it shares with that work
/// itself, with `Mutex` from `Synchronization`. The models shipped here keep all their
/// state in one `Mutex` and call the context only after releasing it.
///
/// **Lifecycle.** The server calls `attach(_:)` once before any other call (except reading
/// the descriptive properties), then serves requests; `regions`, `irqs` and `deviceFlags`
/// must not change after `attach`.
///
/// **Migration and dirty logging.** A model that can be migrated returns a
/// `MigratableDevice` from `migration`; the kit's `MigrationDriver` runs the state machine
/// and the data streams for it. Dirty-page logging needs nothing from the model: every
/// DMA write goes through the context, and the `TrackingContext` the kit puts between the
/// model and the server records the pages written (see `AttachedDevice`).
public protocol DeviceModel: AnyObject, Sendable {
    /// `vfio_device_info.flags`: the bus (`.pci`) and `.reset` when `reset()` is supported.
    var deviceFlags: DeviceInfoFlags { get }
    /// Every region, indexed densely: `regions[i].index == i`. Absent regions (unused BARs)
    /// are `RegionDescriptor.absent(i)`.
    var regions: [RegionDescriptor] { get }
    /// Every IRQ index, densely (`irqs[i].index == i`); unsupported ones have count 0.
    var irqs: [IRQDescriptor] { get }

    /// Gives the model its context. Called once, before serving.
    func attach(_ context: any DeviceContext)

    /// Reads `buffer.count` bytes (1...N) at `offset` of region `region`. The server has
    /// checked that the range lies inside the region and the region is readable. The model
    /// decides which widths and alignments it accepts and throws `VFIOError` with `EINVAL`
    /// for the others.
    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError)

    /// Writes `buffer` at `offset` of region `region`; as `read`.
    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError)

    /// `VFIO_DEVICE_RESET`: return the device to its power-on state (function-level reset).
    func reset() throws(VFIOError)

    /// The client changed the IRQs of `index` with `VFIO_DEVICE_SET_IRQS`
    /// (`DATA_EVENTFD | ACTION_TRIGGER`): `enabledVectors` is the number of vectors that
    /// now have an eventfd, from vector 0 (0 = the index is disabled). The model learns
    /// here which index (INTx, MSI, MSI-X) the client uses. Default: ignored.
    func irqsConfigured(index: UInt32, enabledVectors: UInt32)

    /// The client masked (`ACTION_MASK`) or unmasked (`ACTION_UNMASK`) a vector, e.g. the
    /// INTx unmask after handling an automasked INTx, either by message or by signalling
    /// the MASK/UNMASK eventfd it set (QEMU under KVM sets KVM's INTx resample eventfd as
    /// the UNMASK eventfd: a signal per guest EOI). A level still asserted at an unmask is
    /// signalled again by the model, as vfio-pci does. Default: ignored.
    func irqMaskChanged(index: UInt32, vector: UInt32, masked: Bool)

    /// The client mapped `range` for DMA (already usable through the context). Default: ignored.
    func dmaMapped(_ range: IOVARange)

    /// The client unmapped `range`; DMA to it fails from now on. Default: ignored.
    func dmaUnmapped(_ range: IOVARange)

    /// Live migration, when the device supports it. Default: `nil`. Served through a
    /// `MigrationDriver` (see `AttachedDevice`).
    var migration: (any MigratableDevice)? { get }

    /// A client connected (before its first request). Default: ignored.
    func sessionOpened()

    /// The client left (closed the socket, died, or was dropped). Called after the server
    /// dropped its DMA mappings and interrupt eventfds (`dmaUnmapped`, `irqsConfigured`
    /// with 0 came first) and took a migrating device back to RUNNING: the place to stop
    /// the model's workers and forget DMA addresses the client gave (a queue's base, say),
    /// which mean nothing to the next client. The device keeps its other state, as the
    /// vfio-user spec asks. Default: ignored.
    func sessionClosed()

    /// A write to `area` of region `region` arrived through its ioeventfd (see
    /// `IOEventArea`): `count` writes coalesced into one signal (at least 1). Called with
    /// the same serialization as every other callback, on the server's work thread, where
    /// a model may DMA (no client request is waiting). Default: for an area with a data
    /// match, one `write(region:offset:from:)` of that value at the area's width (writes
    /// of one value coalesce anyway); for an area without, nothing: a model that declares
    /// one implements this. A throw is logged; the client does not hear of it (the write
    /// was posted).
    func ioEventSignalled(region: UInt32, area: IOEventArea, count: UInt64) throws(VFIOError)

    /// The device features this model implements itself (`ModelFeature`). Default: none.
    var deviceFeatures: [ModelFeature] { get }

    /// `VFIO_DEVICE_FEATURE_GET` of a feature in `deviceFeatures` with GET: the feature's
    /// data, at most `room` bytes (what the client's argsz leaves; at least the declared
    /// `payloadSize`). Default: `ENOTTY`.
    func getFeature(_ id: UInt32, room: Int) throws(VFIOError) -> [UInt8]

    /// `VFIO_DEVICE_FEATURE_SET` of a feature in `deviceFeatures` with SET: `data` is the
    /// request's payload (at least the declared `payloadSize` bytes; untrusted). Default:
    /// `ENOTTY`.
    func setFeature(_ id: UInt32, data: [UInt8]) throws(VFIOError)
}

extension DeviceModel {
    public func irqsConfigured(index: UInt32, enabledVectors: UInt32) {}
    public func irqMaskChanged(index: UInt32, vector: UInt32, masked: Bool) {}
    public func dmaMapped(_ range: IOVARange) {}
    public func dmaUnmapped(_ range: IOVARange) {}
    public var migration: (any MigratableDevice)? { nil }
    public func sessionOpened() {}
    public func sessionClosed() {}
    public var deviceFeatures: [ModelFeature] { [] }
    public func getFeature(_ id: UInt32, room: Int) throws(VFIOError) -> [UInt8] {
        throw .errno("VFIO_DEVICE_FEATURE_GET \(id)", DeviceErrno.ENOTTY)
    }
    public func setFeature(_ id: UInt32, data: [UInt8]) throws(VFIOError) {
        throw .errno("VFIO_DEVICE_FEATURE_SET \(id)", DeviceErrno.ENOTTY)
    }

    public func ioEventSignalled(region: UInt32, area: IOEventArea, count: UInt64) throws(VFIOError) {
        guard let value = area.dataMatch else { return }
        var bytes = value.littleEndian
        try withUnsafeBytes(of: &bytes) { (raw: UnsafeRawBufferPointer) throws(VFIOError) in
            try write(region: region, offset: area.offset, from: UnsafeRawBufferPointer(rebasing: raw[0..<Int(area.width)]))
        }
    }

    /// The `vfio_device_info` reply (no capabilities).
    public var deviceInfo: DeviceInfo {
        DeviceInfo(flags: deviceFlags, numRegions: UInt32(regions.count), numIRQs: UInt32(irqs.count))
    }

    /// The descriptor of region `index`, or `nil` when the model has no such region.
    public func region(_ index: UInt32) -> RegionDescriptor? {
        regions.first { $0.index == index }
    }

    /// The descriptor of IRQ index `index`, or `nil`.
    public func irq(_ index: UInt32) -> IRQDescriptor? {
        irqs.first { $0.index == index }
    }
}

/// How far a device runs, as the migration states say (the kit tells a model which one
/// applies with `MigratableDevice.setMigrationRunState(_:)`).
public enum MigrationRunState: Sendable, Hashable, CustomStringConvertible {
    /// RUNNING, PRE_COPY: the device works normally.
    case running
    /// RUNNING_P2P, PRE_COPY_P2P: the device starts no new peer-to-peer DMA (it still
    /// answers accesses, and may still raise interrupts). A model that cannot tell peer
    /// addresses from memory, as the shipped ones, starts no new DMA at all and leaves the
    /// DMA it has not started pending (carried in its state).
    case quiescent
    /// STOP, STOP_COPY, RESUMING: the device changes no state of its own and none outside
    /// it: no DMA, no interrupts, no work. It still answers config space and MSI-X
    /// accesses. The kit holds the interrupts a stopped model signals anyway and delivers
    /// them once it runs again.
    case stopped

    /// The run state of a migration state (`nil` for ERROR).
    public init?(_ state: MigrationState) {
        switch state {
        case .running, .preCopy: self = .running
        case .runningP2P, .preCopyP2P: self = .quiescent
        case .stop, .stopCopy, .resuming: self = .stopped
        case .error: return nil
        }
    }

    public var description: String {
        switch self {
        case .running: return "running"
        case .quiescent: return "quiescent"
        case .stopped: return "stopped"
        }
    }
}

/// A device model that can be live-migrated (what `vfio_migration_ops` is to a kernel
/// driver). The model opts in by returning itself (or a helper) from
/// `DeviceModel.migration`.
///
/// **What the kit does** (`MigrationDriver`): the v2 state machine, one arc at a time as
/// kernel drivers do with `vfio_mig_get_next_state()`; the data streams (opened, kept,
/// closed on the right arcs); the framing of the state (magic, version, model identity,
/// length, checksums) and every check of it on the destination; pre-copy (the initial
/// image taken while running, then deltas of what changed, computed by comparing saved
/// states; `initial_bytes`/`dirty_bytes`; the temporary end of stream); the stop-copy size
/// estimate; holding interrupts while stopped; ERROR and reset.
///
/// **What the model does**: say which features it offers and who its state belongs to;
/// stop and start its own work when told (`setMigrationRunState`); turn its state into
/// bytes (`saveState`) and back (`loadState`), checking what it reads.
///
/// The kit calls these methods from the serving thread, one at a time, never concurrently
/// with another model callback, and never while holding a model lock.
public protocol MigratableDevice: AnyObject, Sendable {
    /// `VFIO_DEVICE_FEATURE_MIGRATION`: STOP_COPY (required), optionally P2P and PRE_COPY.
    var migrationFeatures: MigrationFeatures { get }

    /// Written into the stream: a destination whose identity has another name refuses it.
    var migrationIdentity: MigrationIdentity { get }

    /// Sets how far the device runs (see `MigrationRunState`). Called on every arc that
    /// changes it, and with `.running` by `MigrationDriver.reset()`; the call sets a state,
    /// so it must be harmless to repeat. Entering `.quiescent` or `.stopped`: start no new
    /// DMA, and when stopped raise no interrupts and change nothing; DMA the model has
    /// queued but not started stays pending (in its state) and starts when running again,
    /// here or on the destination. Entering `.running`: resume, including pending work.
    ///
    /// On a throw the kit sets the run state back to the one before the arc (and enters
    /// ERROR only if that fails as well).
    func setMigrationRunState(_ state: MigrationRunState) throws(VFIOError)

    /// The device's whole state as bytes: registers, buffers, config space. Called while
    /// stopped (STOP_COPY, `MigrationDriver.dataSize()`) and, with PRE_COPY, while running
    /// through `precopyState()`; it must be a consistent snapshot either way. The kit
    /// frames it; the model's bytes need no header of their own. Keep the layout stable
    /// (large parts at fixed offsets), so that deltas between two saves stay small.
    func saveState() throws(VFIOError) -> [UInt8]

    /// Replaces the device's state with `state`, saved by a model with the same name at
    /// `version` (never newer than `migrationIdentity.version`; the kit refused those).
    /// Called while stopped (RESUMING -> STOP), after the kit checked the framing and the
    /// checksums. Check what the kit cannot (length, field ranges, configuration such as
    /// the number of vectors) and throw `VFIOError.malformed` naming what was wrong; check
    /// everything before changing anything where possible. On a throw the device enters
    /// ERROR and stays there until reset.
    func loadState(_ state: [UInt8], version: UInt32) throws(VFIOError)

    /// `loadState(_:version:)` from bytes the kit holds: the image where it lies in the
    /// resuming stream, valid only during the call. The default copies it into an array
    /// for `loadState(_:version:)`; a model with a large state implements this one to copy
    /// straight from the stream, which saves a pass over the state and the page faults of
    /// a fresh array of its size (the kit then calls only this one).
    func loadState(from state: UnsafeRawBufferPointer, version: UInt32) throws(VFIOError)

    /// The state sent as pre-copy data while the device runs (PRE_COPY): the initial
    /// image, then deltas as it changes. Default: `saveState()`. A model may return less
    /// (only its bulk memory, say); the final `saveState()` is sent as a delta against
    /// what was sent, so whatever pre-copy did not carry goes then.
    func precopyState() throws(VFIOError) -> [UInt8]

    /// About how many bytes `saveState()` returns, when the model knows without saving
    /// (its memory size, say); `nil` (the default) when it does not. On STOP -> RESUMING
    /// the kit then reserves that much for the incoming stream and faults it in, so that
    /// the memory is ready before the data arrives (a destination enters RESUMING before
    /// the source stops) instead of being zeroed page by page as the data comes in. A
    /// wrong guess costs only memory or speed: the stream grows past it as needed.
    var stateSizeHint: Int? { get }
}

extension MigratableDevice {
    public func precopyState() throws(VFIOError) -> [UInt8] { try saveState() }
    public var stateSizeHint: Int? { nil }
    public func loadState(from state: UnsafeRawBufferPointer, version: UInt32) throws(VFIOError) {
        try loadState(Array(state), version: version)
    }
}

// MARK: - Region access routing (shared by every server)

/// The region-access rules every server applies before a model sees an access, in one
/// place: bounds and READ/WRITE checks (`checkAccess`), and memory-backed areas served
/// from memory (`Route`).
public enum DeviceAccess {
    /// Where accesses to one region go, worked out once from its descriptor and the
    /// memory the server provides for it (a server keeps one per region: a model's regions
    /// do not change). An access that passes `checkAccess` and lies entirely inside one
    /// mmap area of a memory-backed region is a copy to or from that memory (as a client's
    /// mmapped loads and stores are); every other one goes to the model's `read` / `write`.
    public struct Route: @unchecked Sendable {
        /// 0 for a region the model does not have: every access is refused.
        public let size: UInt64
        public let readable: Bool
        public let writable: Bool
        /// The server's memory for the region (`nil`: callbacks only).
        @usableFromInline let memory: UnsafeMutableRawPointer?
        /// The mmap areas, clipped to the memory.
        @usableFromInline let windows: [Range<UInt64>]

        /// The route of `region` (`nil`: an absent region), whose memory, if the server
        /// provides any, is `memory` (`DeviceContext.memory(forRegion:)`).
        public init(_ region: RegionDescriptor?, memory: RegionMemory?) {
            size = region?.size ?? 0
            readable = region?.flags.contains(.read) ?? false
            writable = region?.flags.contains(.write) ?? false
            let bytes = memory?.bytes
            self.memory = bytes?.baseAddress
            let limit = UInt64(bytes?.count ?? 0)
            windows = (bytes == nil ? [] : region?.mmapAreas ?? []).compactMap { area in
                let end = min(area.size > limit ? limit : area.offset &+ area.size, limit)
                return area.offset < end ? area.offset..<end : nil
            }
        }

        /// The route every access is refused by.
        public static let absent = Route(nil, memory: nil)

        /// Checks an access of `count` bytes at `offset` (`checkAccess`) and returns the
        /// bytes of region memory it is served from, or `nil` when the model serves it.
        /// Lets a transport move the data between its socket and the region without a copy
        /// in between.
        /// - Throws: `EINVAL` (`checkAccess`).
        @inlinable @inline(__always)
        public func target(offset: UInt64, count: Int, writing: Bool) throws(VFIOError) -> UnsafeMutableRawBufferPointer? {
            try checkAccess(regionSize: size, allowed: writing ? writable : readable, offset: offset, count: count, writing: writing)
            guard let memory else { return nil }
            let end = offset + UInt64(count)   // no overflow: checkAccess bounds it by size
            for i in windows.indices where offset >= windows[i].lowerBound && end <= windows[i].upperBound {
                return UnsafeMutableRawBufferPointer(start: memory + Int(offset), count: count)
            }
            return nil
        }
    }

    /// Serves a region read (`pread` on the device fd, `VFIO_USER_REGION_READ`).
    /// - Throws: `EINVAL` for an unknown region, an empty or out-of-range access or a
    ///   region without READ; whatever the model throws.
    public static func read(_ model: any DeviceModel, context: (any DeviceContext)?, region index: UInt32,
                            offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        let route = Route(model.region(index), memory: context?.memory(forRegion: index))
        if let memory = try route.target(offset: offset, count: buffer.count, writing: false) {
            buffer.copyMemory(from: UnsafeRawBufferPointer(memory))
        } else {
            try model.read(region: index, offset: offset, into: buffer)
        }
    }

    /// Serves a region write (`pwrite`, `VFIO_USER_REGION_WRITE`); as `read`.
    public static func write(_ model: any DeviceModel, context: (any DeviceContext)?, region index: UInt32,
                             offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        let route = Route(model.region(index), memory: context?.memory(forRegion: index))
        if let memory = try route.target(offset: offset, count: buffer.count, writing: true) {
            memory.copyMemory(from: buffer)
        } else {
            try model.write(region: index, offset: offset, from: buffer)
        }
    }

    /// The rule every region access passes before anything serves it: the region exists
    /// (`regionSize` > 0; an absent region has size 0), it allows the access (`allowed`:
    /// its READ or WRITE flag), and `[offset, offset + count)` is not empty and lies inside.
    /// - Throws: `EINVAL`, the operation named "region read" or "region write".
    @inlinable
    public static func checkAccess(regionSize: UInt64, allowed: Bool, offset: UInt64, count: Int, writing: Bool) throws(VFIOError) {
        guard regionSize > 0, allowed, count > 0, offset < regionSize, UInt64(count) <= regionSize - offset else {
            throw .errno(writing ? "region write" : "region read", DeviceErrno.EINVAL)
        }
    }
}
