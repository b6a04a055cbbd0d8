/// A VFIO device as its user sees it, whatever carries it: the kernel's `/dev/vfio`
/// (`HostDevice` in `VFIOHost`) or a vfio-user socket (`VFIOUserClient` in the module of that name).
///
/// Code written against this protocol runs unchanged on both. Every call is synchronous
/// and may block on the kernel or the peer; waiting for interrupts is done on the
/// eventfds handed to `setIRQs(_:)`, not here. Implementations are thread-safe.
///
/// Migration v2 (state, data stream, dirty logging) is part of the protocol: a device that
/// does not migrate answers those calls with `ENOTTY`, as the kernel does.
///
/// Errors: `VFIOError` naming the operation (the ioctl or vfio-user command) and the errno
/// the kernel or the peer answered; `.unsupported` where the transport has no such
/// operation (hot reset and ioeventfd over vfio-user, for example).
public protocol VFIODevice: AnyObject, Sendable {
    /// How the device was named when opened: a PCI address, a `/dev/vfio` path,
    /// `unix:PATH` or `model:NAME`.
    var name: String { get }

    /// `VFIO_DEVICE_GET_INFO` (vfio-user `VFIO_USER_DEVICE_GET_INFO`), capabilities included.
    func deviceInfo() throws(VFIOError) -> DeviceInfo

    /// `VFIO_DEVICE_GET_REGION_INFO` for `index`, capability chain included.
    /// - Throws: `EINVAL` for an index the device does not have.
    func regionInfo(_ index: UInt32) throws(VFIOError) -> RegionInfo

    /// `VFIO_DEVICE_GET_IRQ_INFO` for `index`.
    func irqInfo(_ index: UInt32) throws(VFIOError) -> IRQInfo

    /// Reads `buffer.count` bytes at `offset` within region `index` as one access: 1, 2, 4
    /// or 8 bytes reach the device as an access of that width; larger counts are bulk
    /// reads (the transport may split them).
    func read(region index: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError)

    /// Writes `buffer` at `offset` within region `index`, with the width rules of `read`.
    func write(region index: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError)

    /// Maps `size` bytes of region `index` from `offset` into this process. The range must
    /// lie inside the region and, where the region has a sparse-mmap capability, inside one
    /// of its areas; both must be page-aligned.
    /// - Throws: `.unsupported` for a region without the MMAP flag; `EINVAL` for a bad range.
    func mapRegion(_ index: UInt32, offset: UInt64, size: Int) throws(VFIOError) -> any MappedRegion

    /// `VFIO_DEVICE_SET_IRQS`. Eventfds in `set.data` are borrowed: the device keeps its own
    /// reference (the kernel's `eventfd_ctx`, or a descriptor passed over the socket), so the
    /// caller may close its copy afterwards.
    func setIRQs(_ set: IRQSet) throws(VFIOError)

    /// `VFIO_DEVICE_RESET`.
    /// - Throws: `.unsupported` when the device info lacks `VFIO_DEVICE_FLAGS_RESET`.
    func reset() throws(VFIOError)

    /// `VFIO_DEVICE_FEATURE`: sends `request` and returns the reply's payload for a GET,
    /// `nil` for a SET or a PROBE that succeeded.
    /// - Throws: `ENOTTY` for a feature the device lacks, `EINVAL` for an unsupported operation.
    func feature(_ request: DeviceFeature) throws(VFIOError) -> DeviceFeaturePayload?

    /// The IOVA ranges DMA may use (type1's IOVA_RANGE capability, iommufd's
    /// `IOMMU_IOAS_IOVA_RANGES`, or the full 64-bit space where the transport sets no limit).
    func validIOVARanges() throws(VFIOError) -> [IOVARange]

    /// Makes `size` bytes of `memory` from `offset` reachable by the device's DMA at `iova`.
    /// - Throws: `EEXIST` (kernel) or `EINVAL` for an IOVA range that overlaps a mapping.
    func mapDMA(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError)

