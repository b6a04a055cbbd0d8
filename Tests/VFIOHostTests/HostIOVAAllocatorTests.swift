import Glibc
import Testing
import VFIO
import VFIOHost

@Suite struct HostIOVAAllocatorTests {
    /// intel-iommu's usual ranges: everything but the MSI window.
    func intelRanges() throws -> [IOVARange] {
        [try IOVARange(start: 0, last: 0xfedf_ffff), try IOVARange(start: 0xfef0_0000, last: 0xffff_ffff_ffff)]
    }

    @Test func allocationsAreAlignedDisjointAndInsideTheValidRanges() throws {
        var allocator = try IOVAAllocator(validRanges: intelRanges())
        var seen: [(UInt64, UInt64)] = []
        for size: UInt64 in [4096, 8192, 0x10_0000, 4096, 0x20_0000] {
            let iova = try allocator.allocate(size: size, alignment: 4096)
            #expect(iova % 4096 == 0)
            let range = try IOVARange(iova: iova, length: size)
            #expect(allocator.valid.contains(range))
            for (start, length) in seen {
                #expect(!(try IOVARange(iova: start, length: length)).overlaps(range))
            }
            seen.append((iova, size))
        }
    }

    @Test func limitKeepsAllocationsBelowADMAMaskAndFailsWithENOSPCWhenFull() throws {
        var allocator = try IOVAAllocator(validRanges: [try IOVARange(start: 0x1000, last: 0xffff_ffff)])
        let limit: UInt64 = (1 << 28) - 1
        let first = try allocator.allocate(size: 1 << 27, alignment: 1 << 20, limit: limit)
        #expect(first == 1 << 20)  // 0x1000 rounded up to the alignment
        #expect(first + (1 << 27) - 1 <= limit)
        let error = #expect(throws: VFIOError.self) { try allocator.allocate(size: 1 << 27, alignment: 1 << 20, limit: limit) }
        #expect(error?.errnoValue == ENOSPC)
        // Without the limit it fits above.
        let above = try allocator.allocate(size: 1 << 27, alignment: 1 << 20)
        #expect(above > limit - (1 << 27))
    }

    @Test func allocationSkipsAHoleTooSmallAndTheReservedWindow() throws {
        var allocator = try IOVAAllocator(validRanges: [
            try IOVARange(start: 0, last: 0xfff), try IOVARange(start: 0xfef0_0000, last: 0xffff_ffff),
        ])
        #expect(try allocator.allocate(size: 0x2000) == 0xfef0_0000)
        #expect(try allocator.allocate(size: 0x1000) == 0)
    }

    @Test func releaseMakesRoomForTheSameRangeAgain() throws {
        var allocator = try IOVAAllocator(validRanges: [try IOVARange(start: 0x10000, last: 0x1ffff)])
        let a = try allocator.allocate(size: 0x10000)
        #expect(throws: VFIOError.self) { try allocator.allocate(size: 0x1000) }
        allocator.release(iova: a)
        #expect(try allocator.allocate(size: 0x1000) == 0x10000)
        allocator.releaseAll()
        #expect(allocator.free == allocator.valid)
    }

    @Test func reserveRefusesOutsideAndOverlapping() throws {
        var allocator = try IOVAAllocator(validRanges: intelRanges())
        try allocator.reserve(iova: 0x10_0000, size: 0x1000)
        #expect(throws: VFIOError.self) { try allocator.reserve(iova: 0xfee0_0000, size: 0x1000) }
        let overlap = #expect(throws: VFIOError.self) { try allocator.reserve(iova: 0x10_0000, size: 0x2000) }
        #expect(overlap?.errnoValue == EEXIST)
        // An allocation never lands on the reserved range.
        for _ in 0..<300 {
            let iova = try allocator.allocate(size: 0x1000)
            #expect(iova != 0x10_0000)
        }
    }

    @Test func badSizesAndAlignmentsAreRefused() throws {
        var allocator = try IOVAAllocator(validRanges: intelRanges())
        #expect(throws: VFIOError.self) { try allocator.allocate(size: 0) }
        #expect(throws: VFIOError.self) { try allocator.allocate(size: 4096, alignment: 3000) }
    }
}
