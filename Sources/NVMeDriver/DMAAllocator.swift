import Synchronization
import VFIO
import VFIOSystem

/// Page-aligned memory the controller reaches by DMA at `iova`: one shared-memory
/// `DMABuffer` mapped at one contiguous IOVA range. Made by `NVMeHost.allocateBuffer`,
/// valid until released or until the host closes.
public final class NVMeBuffer: Sendable {
    public let memory: DMABuffer
    /// The device address of the first byte.
    public let iova: UInt64

    init(memory: DMABuffer, iova: UInt64) {
        self.memory = memory
        self.iova = iova
    }

    public var size: Int { memory.size }
    public var bytes: UnsafeMutableRawBufferPointer { memory.bytes }

    /// Copies `data` in at `offset`.
    /// - Precondition: it fits.
    public func store(_ data: [UInt8], at offset: Int = 0) {
        precondition(offset >= 0 && offset + data.count <= size, "store outside the buffer")
        data.withUnsafeBytes { (memory.baseAddress + offset).copyMemory(from: $0.baseAddress!, byteCount: data.count) }
    }

    /// `count` bytes from `offset`.
    /// - Precondition: they lie inside the buffer.
    public func load(_ count: Int, at offset: Int = 0) -> [UInt8] {
        precondition(offset >= 0 && offset + count <= size, "load outside the buffer")
        return Array(UnsafeRawBufferPointer(start: memory.baseAddress + offset, count: count))
    }
}

/// The IOVA space buffers are placed in: addresses handed out in order from the device's
/// valid ranges, page-aligned, never IOVA 0. Released buffers are reused rather than their
/// addresses, so the space consumed is the peak of what was allocated.
struct IOVASpace {
    private var ranges: [IOVARange]
    private var index = 0
    private var next: UInt64

    /// Addresses start at `floor` (or a range's start when higher).
    init(ranges: [IOVARange], pageSize: Int, floor: UInt64 = 0x10_0000) {
        self.ranges = ranges.sorted { $0.start < $1.start }
        next = floor
        alignment = UInt64(pageSize)
    }

    private let alignment: UInt64

    /// `size` bytes (a multiple of the page size) inside one valid range, or nil when no
    /// range has that much room left.
    mutating func take(_ size: Int) -> UInt64? {
        let size = UInt64(size)
        while index < ranges.count {
            let range = ranges[index]
            let start = max(next, range.start)
            let (up, overflow) = start.addingReportingOverflow(alignment - 1)
            if !overflow {
                let aligned = up & ~(alignment - 1)
                let (last, over) = aligned.addingReportingOverflow(size - 1)
                if !over, aligned >= range.start, last <= range.last {
                    next = last &+ 1
                    return aligned
                }
            }
            index += 1
        }
        return nil
    }
}

/// Allocates `NVMeBuffer`s, maps them for DMA, takes them back for reuse, and unmaps
/// every one on `close()`.
final class DMAAllocator: Sendable {
    private struct State {
        var space: IOVASpace
        /// Released buffers by size, ready for reuse (still mapped).
        var free: [Int: [NVMeBuffer]] = [:]
        /// Every mapped buffer, by IOVA.
        var mapped: [UInt64: NVMeBuffer] = [:]
        var closed = false
    }

    let device: any VFIODevice
    let pageSize: Int
    private let state: Monitor<State>

    init(device: any VFIODevice, pageSize: Int) throws(NVMeDriverError) {
        self.device = device
        self.pageSize = pageSize
        let ranges: [IOVARange]
        do { ranges = try device.validIOVARanges() } catch { throw .transport(error) }
        state = Monitor(State(space: IOVASpace(ranges: ranges, pageSize: max(pageSize, SystemCall.pageSize))))
    }

    /// A buffer of at least `bytes` bytes, rounded up to whole pages; zeroed when
    /// `zeroed` (a fresh one always is; a reused one holds what it held before otherwise).
    func allocate(_ bytes: Int, zeroed: Bool = true) throws(NVMeDriverError) -> NVMeBuffer {
        guard bytes > 0, bytes <= 1 << 30 else { throw .invalidArgument("buffer size \(bytes) (1 byte to 1 GiB)") }
        let granule = max(pageSize, SystemCall.pageSize)
        let size = (bytes + granule - 1) / granule * granule
        let reused = state.withLock { s -> NVMeBuffer? in s.free[size]?.popLast() }
        if let reused {
            if zeroed { memsetZero(reused) }
            return reused
        }
        let memory: DMABuffer
        do { memory = try DMABuffer(size: size, name: "swift-vfio-nvme") } catch { throw .transport(error) }
        let iova = try state.withLock { s throws(NVMeDriverError) -> UInt64 in
            guard !s.closed else { throw .closed }
            guard let iova = s.space.take(memory.size) else {
                throw .unsupported("no room for \(memory.size) bytes in the device's valid IOVA ranges")
            }
            return iova
        }
        do {
            try device.mapDMA(memory, offset: 0, size: memory.size, iova: iova, access: .readWrite)
        } catch {
            throw .transport(error)
        }
        let buffer = NVMeBuffer(memory: memory, iova: iova)
        let stillOpen = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.mapped[iova] = buffer
            return true
        }
        if !stillOpen {
            try? device.unmapDMA(iova: iova, size: UInt64(memory.size))
            throw .closed
        }
        return buffer
    }

    /// Takes `buffer` back for reuse. The caller must no longer give it to the device.
    func release(_ buffer: NVMeBuffer) {
        state.withLock { s in
            guard s.mapped[buffer.iova] === buffer else { return }
            if !(s.free[buffer.size]?.contains { $0 === buffer } ?? false) { s.free[buffer.size, default: []].append(buffer) }
        }
    }

    /// The buffers mapped for DMA now (in use or held for reuse).
    var mappedCount: Int { state.withLock { $0.mapped.count } }

    /// Unmaps every buffer; later allocations fail with `.closed`. Returns the first unmap error.
    @discardableResult
    func close() -> VFIOError? {
        let buffers = state.withLock { s -> [NVMeBuffer] in
            s.closed = true
            defer { s.mapped = [:]; s.free = [:] }
            return Array(s.mapped.values)
        }
        var first: VFIOError?
        for buffer in buffers {
            do { try device.unmapDMA(iova: buffer.iova, size: UInt64(buffer.size)) } catch { if first == nil { first = error } }
        }
        return first
    }

    private func memsetZero(_ buffer: NVMeBuffer) {
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }
}
