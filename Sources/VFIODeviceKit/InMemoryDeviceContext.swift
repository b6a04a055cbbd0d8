import Synchronization
import VFIO

/// A `DeviceContext` held entirely in process memory, for tests and in-process use.
///
/// - **DMA space**: byte buffers registered at IOVAs with `map(iova:size:)` (or
///   `map(iova:bytes:)`), like a client's `DMA_MAP`s. A transfer may span several adjacent
///   mappings (QEMU's vIOMMU maps guest memory page by page); any byte outside every
///   mapping fails the whole transfer with `EFAULT` before anything is copied.
/// - **IRQs**: every `triggerIRQ` is counted per (index, vector) and logged in order.
/// - **Region memory**: `provideMemory(forRegion:size:)` allocates zeroed memory for a
///   memory-backed region (what a server does with a memfd).
/// - **Deferred work**: `afterReply` queues; `runDeferredWork()` runs the queue (including
///   work queued by work) — call it where a server would have sent its reply.
///   `serve(_:)` wraps a model call the way a server's request loop does: it marks a
///   request outstanding (DMA then fails with `EDEADLK` when `strictReplyRule` is on) and
///   runs the deferred work afterwards.
///
/// Thread-safe: all state lives in one `Mutex`.
public final class InMemoryDeviceContext: DeviceContext {
    private final class Buffer: @unchecked Sendable {
        let pointer: UnsafeMutableRawBufferPointer
        init(size: Int) {
            pointer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
            pointer.initializeMemory(as: UInt8.self, repeating: 0)
        }
        deinit { pointer.deallocate() }
    }

    private struct Mapping {
        var range: IOVARange
        var buffer: Buffer
        var readable: Bool
        var writable: Bool
    }

    private struct State {
        var mappings: [Mapping] = []  // sorted by start, non-overlapping
        var irqCounts: [IRQSignal: Int] = [:]
        var irqLog: [IRQSignal] = []
        var regionMemory: [UInt32: Buffer] = [:]
        var deferred: [@Sendable () -> Void] = []
        var inRequest = false
        var runningDeferred = false
    }

    private let state = Mutex(State())

    /// When true, `dmaRead`/`dmaWrite` called while `serve(_:)` is running a request fail
    /// with `EDEADLK`, as message-based DMA would hang a vfio-user client. Default true.
    public let strictReplyRule: Bool

    public init(strictReplyRule: Bool = true) {
        self.strictReplyRule = strictReplyRule
    }

    // MARK: DMA space

    /// Maps `size` zeroed bytes at `iova`.
    /// - Throws: `EINVAL` for a zero size or a range that wraps; `EEXIST`-like `EBUSY` when
    ///   it overlaps an existing mapping.
    public func map(iova: UInt64, size: Int, readable: Bool = true, writable: Bool = true) throws(VFIOError) {
        guard size > 0 else { throw .errno("InMemoryDeviceContext.map", DeviceErrno.EINVAL) }
        let range: IOVARange
        do { range = try IOVARange(iova: iova, length: UInt64(size)) } catch { throw .errno("InMemoryDeviceContext.map", DeviceErrno.EINVAL) }
        let buffer = Buffer(size: size)
        try state.withLock { (s: inout State) throws(VFIOError) in
            if s.mappings.contains(where: { $0.range.overlaps(range) }) {
                throw .errno("InMemoryDeviceContext.map", DeviceErrno.EBUSY)
            }
            s.mappings.append(Mapping(range: range, buffer: buffer, readable: readable, writable: writable))
            s.mappings.sort { $0.range.start < $1.range.start }
        }
    }

    /// Maps a copy of `bytes` at `iova`.
    public func map(iova: UInt64, bytes: [UInt8], readable: Bool = true, writable: Bool = true) throws(VFIOError) {
        try map(iova: iova, size: bytes.count, readable: readable, writable: writable)
        try poke(iova: iova, bytes)
    }

    /// Removes every mapping that lies inside `[iova, iova + size)`; returns how many.
    @discardableResult
    public func unmap(iova: UInt64, size: UInt64) -> Int {
        guard size > 0, let range = try? IOVARange(iova: iova, length: size) else { return 0 }
        return state.withLock { s in
            let before = s.mappings.count
            s.mappings.removeAll { $0.range.start >= range.start && $0.range.last <= range.last }
            return before - s.mappings.count
        }
    }

