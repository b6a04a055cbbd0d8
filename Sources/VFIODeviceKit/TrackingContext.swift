import Synchronization
import VFIO

/// The context the kit puts between a model and the server's context: the model is
/// attached to it, and it forwards everything to the server's `DeviceContext`, adding:
///
/// - **DMA dirty logging** (`VFIO_DEVICE_FEATURE_DMA_LOGGING_START` / `_STOP` /
///   `_REPORT`, what `vfio_log_ops` is to a kernel driver): while logging is on, every
///   *successful* `dmaWrite` marks the pages it wrote, inside the logged ranges. Models
///   need do nothing: all their DMA goes through the context. Reads mark nothing.
/// - **Interrupts held while stopped**: while the `MigrationDriver` has the device
///   stopped (STOP, STOP_COPY, RESUMING) the signals the model raises are kept, in order
///   and without repeats, and delivered when it runs again.
///
/// The server keeps implementing the plain `DeviceContext`; `AttachedDevice` builds this.
/// Thread-safe.
public final class TrackingContext: DeviceContext {
    /// The server's context.
    public let base: any DeviceContext
    /// The most ranges one START may give (the kernel's `LOG_MAX_RANGES`, 256 with 4 KiB
    /// pages).
    public let maximumRanges: Int
    /// The most pages one START may track in all, to bound the bitmaps' memory (2^30
    /// pages: 4 TiB at 4 KiB, a 128 MiB log).
    public let maximumTrackedPages: UInt64
    /// The smallest tracking page: a smaller request is raised to it (the chosen size is
    /// returned, as the kernel writes it back into `page_size`).
    public static let minimumTrackingPageSize: UInt64 = 4096

    private struct Log {
        var ranges: [IOVARange]           // sorted, non-overlapping
        var bitmaps: [DirtyPageBitmap]    // one per range, same order
        var pageSize: UInt64
        /// Started with no ranges (vfio-user's "log every write"): memory mapped while
        /// logging joins the log (`dmaMapped(_:)`).
        var followsMappings = false
        /// Tracked pages in all.
        var pages: UInt64 = 0

        /// The index of the first range whose `last` is at or above `address`.
        func firstIndex(lastAtLeast address: UInt64) -> Int {
            var low = 0, high = ranges.count
            while low < high {
                let mid = (low + high) / 2
                if ranges[mid].last < address { low = mid + 1 } else { high = mid }
            }
            return low
        }
    }

    private struct State {
        var log: Log?
        var holdInterrupts = false
        var held: [IRQSignal] = []
    }

    private let state = Mutex(State())

    public init(wrapping base: any DeviceContext, maximumRanges: Int = 256, maximumTrackedPages: UInt64 = 1 << 30) {
        self.base = base
        self.maximumRanges = maximumRanges
        self.maximumTrackedPages = maximumTrackedPages
    }

    // MARK: DeviceContext

    public func triggerIRQ(index: UInt32, vector: UInt32) {
        let forward = state.withLock { s -> Bool in
            guard s.holdInterrupts else { return true }
            let signal = IRQSignal(index: index, vector: vector)
            if !s.held.contains(signal) { s.held.append(signal) }
            return false
        }
        if forward { base.triggerIRQ(index: index, vector: vector) }
    }

    public func dmaRead(iova: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        try base.dmaRead(iova: iova, into: buffer)
    }

    public func dmaWrite(iova: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        try base.dmaWrite(iova: iova, from: buffer)
        guard buffer.count > 0 else { return }
        let (end, overflow) = iova.addingReportingOverflow(UInt64(buffer.count))
        let last = overflow ? UInt64.max : end - 1
        state.withLock { s in
            guard var log = s.log else { return }
            s.log = nil  // avoid a copy of the bitmaps while marking
            var k = log.firstIndex(lastAtLeast: iova)
            while k < log.ranges.count, log.ranges[k].start <= last {
                let from = max(iova, log.ranges[k].start)
                let to = min(last, log.ranges[k].last)
                try? log.bitmaps[k].mark(iova: from, length: to - from + 1)
                k += 1
            }
            s.log = log
        }
    }

    public func memory(forRegion index: UInt32) -> RegionMemory? { base.memory(forRegion: index) }

    public func afterReply(_ work: @escaping @Sendable () -> Void) { base.afterReply(work) }

    public func requestRelease() -> Bool { base.requestRelease() }

