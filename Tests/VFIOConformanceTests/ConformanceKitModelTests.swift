import Glibc
import Synchronization
import Testing
import VFIO
import VFIOConformance
import VFIODeviceKit
import VFIOSystem
import TestSupport

/// A device model hosted in process behind `VFIODevice`, the way a vfio-user server and
/// client pair would serve it but without the socket: model calls are serialized, deferred
/// work runs after each call (the "reply"), interrupts go to the caller's eventfds (dup'd),
/// and DMA reaches the caller's mapped memory, checked against the mappings. No mmap,
/// ioeventfd or hot reset, as over vfio-user.
///
/// Test-only: it previews what the conformance suite answers for the Swift `EduDevice`
/// until the vfio-user client and server are wired (`VFIOUserClient` is the real thing).
final class InProcessModelDevice: VFIODevice, DeviceContext {

    // MARK: Migration: this stand-in does not migrate (ENOTTY, as the kernel answers).

    func setMigrationState(_ state: MigrationState) throws(VFIOError) -> (any MigrationDataStream)? {
        throw .errno("VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE", ENOTTY)
    }

    func startDirtyLogging(ranges: [DMALoggingRange], pageSize: UInt64) throws(VFIOError) -> UInt64 {
        throw .errno("VFIO_DEVICE_FEATURE_DMA_LOGGING_START", ENOTTY)
    }

    func stopDirtyLogging() throws(VFIOError) {
        throw .errno("VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP", ENOTTY)
    }

    func reportDirtyPages(iova: UInt64, length: UInt64, pageSize: UInt64) throws(VFIOError) -> [UInt64] {
        throw .errno("VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT", ENOTTY)
    }

    private struct Mapping {
        let range: IOVARange
        let memory: any DMAMemory
        let offset: Int
        let access: DMAAccess
    }

    private struct Shared {
        var eventfds: [UInt32: [Int32]] = [:]
        var mappings: [Mapping] = []
        var deferred: [@Sendable () -> Void] = []
    }

    let name: String
    let model: any DeviceModel
    private let serial = Mutex(())
    private let shared = Mutex(Shared())

    init(name: String = "inprocess:edu", model: any DeviceModel) {
        self.name = name
        self.model = model
        // The model keeps its context: a weak link back, or device and model keep each
        // other alive.
        model.attach(WeakContext(self))
    }

    deinit {
        shared.withLock { s in
            for fds in s.eventfds.values { for fd in fds where fd >= 0 { close(fd) } }
        }
    }

    /// Runs one model call as a request, then the work it deferred.
    private func serve<T>(_ body: () throws(VFIOError) -> T) throws(VFIOError) -> T {
        try serial.withLock { (_: inout ()) throws(VFIOError) -> T in
            let result = try body()
            while let work = shared.withLock({ s in s.deferred.isEmpty ? nil : s.deferred.removeFirst() }) { work() }
            return result
        }
    }

    // MARK: DeviceContext (the server side)

    func triggerIRQ(index: UInt32, vector: UInt32) {
        let fd = shared.withLock { s -> Int32 in
            guard let fds = s.eventfds[index], Int(vector) < fds.count else { return -1 }
            return fds[Int(vector)]
        }
        guard fd >= 0 else { return }
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }

    private func locate(_ iova: UInt64, _ count: Int, _ access: DMAAccess, _ operation: String) throws(VFIOError) -> UnsafeMutableRawPointer {
        try shared.withLock { (s: inout Shared) throws(VFIOError) -> UnsafeMutableRawPointer in
            guard count > 0, let wanted = try? IOVARange(iova: iova, length: UInt64(count)),
                  let mapping = s.mappings.first(where: { $0.range.contains(wanted.start) && $0.range.contains(wanted.last) }),
                  mapping.access.contains(access)
            else { throw .errno(operation, EFAULT) }
            return mapping.memory.baseAddress + mapping.offset + Int(iova - mapping.range.start)
        }
    }

    func dmaRead(iova: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        let source = try locate(iova, buffer.count, .read, "dmaRead")
        buffer.baseAddress!.copyMemory(from: source, byteCount: buffer.count)
    }

    func dmaWrite(iova: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        let destination = try locate(iova, buffer.count, .write, "dmaWrite")
        destination.copyMemory(from: buffer.baseAddress!, byteCount: buffer.count)
    }

    func memory(forRegion index: UInt32) -> RegionMemory? { nil }

    func afterReply(_ work: @escaping @Sendable () -> Void) {
        shared.withLock { $0.deferred.append(work) }
    }

    // MARK: VFIODevice (the client side)

    func deviceInfo() throws(VFIOError) -> DeviceInfo { model.deviceInfo }

    func regionInfo(_ index: UInt32) throws(VFIOError) -> RegionInfo {
        guard let region = model.region(index) else { throw .errno("VFIO_DEVICE_GET_REGION_INFO", EINVAL) }
        return region.regionInfo(offset: UInt64(index) << 40)
    }

    func irqInfo(_ index: UInt32) throws(VFIOError) -> IRQInfo {
        guard let irq = model.irq(index) else { throw .errno("VFIO_DEVICE_GET_IRQ_INFO", EINVAL) }
        return irq.irqInfo
    }

    private func checkAccess(_ index: UInt32, _ offset: UInt64, _ count: Int, _ flag: RegionInfoFlags, _ operation: String) throws(VFIOError) {
        guard let region = model.region(index), region.flags.contains(flag),
              offset <= region.size, UInt64(count) <= region.size - offset
        else { throw .errno(operation, EINVAL) }
    }

    func read(region index: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        try checkAccess(index, offset, buffer.count, .read, "REGION_READ")
        try serve { () throws(VFIOError) in try model.read(region: index, offset: offset, into: buffer) }
    }