    /// The mapped ranges, sorted.
    public var mappedRanges: [IOVARange] { state.withLock { $0.mappings.map(\.range) } }

    /// Pieces of the mappings covering `[iova, iova + count)`, or `nil` when a byte is
    /// not covered (or lacks the access).
    private static func pieces(_ mappings: [Mapping], iova: UInt64, count: Int, write: Bool?)
        -> [(pointer: UnsafeMutableRawPointer, length: Int)]? {
        var result: [(UnsafeMutableRawPointer, Int)] = []
        var address = iova
        var remaining = UInt64(count)
        while remaining > 0 {
            guard let m = mappings.first(where: { $0.range.contains(address) }),
                  write.map({ $0 ? m.writable : m.readable }) ?? true else { return nil }
            let available = (m.range.last - address) &+ 1  // 0 only for the whole 64-bit space
            let length = available == 0 ? remaining : min(available, remaining)
            let offset = Int(address - m.range.start)
            result.append((m.buffer.pointer.baseAddress! + offset, Int(length)))
            remaining -= length
            if remaining > 0 {
                let (next, overflow) = address.addingReportingOverflow(length)
                if overflow { return nil }
                address = next
            }
        }
        return result
    }

    public func dmaRead(iova: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        try state.withLock { (s: inout State) throws(VFIOError) in
            if strictReplyRule && s.inRequest { throw .errno("DMA read", DeviceErrno.EDEADLK) }
            guard let pieces = Self.pieces(s.mappings, iova: iova, count: buffer.count, write: false) else {
                throw .errno("DMA read", DeviceErrno.EFAULT)
            }
            var at = 0
            for piece in pieces {
                (buffer.baseAddress! + at).copyMemory(from: piece.pointer, byteCount: piece.length)
                at += piece.length
            }
        }
    }

    public func dmaWrite(iova: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        try state.withLock { (s: inout State) throws(VFIOError) in
            if strictReplyRule && s.inRequest { throw .errno("DMA write", DeviceErrno.EDEADLK) }
            guard let pieces = Self.pieces(s.mappings, iova: iova, count: buffer.count, write: true) else {
                throw .errno("DMA write", DeviceErrno.EFAULT)
            }
            var at = 0
            for piece in pieces {
                piece.pointer.copyMemory(from: buffer.baseAddress! + at, byteCount: piece.length)
                at += piece.length
            }
        }
    }

    /// Test access to client memory (not subject to the reply rule).
    public func peek(iova: UInt64, count: Int) throws(VFIOError) -> [UInt8] {
        try state.withLock { (s: inout State) throws(VFIOError) -> [UInt8] in
            guard let pieces = Self.pieces(s.mappings, iova: iova, count: count, write: nil) else {
                throw .errno("InMemoryDeviceContext.peek", DeviceErrno.EFAULT)
            }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(count)
            for piece in pieces {
                bytes.append(contentsOf: UnsafeRawBufferPointer(start: piece.pointer, count: piece.length))
            }
            return bytes
        }
    }

    /// Test access to client memory (not subject to the reply rule).
    public func poke(iova: UInt64, _ bytes: [UInt8]) throws(VFIOError) {
        try state.withLock { (s: inout State) throws(VFIOError) in
            guard let pieces = Self.pieces(s.mappings, iova: iova, count: bytes.count, write: nil) else {
                throw .errno("InMemoryDeviceContext.poke", DeviceErrno.EFAULT)
            }
            var at = 0
            for piece in pieces {
                for k in 0..<piece.length { piece.pointer.storeBytes(of: bytes[at + k], toByteOffset: k, as: UInt8.self) }
                at += piece.length
            }
        }
    }

    // MARK: IRQs

    public func triggerIRQ(index: UInt32, vector: UInt32) {
        state.withLock { s in
            let signal = IRQSignal(index: index, vector: vector)
            s.irqCounts[signal, default: 0] += 1
            s.irqLog.append(signal)
        }
    }

    /// How many times vector `vector` of `index` was triggered.
    public func irqCount(index: UInt32, vector: UInt32 = 0) -> Int {
        state.withLock { $0.irqCounts[IRQSignal(index: index, vector: vector)] ?? 0 }
    }