    // MARK: Interrupts while stopped (driven by MigrationDriver)

    /// Holds (`true`) or releases (`false`) the model's interrupts; releasing delivers the
    /// held ones in order.
    func holdInterrupts(_ hold: Bool) {
        let release = state.withLock { s -> [IRQSignal] in
            s.holdInterrupts = hold
            if hold { return [] }
            defer { s.held = [] }
            return s.held
        }
        for signal in release { base.triggerIRQ(index: signal.index, vector: signal.vector) }
    }

    /// The interrupts held while the device is stopped, in the order raised.
    public var heldInterrupts: [IRQSignal] { state.withLock { $0.held } }

    // MARK: DMA logging

    /// True between a successful `startDMALogging` and `stopDMALogging`.
    public var isDMALogging: Bool { state.withLock { $0.log != nil } }

    /// The logged ranges and the tracking page size, while logging.
    public var dmaLoggingRanges: (ranges: [IOVARange], pageSize: UInt64)? {
        state.withLock { s in s.log.map { ($0.ranges, $0.pageSize) } }
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`: starts recording the pages written by DMA
    /// inside `ranges`, at a tracking page of `pageSize` bytes.
    ///
    /// Checked as the kernel checks it (`vfio_ioctl_device_feature_logging_start()`): at
    /// least one and at most `maximumRanges` ranges; each `iova` and `length` a multiple
    /// of `pageSize`, not wrapping past 64 bits, not empty, not overlapping another range.
    /// Then, as a driver's `log_start`: `pageSize` must be a power of two; below 4096 it is
    /// raised to 4096 (the ranges must be aligned to the page size chosen); the ranges may
    /// hold `maximumTrackedPages` pages in all; logging must not be on already.
    ///
    /// - Returns: the tracking page size chosen (written back into `page_size`).
    /// - Throws: `VFIOError` named `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`: `EBUSY` when
    ///   logging is already on; `.invalidArgument` naming the bad value otherwise (the
    ///   kernel's EINVAL, E2BIG, EOVERFLOW).
    @discardableResult
    public func startDMALogging(ranges: [DMALoggingRange], pageSize: UInt64) throws(VFIOError) -> UInt64 {
        let operation = "VFIO_DEVICE_FEATURE_DMA_LOGGING_START"
        let set: IOVARangeSet
        do {
            set = try IOVARangeSet(dmaLoggingRanges: ranges.map { ($0.iova, $0.length) }, pageSize: pageSize,
                                   maximumRanges: maximumRanges)
        } catch { throw VFIOError(operation, error.reason) }
        guard pageSize != 0, pageSize & (pageSize - 1) == 0 else {
            throw .invalidArgument(operation, "page size \(pageSize) is not a power of two")
        }
        let chosen = max(pageSize, Self.minimumTrackingPageSize)
        var bitmaps: [DirtyPageBitmap] = []
        var pages: UInt64 = 0
        for range in set.ranges {
            let length = range.last - range.start + 1  // no wrap: checked above
            guard range.start & (chosen - 1) == 0, length & (chosen - 1) == 0 else {
                throw .invalidArgument(operation, "range \(range) is not aligned to the tracking page size 0x\(String(chosen, radix: 16)) (page sizes below 4 KiB are raised to 4 KiB)")
            }
            pages += length / chosen
            guard pages <= maximumTrackedPages else {
                throw .invalidArgument(operation, "the ranges hold more than \(maximumTrackedPages) pages of 0x\(String(chosen, radix: 16)) bytes")
            }
            do { bitmaps.append(try DirtyPageBitmap(iova: range.start, length: length, pageSize: chosen)) } catch {
                throw VFIOError(operation, error.reason)
            }
        }
        try state.withLock { (s: inout State) throws(VFIOError) in
            guard s.log == nil else { throw .errno(operation, DeviceErrno.EBUSY) }
            s.log = Log(ranges: set.ranges, bitmaps: bitmaps, pageSize: chosen, pages: pages)
        }
        return chosen
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` with vfio-user's `num_ranges` 0 ("all
    /// writes should be logged"): logs every DMA write to the memory the client has
    /// mapped, `mapped`, and to what it maps while logging (the server calls
    /// `dmaMapped(_:)` for each new mapping, before DMA can reach it).
    ///
    /// Each mapping is rounded out to the tracking page (`pageSize`, raised to 4096 when
    /// smaller); ranges that overlap or touch then are logged as one. An unmap leaves the
    /// log as it is: the pages written before it stay reportable until `stopDMALogging()`.
    /// No mapping at all is allowed (the log starts empty and grows with the maps).
    ///
    /// - Returns: the tracking page size chosen.
    /// - Throws: `VFIOError` named `VFIO_DEVICE_FEATURE_DMA_LOGGING_START`: `EBUSY` when
    ///   logging is already on; `.invalidArgument` when `pageSize` is not a power of two or
    ///   the mappings hold more than `maximumTrackedPages` tracking pages.
    @discardableResult
    public func startDMALoggingOfAllMappings(_ mapped: [IOVARange], pageSize: UInt64) throws(VFIOError) -> UInt64 {
        let operation = "VFIO_DEVICE_FEATURE_DMA_LOGGING_START"
        guard pageSize != 0, pageSize & (pageSize - 1) == 0 else {
            throw .invalidArgument(operation, "page size \(pageSize) is not a power of two")
        }
        let chosen = max(pageSize, Self.minimumTrackingPageSize)
        var set = IOVARangeSet()
        for range in mapped { set.insert(try Self.roundedOut(range, to: chosen)) }
        var log = Log(ranges: [], bitmaps: [], pageSize: chosen, followsMappings: true)
        try Self.add(set.ranges, to: &log, limit: maximumTrackedPages, operation: operation)
        try state.withLock { (s: inout State) throws(VFIOError) in
            guard s.log == nil else { throw .errno(operation, DeviceErrno.EBUSY) }
            s.log = log
        }
        return chosen
    }

    /// A mapping the client just made: while logging started by
    /// `startDMALoggingOfAllMappings(_:pageSize:)` is on, its pages not logged yet join
    /// the log, clean. Otherwise nothing happens. Call it before the mapping can be
    /// reached by DMA.
    /// - Throws: `ENOMEM` (`VFIO_USER_DMA_MAP`) when the log would hold more than
    ///   `maximumTrackedPages` tracking pages: refuse the mapping, whose writes could not
    ///   be logged (as the kernel refuses a map whose dirty bitmap it cannot allocate).
    public func dmaMapped(_ range: IOVARange) throws(VFIOError) {
        try state.withLock { (s: inout State) throws(VFIOError) in
            guard var log = s.log, log.followsMappings else { return }
            s.log = nil
            defer { s.log = log }
            var pieces = IOVARangeSet()
            let rounded = try Self.roundedOut(range, to: log.pageSize)
            pieces.insert(rounded)
            var k = log.firstIndex(lastAtLeast: rounded.start)
            while k < log.ranges.count, log.ranges[k].start <= rounded.last {
                pieces.remove(log.ranges[k])
                k += 1
            }
            do throws(VFIOError) {
                try Self.add(pieces.ranges, to: &log, limit: maximumTrackedPages, operation: "VFIO_USER_DMA_MAP")
            } catch {
                throw .errno("VFIO_USER_DMA_MAP: \(range) cannot join the DMA log of all mapped memory (\(error))", DeviceErrno.ENOMEM)
            }
        }
    }

    /// `range` widened to whole tracking pages.
    private static func roundedOut(_ range: IOVARange, to pageSize: UInt64) throws(VFIOError) -> IOVARange {
        try IOVARange(start: range.start & ~(pageSize - 1), last: range.last | (pageSize - 1))
    }

    /// Adds clean bitmaps for `ranges` (aligned to the log's page, sorted, overlapping no
    /// logged range) to `log`, keeping it sorted; nothing is added when one fails.
    private static func add(_ ranges: [IOVARange], to log: inout Log, limit: UInt64, operation: String) throws(VFIOError) {
        var pages = log.pages
        var bitmaps: [DirtyPageBitmap] = []
        for range in ranges {
            let count = (range.last - range.start) / log.pageSize + 1   // no wrap: start <= last
            guard pages <= limit, count <= limit - pages else {
                throw .invalidArgument(operation, "the ranges hold more than \(limit) pages of 0x\(String(log.pageSize, radix: 16)) bytes")
            }
            pages += count
            let (length, wraps) = (range.last - range.start).addingReportingOverflow(1)
            guard !wraps else { throw .invalidArgument(operation, "the range \(range) is the whole 64-bit address space") }
            do { bitmaps.append(try DirtyPageBitmap(iova: range.start, length: length, pageSize: log.pageSize)) } catch {
                throw VFIOError(operation, error.reason)
            }
        }
        for bitmap in bitmaps {
            let at = log.firstIndex(lastAtLeast: bitmap.range.start)
            log.ranges.insert(bitmap.range, at: at)
            log.bitmaps.insert(bitmap, at: at)
        }
        log.pages = pages
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP`: stops recording and forgets the log.
    /// Stopping when logging is off does nothing (the kernel's drivers return 0).
    public func stopDMALogging() {
        state.withLock { $0.log = nil }
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`: the pages written by DMA in
    /// `[iova, iova + length)` since logging started or since the last report of them,
    /// and clears them (read-and-clear).
    ///
    /// The bitmap's layout is the ABI's: bit `i` (bit `i % 64` of word `i / 64`) is report
    /// page `i` from `iova`, `ceil(length / pageSize / 64)` words. Any power-of-two
    /// `pageSize` of at least 4 KiB may be asked for, larger or smaller than the tracking
    /// page: a report page is dirty when a written tracked page overlaps it. Tracked pages
    /// only partly inside the report stay dirty (reported again next time).
    ///
    /// - Throws: `VFIOError` named `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT`: `EOVERFLOW`
    ///   when `iova + length` wraps; `.invalidArgument` when logging is off, `pageSize` is
    ///   not a power of two of at least 4096, `length` is 0, `iova` or `length` is not a
    ///   multiple of `pageSize`, or some of the range is not being logged (the first
    ///   address outside is named). Nothing is cleared on a throw.
    public func reportDirtyPages(iova: UInt64, length: UInt64, pageSize: UInt64) throws(VFIOError) -> [UInt64] {
        let operation = "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT"
        guard pageSize >= DirtyPageBitmap.minimumReportPageSize, pageSize & (pageSize - 1) == 0 else {
            throw .invalidArgument(operation, "page size \(pageSize) is not a power of two of at least 4096")
        }
        let (end, overflow) = iova.addingReportingOverflow(length)
        guard !overflow else { throw .errno(operation, DeviceErrno.EOVERFLOW) }
        guard length > 0 else { throw .invalidArgument(operation, "length is 0") }
        guard iova & (pageSize - 1) == 0, length & (pageSize - 1) == 0 else {
            throw .invalidArgument(operation, "iova 0x\(String(iova, radix: 16)) and length 0x\(String(length, radix: 16)) must be multiples of the page size 0x\(String(pageSize, radix: 16))")
        }
        return try state.withLock { (s: inout State) throws(VFIOError) -> [UInt64] in
            guard var log = s.log else {
                throw .invalidArgument(operation, "DMA logging is not started")
            }
            // The whole report must be logged: check before clearing anything.
            var cursor = iova
            for range in log.ranges where range.last >= cursor && range.start < end {
                if range.start > cursor { break }
                if range.last >= end - 1 { cursor = end; break }
                cursor = range.last + 1
            }
            guard cursor == end else {
                throw .invalidArgument(operation, "[0x\(String(iova, radix: 16)), 0x\(String(end, radix: 16))) is not all logged: 0x\(String(cursor, radix: 16)) lies outside the logged ranges")
            }
            s.log = nil
            defer { s.log = log }
            let granule = min(log.pageSize, pageSize)
            let reportShift = UInt64(pageSize.trailingZeroBitCount)
            var words = [UInt64](repeating: 0, count: Int(((length >> reportShift) + 63) / 64))
            for k in log.ranges.indices where log.ranges[k].start < end && log.ranges[k].last >= iova {
                let a = max(iova, log.ranges[k].start)
                let b = min(end - 1, log.ranges[k].last)  // inclusive
                let bits: [UInt8]
                do throws(VFIOError) {
                    bits = try log.bitmaps[k].report(iova: a, length: b - a + 1, pageSize: granule, clear: true)
                } catch { throw VFIOError(operation, error.reason) }
                for (byteIndex, byte) in bits.enumerated() where byte != 0 {
                    for bit in 0..<8 where byte & (1 << UInt8(bit)) != 0 {
                        let address = a + UInt64(byteIndex * 8 + bit) * granule
                        let reportPage = Int((address - iova) >> reportShift)
                        words[reportPage >> 6] |= 1 << UInt64(reportPage & 63)
                    }
                }
            }
            return words
        }
    }
}
