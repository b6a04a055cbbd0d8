import Synchronization
import Testing
import VFIO
import VFIODeviceKit

/// Counts what it hands out; can refuse (nil), as an allocator out of memory does.
final class CountingAllocator: BufferAllocator {
    let refuses: Bool
    let live = Mutex([Int: Int]())   // address -> byteCount
    let allocations = Mutex(0)

    init(refuses: Bool = false) { self.refuses = refuses }

    func allocate(byteCount: Int) -> UnsafeMutableRawPointer? {
        allocations.withLock { $0 += 1 }
        if refuses { return nil }
        let p = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
        live.withLock { $0[Int(bitPattern: p)] = byteCount }
        return p
    }

    func deallocate(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        let known = live.withLock { $0.removeValue(forKey: Int(bitPattern: pointer)) }
        precondition(known == byteCount, "deallocate with another count or an unknown pointer")
        pointer.deallocate()
    }
}

/// A resuming stream is kept in memory from the allocator the device was attached with,
/// all of it given back when the stream ends; an allocator that has none falls back to the
/// heap and the stream loads the same.
@Suite struct KitBufferAllocatorTests {
    static let image: [UInt8] = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }

    func resume(with allocator: CountingAllocator) throws -> RecordingModel {
        let stream = try savedStream(data: Self.image)
        let model = RecordingModel()
        let driver = try MigrationDriver(device: model, bufferAllocator: allocator)
        try driver.setState(.stop)
        try driver.setState(.resuming)
        var at = 0
        for size in [10, 54, 1000, 65_536, 100_000] where at < stream.count {
            let piece = Array(stream[at..<min(stream.count, at + size)])
            try driver.writeData(piece)
            at += piece.count
        }
        if at < stream.count { try driver.writeData(Array(stream[at...])) }
        try driver.setState(.stop)
        return model
    }

    @Test func theStreamLivesInTheAllocatorsMemoryAndGoesBack() throws {
        let allocator = CountingAllocator()
        let model = try resume(with: allocator)
        #expect(model.log.withLock { $0.loads.last?.state } == Self.image)
        #expect(allocator.allocations.withLock { $0 } >= 1)
        #expect(allocator.live.withLock { $0.isEmpty }, "memory kept after the stream ended")
    }

    @Test func anAllocatorWithoutMemoryFallsBackToTheHeap() throws {
        let allocator = CountingAllocator(refuses: true)
        let model = try resume(with: allocator)
        #expect(model.log.withLock { $0.loads.last?.state } == Self.image)
        #expect(allocator.allocations.withLock { $0 } >= 1)
    }
}