    func write(region index: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        try checkAccess(index, offset, buffer.count, .write, "REGION_WRITE")
        try serve { () throws(VFIOError) in try model.write(region: index, offset: offset, from: buffer) }
    }

    func mapRegion(_ index: UInt32, offset: UInt64, size: Int) throws(VFIOError) -> any MappedRegion {
        throw .unsupported("mmap", "region \(index) is not memory-backed")
    }

    func setIRQs(_ set: IRQSet) throws(VFIOError) {
        guard let irq = model.irq(set.index), set.start == 0 || set.action != .trigger,
              set.start + set.count <= irq.count || set.count == 0
        else { throw .errno("SET_IRQS", EINVAL) }
        switch (set.action, set.data) {
        case (.trigger, .eventfds(let fds)):
            var copies: [Int32] = []
            for fd in fds {
                let copy = fd >= 0 ? dup(fd) : -1
                if fd >= 0 && copy < 0 { throw .errno("dup", errno) }
                copies.append(copy)
            }
            let old = shared.withLock { s in
                defer { s.eventfds[set.index] = copies }
                return s.eventfds[set.index] ?? []
            }
            for fd in old where fd >= 0 { close(fd) }
            let enabled = UInt32(copies.prefix { $0 >= 0 }.count)
            try serve { () throws(VFIOError) in model.irqsConfigured(index: set.index, enabledVectors: enabled) }
        case (.trigger, .none(count: 0)):
            let old = shared.withLock { s in s.eventfds.removeValue(forKey: set.index) ?? [] }
            for fd in old where fd >= 0 { close(fd) }
            try serve { () throws(VFIOError) in model.irqsConfigured(index: set.index, enabledVectors: 0) }
        case (.mask, .none), (.unmask, .none):
            guard irq.flags.contains(.maskable) else { throw .errno("SET_IRQS", EINVAL) }
            for vector in set.start..<(set.start + set.count) {
                try serve { () throws(VFIOError) in model.irqMaskChanged(index: set.index, vector: vector, masked: set.action == .mask) }
            }
        default:
            throw .errno("SET_IRQS", EINVAL)
        }
    }

    func reset() throws(VFIOError) {
        guard model.deviceFlags.contains(.reset) else { throw .unsupported("DEVICE_RESET", "the model has no reset") }
        try serve { () throws(VFIOError) in try model.reset() }
    }

    func feature(_ request: DeviceFeature) throws(VFIOError) -> DeviceFeaturePayload? {
        throw .errno("DEVICE_FEATURE", ENOTTY)
    }

    func validIOVARanges() throws(VFIOError) -> [IOVARange] {
        [try IOVARange(start: 0, last: .max)]
    }

    func mapDMA(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError) {
        let range = try IOVARange(iova: iova, length: UInt64(size))
        try shared.withLock { (s: inout Shared) throws(VFIOError) in
            if s.mappings.contains(where: { $0.range.overlaps(range) }) { throw .errno("DMA_MAP", EINVAL) }
            s.mappings.append(Mapping(range: range, memory: memory, offset: offset, access: access))
        }
        try serve { () throws(VFIOError) in model.dmaMapped(range) }
    }

    func unmapDMA(iova: UInt64, size: UInt64) throws(VFIOError) {
        let range = try IOVARange(iova: iova, length: size)
        let removed = shared.withLock { s in
            let before = s.mappings.count
            s.mappings.removeAll { $0.range == range }
            return before != s.mappings.count
        }
        guard removed else { throw .errno("DMA_UNMAP", EINVAL) }
        try serve { () throws(VFIOError) in model.dmaUnmapped(range) }
    }

    func hotResetInfo() throws(VFIOError) -> PCIHotResetInfo {
        throw .unsupported("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", "no hot reset over vfio-user")
    }

    func setIOEventfd(_ ioeventfd: IOEventfd) throws(VFIOError) {
        throw .unsupported("VFIO_DEVICE_IOEVENTFD", "no ioeventfd over vfio-user")
    }
}

/// The suite against the Swift `EduDevice` model, hosted in process: a preview of the
/// vfio-user answers (mmap, ioeventfd and hot reset are skipped there). The run includes
/// the leak check, which counts the whole process's: it runs alone, in a process of its own.
@Suite struct ConformanceKitModelTests {
    @Test func theSwiftEduModelPassesTheSuite() async throws {
        guard try await runsAlone(Self.self) else { return }
        let report = await EduConformance.runner(options: ConformanceOptions(timeout: .seconds(2), leakCycles: 3))
            .run(deviceName: "inprocess:edu") { InProcessModelDevice(model: EduDevice()) }
        #expect(report.failed.isEmpty, "\(report)")
        #expect(Set(report.skipped.map(\.name)) == ["registers-mmap", "ioeventfd", "hot-reset-info"], "\(report)")
        #expect(report.summary == "12 passed, 0 failed, 3 skipped")
    }
}

/// A `DeviceContext` that forwards to a context it does not keep alive.
final class WeakContext: DeviceContext, @unchecked Sendable {
    private weak var target: InProcessModelDevice?

    init(_ target: InProcessModelDevice) { self.target = target }

    func triggerIRQ(index: UInt32, vector: UInt32) { target?.triggerIRQ(index: index, vector: vector) }

    func dmaRead(iova: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        guard let target else { throw .errno("dmaRead", EFAULT) }
        try target.dmaRead(iova: iova, into: buffer)
    }

    func dmaWrite(iova: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        guard let target else { throw .errno("dmaWrite", EFAULT) }
        try target.dmaWrite(iova: iova, from: buffer)
    }

    func memory(forRegion index: UInt32) -> RegionMemory? { target?.memory(forRegion: index) }

    func afterReply(_ work: @escaping @Sendable () -> Void) { target?.afterReply(work) }
}
