import Glibc
import Synchronization
import Testing
import VFIO
import VFIODeviceKit

/// Hands out fresh anonymous mappings (nothing faulted in until touched), and remembers
/// them so a test can ask the kernel which pages are resident (`mincore`).
final class MappingAllocator: BufferAllocator {
    let given = Mutex([(pointer: Int, count: Int)]())

    func allocate(byteCount: Int) -> UnsafeMutableRawPointer? {
        let raw = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let raw, raw != MAP_FAILED else { return nil }
        given.withLock { $0.append((Int(bitPattern: raw), byteCount)) }
        return raw
    }

    func deallocate(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        given.withLock { $0.removeAll { $0.pointer == Int(bitPattern: pointer) } }
        _ = munmap(pointer, byteCount)
    }

    /// How many of the pages of the mapping at `pointer` are resident.
    static func residentPages(_ pointer: Int, _ count: Int) -> (resident: Int, pages: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let pages = (count + page - 1) / page
        var vector = [UInt8](repeating: 0, count: pages)
        let rc = mincore(UnsafeMutableRawPointer(bitPattern: pointer), count, &vector)
        precondition(rc == 0, "mincore: errno \(errno)")
        return (vector.filter { $0 & 1 != 0 }.count, pages)
    }
}

/// A model that knows its state size (`stateSizeHint`) gets the memory of a resuming
/// stream reserved and faulted in on STOP -> RESUMING, before the data arrives; the data
/// then lands there without another allocation. A wrong hint costs nothing but memory.
@Suite struct KitResumingPreparationTests {
    static let image: [UInt8] = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 9) }

    func write(_ stream: [UInt8], to driver: MigrationDriver, in size: Int = 65_536) throws {
        for piece in pieces(of: stream.count, sizes: [size]) { try driver.writeData(Array(stream[piece])) }
    }

    @Test func enteringResumingReservesTheHintedSizeFaultedIn() throws {
        let stream = try savedStream(data: Self.image)
        let allocator = MappingAllocator()
        let model = RecordingModel(stateSizeHint: Self.image.count)
        let driver = try MigrationDriver(device: model, bufferAllocator: allocator)
        try driver.setState(.stop)
        #expect(allocator.given.withLock { $0.isEmpty })
        try driver.setState(.resuming)

        let given = allocator.given.withLock { $0 }
        try #require(given.count == 1, "one reservation on entering RESUMING, got \(given.count)")
        #expect(given[0].count >= MigrationStream.headerSize + Self.image.count)
        let (resident, pages) = MappingAllocator.residentPages(given[0].pointer, given[0].count)
        #expect(resident == pages, "\(resident) of \(pages) pages faulted in before the data")

        try write(stream, to: driver)
        #expect(allocator.given.withLock { $0.map(\.pointer) } == [given[0].pointer], "the stream moved while data arrived")
        try driver.setState(.stop)
        #expect(model.log.withLock { $0.loads.last?.state } == Self.image)
        #expect(allocator.given.withLock { $0.isEmpty }, "memory kept after the stream ended")
    }

    @Test func withoutAHintNothingIsReservedBeforeTheData() throws {
        let allocator = MappingAllocator()
        let driver = try MigrationDriver(device: RecordingModel(), bufferAllocator: allocator)
        try driver.setState(.stop)
        try driver.setState(.resuming)
        #expect(allocator.given.withLock { $0.isEmpty })
    }

    @Test(arguments: [1, 4096, 2_000_000])
    func aWrongHintStillLoadsTheStream(hint: Int) throws {
        let stream = try savedStream(data: Self.image)
        let allocator = MappingAllocator()
        let model = RecordingModel(stateSizeHint: hint)
        let driver = try MigrationDriver(device: model, bufferAllocator: allocator)
        try driver.setState(.stop)
        try driver.setState(.resuming)
        try write(stream, to: driver, in: 300_001)
        try driver.setState(.stop)
        #expect(model.log.withLock { $0.loads.last?.state } == Self.image)
        #expect(allocator.given.withLock { $0.isEmpty })
    }

    @Test func aHintBeyondTheStreamLimitReservesOnlyTheLimit() throws {
        let allocator = MappingAllocator()
        let driver = try MigrationDriver(device: RecordingModel(stateSizeHint: 1 << 40), maximumStreamSize: 1 << 20,
                                         bufferAllocator: allocator)
        try driver.setState(.stop)
        try driver.setState(.resuming)
        #expect(allocator.given.withLock { $0.map(\.count) } == [1 << 20])
    }
}