    /// Removes the DMA mappings covering exactly `[iova, iova + size)`.
    func unmapDMA(iova: UInt64, size: UInt64) throws(VFIOError)

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: the devices a bus reset would affect.
    /// - Throws: `.unsupported` over transports without hot reset.
    func hotResetInfo() throws(VFIOError) -> PCIHotResetInfo

    /// `VFIO_DEVICE_IOEVENTFD`: writes of `ioeventfd.data` to `ioeventfd.offset` become
    /// signals on `ioeventfd.fd` (fd -1 removes it). The offset is a region offset in the
    /// device's address space (region index in bits 40 and up for vfio-pci).
    /// - Throws: `.unsupported` over transports without ioeventfds.
    func setIOEventfd(_ ioeventfd: IOEventfd) throws(VFIOError)

    // MARK: Migration v2
    //
    // Over the kernel the stream is the `data_fd` that `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`
    // returns; over vfio-user it is `VFIO_USER_MIG_DATA_READ` / `_WRITE`. Whether the device
    // migrates at all is `migrationFeatures()`; a device that does not answers these with
    // `ENOTTY`.

    /// SET `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE`: the device walks the arcs to `state`.
    ///
    /// Returns a new data stream when the move opened one: entering PRE_COPY,
    /// PRE_COPY_P2P, STOP_COPY or RESUMING from a state without a stream. A stream opened in
    /// PRE_COPY continues into STOP_COPY (no new stream is returned then): keep reading it.
    /// - Throws: `EINVAL` for a state the device does not support or an arc it refuses;
    ///   after a failed arc the device may be in ERROR (read it with `migrationState()`),
    ///   which only `reset()` leaves.
    func setMigrationState(_ state: MigrationState) throws(VFIOError) -> (any MigrationDataStream)?

    /// DMA_LOGGING_START: record the pages the device writes by DMA inside `ranges`, at
    /// `pageSize` (a power of two; the device may raise it: the one in use is returned).
    func startDirtyLogging(ranges: [DMALoggingRange], pageSize: UInt64) throws(VFIOError) -> UInt64

    /// DMA_LOGGING_STOP.
    func stopDirtyLogging() throws(VFIOError)

    /// DMA_LOGGING_REPORT: the pages written in `[iova, iova + length)` since the last
    /// report, one bit per `pageSize` page (little-endian 64-bit words, bit i = page i), and
    /// cleared.
    func reportDirtyPages(iova: UInt64, length: UInt64, pageSize: UInt64) throws(VFIOError) -> [UInt64]
}

/// Whether a DMA mapping may be read and/or written by the device.
public struct DMAAccess: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The device may read the memory (`VFIO_DMA_MAP_FLAG_READ`, `IOMMU_IOAS_MAP_READABLE`).
    public static let read = DMAAccess(rawValue: 1 << 0)
    /// The device may write the memory (`VFIO_DMA_MAP_FLAG_WRITE`, `IOMMU_IOAS_MAP_WRITEABLE`).
    public static let write = DMAAccess(rawValue: 1 << 1)
    public static let readWrite: DMAAccess = [.read, .write]
}

/// Memory in this process that a device can be given for DMA.
///
/// Implementations own the memory and keep it alive at least as long as it is mapped for
/// DMA; unmap before releasing it.
public protocol DMAMemory: AnyObject, Sendable {
    /// The first byte, page-aligned.
    var baseAddress: UnsafeMutableRawPointer { get }
    /// The size in bytes, a multiple of the page size.
    var size: Int { get }
    /// A descriptor the memory is a shared mapping of, and the offset of `baseAddress` in
    /// it, so another process (a vfio-user server) can map the same pages. `nil` for
    /// private anonymous memory, which only the kernel transport can use.
    var sharedDescriptor: (fd: Int32, offset: Int64)? { get }
}

/// Part of a device region mapped into this process. Unmapped when released.
public protocol MappedRegion: AnyObject, Sendable {
    /// The first mapped byte.
    var baseAddress: UnsafeMutableRawPointer { get }
    /// The mapped size in bytes.
    var size: Int { get }
    /// The region offset `baseAddress` corresponds to.
    var regionOffset: UInt64 { get }
}
