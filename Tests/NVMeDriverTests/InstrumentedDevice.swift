import Synchronization
import TestSupport
import VFIO

/// A `VFIODevice` passing every call to a real one while it tracks what the driver hands
/// it (the memfds mapped for DMA, the eventfds bound to interrupts) and counts the DMA
/// mappings alive; with `failingMapping` N, its Nth `mapDMA` fails with ENOMEM, the fault
/// a driver must clean up after.
final class InstrumentedDevice: VFIODevice {
    let base: any VFIODevice
    let failingMapping: Int?
    private let counts = Mutex((calls: 0, live: 0))
    private let tracked = Mutex<[TrackedFile]>([])
    private let writes = Mutex<[UInt64: Int]>([:])
    /// BAR0 offsets whose writes are dropped (a doorbell the controller never sees).
    let droppedWrites = Mutex<Set<UInt64>>([])

    /// How many times BAR0 was written at `offset` (a doorbell, say).
    func writeCount(bar0Offset offset: UInt64) -> Int { writes.withLock { $0[offset] ?? 0 } }

    init(_ base: any VFIODevice, failingMapping: Int? = nil) {
        self.base = base
        self.failingMapping = failingMapping
    }

    var liveMappings: Int { counts.withLock { $0.live } }

    /// The files handed to the device that something in this process (a descriptor or a
    /// mapping) still refers to, described.
    func leaks() -> [String] { tracked.withLock { $0.compactMap { $0.stillReferenced() } } }

    /// How many files were handed over.
    var trackedCount: Int { tracked.withLock { $0.count } }

    private func track(_ fd: Int32, _ name: String) {
        if let file = try? TrackedFile(fd, name: name) { tracked.withLock { $0.append(file) } }
    }

    var name: String { base.name }
    func deviceInfo() throws(VFIOError) -> DeviceInfo { try base.deviceInfo() }
    func regionInfo(_ index: UInt32) throws(VFIOError) -> RegionInfo { try base.regionInfo(index) }
    func irqInfo(_ index: UInt32) throws(VFIOError) -> IRQInfo { try base.irqInfo(index) }
    func read(region index: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        try base.read(region: index, offset: offset, into: buffer)
    }
    func write(region index: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        if index == PCIRegionIndex.bar0.rawValue {
            writes.withLock { $0[offset, default: 0] += 1 }
            if droppedWrites.withLock({ $0.contains(offset) }) { return }
        }
        try base.write(region: index, offset: offset, from: buffer)
    }
    func mapRegion(_ index: UInt32, offset: UInt64, size: Int) throws(VFIOError) -> any MappedRegion {
        try base.mapRegion(index, offset: offset, size: size)
    }
    func setIRQs(_ set: IRQSet) throws(VFIOError) {
        if case .eventfds(let fds) = set.data { for fd in fds where fd >= 0 { track(fd, "eventfd of vector \(set.start)") } }
        try base.setIRQs(set)
    }
    func reset() throws(VFIOError) { try base.reset() }
    func feature(_ request: DeviceFeature) throws(VFIOError) -> DeviceFeaturePayload? { try base.feature(request) }
    func validIOVARanges() throws(VFIOError) -> [IOVARange] { try base.validIOVARanges() }
    func mapDMA(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError) {
        let call = counts.withLock { c in c.calls += 1; return c.calls }
        if call == failingMapping { throw .errno("mapDMA", 12) }
        if let shared = memory.sharedDescriptor { track(shared.fd, "DMA memfd at IOVA 0x\(String(iova, radix: 16))") }
        try base.mapDMA(memory, offset: offset, size: size, iova: iova, access: access)
        counts.withLock { $0.live += 1 }
    }
    func unmapDMA(iova: UInt64, size: UInt64) throws(VFIOError) {
        try base.unmapDMA(iova: iova, size: size)
        counts.withLock { $0.live -= 1 }
    }
    func hotResetInfo() throws(VFIOError) -> PCIHotResetInfo { try base.hotResetInfo() }
    func setIOEventfd(_ ioeventfd: IOEventfd) throws(VFIOError) { try base.setIOEventfd(ioeventfd) }
    func setMigrationState(_ state: MigrationState) throws(VFIOError) -> (any MigrationDataStream)? { try base.setMigrationState(state) }
    func startDirtyLogging(ranges: [DMALoggingRange], pageSize: UInt64) throws(VFIOError) -> UInt64 {
        try base.startDirtyLogging(ranges: ranges, pageSize: pageSize)
    }
    func stopDirtyLogging() throws(VFIOError) { try base.stopDirtyLogging() }
    func reportDirtyPages(iova: UInt64, length: UInt64, pageSize: UInt64) throws(VFIOError) -> [UInt64] {
        try base.reportDirtyPages(iova: iova, length: length, pageSize: pageSize)
    }
}