    /// Every trigger, in order.
    public var irqLog: [IRQSignal] { state.withLock { $0.irqLog } }

    /// Forgets the IRQ counts and log.
    public func clearIRQs() {
        state.withLock { s in
            s.irqCounts = [:]
            s.irqLog = []
        }
    }

    // MARK: Region memory

    /// Allocates zeroed memory for memory-backed region `index` (replacing any earlier).
    @discardableResult
    public func provideMemory(forRegion index: UInt32, size: Int) -> RegionMemory {
        let buffer = Buffer(size: max(size, 1))
        state.withLock { $0.regionMemory[index] = buffer }
        return RegionMemory(UnsafeMutableRawBufferPointer(rebasing: buffer.pointer[0..<size]))
    }

    /// Allocates memory for every memory-backed region of `model`.
    public func provideMemory(for model: any DeviceModel) {
        for region in model.regions where region.isMemoryBacked && region.size > 0 {
            provideMemory(forRegion: region.index, size: Int(region.size))
        }
    }

    public func memory(forRegion index: UInt32) -> RegionMemory? {
        state.withLock { s in
            s.regionMemory[index].map { RegionMemory($0.pointer) }
        }
    }

    // MARK: Deferred work

    public func afterReply(_ work: @escaping @Sendable () -> Void) {
        state.withLock { $0.deferred.append(work) }
    }

    /// Number of queued work items.
    public var pendingWorkCount: Int { state.withLock { $0.deferred.count } }

    /// Runs queued work, including work queued meanwhile, until the queue is empty;
    /// returns how many items ran. Re-entrant calls (from inside work) do nothing.
    @discardableResult
    public func runDeferredWork() -> Int {
        let begin = state.withLock { s -> Bool in
            if s.runningDeferred { return false }
            s.runningDeferred = true
            return true
        }
        guard begin else { return 0 }
        var ran = 0
        while true {
            let next = state.withLock { s -> (@Sendable () -> Void)? in
                s.deferred.isEmpty ? nil : s.deferred.removeFirst()
            }
            guard let work = next else { break }
            work()
            ran += 1
        }
        state.withLock { $0.runningDeferred = false }
        return ran
    }

    /// Runs `body` as a server runs one request: while it runs a request is outstanding
    /// (see `strictReplyRule`); afterwards the deferred work runs, as after the reply.
    public func serve<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        state.withLock { $0.inRequest = true }
        let result: Result<T, E>
        do { result = .success(try body()) } catch { result = .failure(error) }
        state.withLock { $0.inRequest = false }
        runDeferredWork()
        return try result.get()
    }
}

extension DeviceModel {
    /// Convenience for tests and in-process clients: a region read through `DeviceAccess`
    /// as one request served by `context` (deferred work runs afterwards).
    public func access(_ context: InMemoryDeviceContext, read region: UInt32, offset: UInt64, count: Int) throws(VFIOError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try context.serve { () throws(VFIOError) in
            let failure = bytes.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) -> VFIOError? in
                do throws(VFIOError) {
                    try DeviceAccess.read(self, context: context, region: region, offset: offset, into: raw)
                    return nil
                } catch { return error }
            }
            if let failure { throw failure }
        }
        return bytes
    }

    /// Convenience for tests: a region write through `DeviceAccess` as one request.
    public func access(_ context: InMemoryDeviceContext, write region: UInt32, offset: UInt64, bytes: [UInt8]) throws(VFIOError) {
        try context.serve { () throws(VFIOError) in
            let failure = bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> VFIOError? in
                do throws(VFIOError) {
                    try DeviceAccess.write(self, context: context, region: region, offset: offset, from: raw)
                    return nil
                } catch { return error }
            }
            if let failure { throw failure }
        }
    }

    /// Reads a little-endian integer of `width` bytes (1, 2, 4, 8) as one request.
    public func access(_ context: InMemoryDeviceContext, read region: UInt32, offset: UInt64, width: Int) throws(VFIOError) -> UInt64 {
        let bytes = try access(context, read: region, offset: offset, count: width)
        return bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// Writes a little-endian integer of `width` bytes as one request.
    public func access(_ context: InMemoryDeviceContext, write region: UInt32, offset: UInt64, width: Int, value: UInt64) throws(VFIOError) {
        let bytes = (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
        try access(context, write: region, offset: offset, bytes: bytes)
    }
}
