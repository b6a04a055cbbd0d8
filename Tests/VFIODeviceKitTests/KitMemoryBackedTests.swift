import Testing
import VFIO
import VFIODeviceKit

private typealias R = MemoryBackedDevice.Register

@Suite struct KitMemoryBackedDeviceTests {
    @Test func regionInfoHasSparseMmap() {
        let device = MemoryBackedDevice()
        let info = device.region(bar0Index)!.regionInfo(offset: 0x1000_0000)
        #expect(info.size == 0x10000)
        #expect(info.flags.isSuperset(of: [.read, .write, .mmap, .caps]))
        #expect(info.sparseMmapAreas == [SparseMmapArea(offset: 0x1000, size: 0xF000)])
        // The encoding decodes back to the same info.
        var reader = ByteReader(info.encoded(), context: "test")
        let decoded = try? RegionInfo(from: &reader)
        #expect(decoded == info)
        #expect(device.region(configIndex)!.size == 4096)
        #expect(device.irq(msix)!.count == 8)
        #expect(device.irq(intx)!.count == 0)
    }

    @Test func configSpaceIsPCIExpress() throws {
        let (device, ctx) = attached(MemoryBackedDevice())
        #expect(try device.access(ctx, read: configIndex, offset: 0, width: 4) == 0x5f10_1234)
        // BAR0: 64-bit prefetchable, 64 KiB.
        #expect(try device.access(ctx, read: configIndex, offset: 0x10, width: 4) == 0xC)
        try device.access(ctx, write: configIndex, offset: 0x10, width: 4, value: 0xFFFF_FFFF)
        try device.access(ctx, write: configIndex, offset: 0x14, width: 4, value: 0xFFFF_FFFF)
        #expect(try device.access(ctx, read: configIndex, offset: 0x10, width: 4) == 0xFFFF_000C)
        #expect(try device.access(ctx, read: configIndex, offset: 0x14, width: 4) == 0xFFFF_FFFF)
        let config = device.configSpace
        #expect(config.capabilities.map(\.id) == [0x01, 0x11, 0x10])
        #expect(config.msixTableLocation?.bar == 0 && config.msixTableLocation?.range == 0x800..<0x880)
        #expect(config.msixPBALocation?.range == 0xC00..<0xC08)
    }

    @Test func sparseAreasAreServedFromMemory() throws {
        let (device, ctx) = attached(MemoryBackedDevice())
        let memory = try #require(ctx.memory(forRegion: bar0Index))
        // A write inside the area lands in the server's memory (the model is bypassed).
        try device.access(ctx, write: bar0Index, offset: 0x2000, width: 4, value: 0xDDCC_BBAA)
        #expect(Array(memory.bytes[0x2000..<0x2004]) == [0xAA, 0xBB, 0xCC, 0xDD])
        // What the client writes through its mmap shows up in region reads.
        memory.bytes[0xFFFF] = 0x5A
        #expect(try device.access(ctx, read: bar0Index, offset: 0xFFFF, width: 1) == 0x5A)
        // Register page: callbacks.
        #expect(try device.access(ctx, read: bar0Index, offset: R.magic, width: 4) == 0x4b46_5653)
        try device.access(ctx, write: bar0Index, offset: R.scratch, width: 4, value: 0x1234)
        #expect(try device.access(ctx, read: bar0Index, offset: R.scratch, width: 4) == 0x1234)
        #expect(memory.bytes[8] == 0)  // register writes do not go to memory
        #expect(throws: VFIOError.self) { try device.access(ctx, read: bar0Index, offset: R.scratch, width: 2) }
        // Checksum and fill: the model uses the server's memory.
        #expect(try device.access(ctx, read: bar0Index, offset: R.checksum, width: 4) == 0xAA + 0xBB + 0xCC + 0xDD + 0x5A)
        try device.access(ctx, write: bar0Index, offset: R.fill, width: 4, value: 0x01)
        #expect(try device.access(ctx, read: bar0Index, offset: R.checksum, width: 4) == 0xF000)
        #expect(memory.bytes[0x0FFF] == 0 && memory.bytes[0x1000] == 1)
        // An access crossing from the register page into the area goes to the model, which refuses it.
        #expect(throws: VFIOError.self) { try device.access(ctx, read: bar0Index, offset: 0xFFC, width: 8) }
    }

    @Test func doorbellRaisesMSIXVector() throws {
        let (device, ctx) = attached(MemoryBackedDevice())
        try device.access(ctx, write: configIndex, offset: 0x04, width: 2, value: 0x6)
        device.irqsConfigured(index: msix, enabledVectors: 8)
        try device.access(ctx, write: bar0Index, offset: R.doorbell, width: 4, value: 5)
        #expect(ctx.irqLog == [IRQSignal(index: msix, vector: 5)])
        try device.access(ctx, write: bar0Index, offset: R.doorbell, width: 4, value: 8)  // no such vector
        #expect(ctx.irqLog.count == 1)
        #expect(try device.access(ctx, read: bar0Index, offset: R.doorbellCount, width: 4) == 2)
    }

    @Test func msixTableMaskingThroughTheBAR() throws {
        let (device, ctx) = attached(MemoryBackedDevice())
        try device.access(ctx, write: configIndex, offset: 0x04, width: 2, value: 0x6)
        device.irqsConfigured(index: msix, enabledVectors: 8)
        // Mask vector 3 in the table the model serves (entry 3's Vector Control).
        let control = UInt64(MemoryBackedDevice.msixTableOffset) + 3 * 16 + 12
        try device.access(ctx, write: bar0Index, offset: control, width: 4, value: 1)
        #expect(try device.access(ctx, read: bar0Index, offset: control, width: 4) == 1)
        try device.access(ctx, write: bar0Index, offset: R.doorbell, width: 4, value: 3)
        #expect(ctx.irqLog.isEmpty)
        let pba = UInt64(MemoryBackedDevice.msixPBAOffset)
        #expect(try device.access(ctx, read: bar0Index, offset: pba, width: 8) == 0b1000)
        // Unmask: the pending vector is delivered.
        try device.access(ctx, write: bar0Index, offset: control, width: 4, value: 0)
        #expect(ctx.irqLog == [IRQSignal(index: msix, vector: 3)])
        #expect(try device.access(ctx, read: bar0Index, offset: pba, width: 8) == 0)
        // Function mask in config space.
        let cap = try #require(device.configSpace.msixOffset)
        try device.access(ctx, write: configIndex, offset: UInt64(cap + 2), width: 2, value: 0xC000)
        try device.access(ctx, write: bar0Index, offset: R.doorbell, width: 4, value: 1)
        #expect(ctx.irqLog.count == 1)
        try device.access(ctx, write: configIndex, offset: UInt64(cap + 2), width: 2, value: 0x8000)
        #expect(ctx.irqLog.last == IRQSignal(index: msix, vector: 1))
    }

    @Test func resetClearsRegistersAndConfig() throws {
        let (device, ctx) = attached(MemoryBackedDevice())
        try device.access(ctx, write: bar0Index, offset: R.scratch, width: 4, value: 7)
        try device.access(ctx, write: configIndex, offset: 0x04, width: 2, value: 0x6)
        try device.reset()
        #expect(try device.access(ctx, read: bar0Index, offset: R.scratch, width: 4) == 0)
        #expect(try device.access(ctx, read: configIndex, offset: 0x04, width: 2) == 0)
    }
}

@Suite struct KitInMemoryContextTests {
    @Test func dmaAcrossAdjacentMappingsAndHoles() throws {
        let ctx = InMemoryDeviceContext()
        for page in 0..<4 { try ctx.map(iova: 0x1000 * UInt64(page + 1), size: 0x1000) }
        let data = (0..<0x3000).map { UInt8(truncatingIfNeeded: $0) }
        try data.withUnsafeBytes { try ctx.dmaWrite(iova: 0x1800, from: $0) }
        var back = [UInt8](repeating: 0, count: 0x3000)
        try back.withUnsafeMutableBytes { try ctx.dmaRead(iova: 0x1800, into: $0) }
        #expect(back == data)
        // A hole: unmap page 3; a transfer over it fails and leaves memory alone.
        #expect(ctx.unmap(iova: 0x3000, size: 0x1000) == 1)
        let before = try ctx.peek(iova: 0x1000, count: 0x2000)
        #expect(throws: VFIOError.errno("DMA write", DeviceErrno.EFAULT)) {
            try data.withUnsafeBytes { try ctx.dmaWrite(iova: 0x1800, from: $0) }
        }
        #expect(try ctx.peek(iova: 0x1000, count: 0x2000) == before)
        // Past the end of the space, and below the first mapping.
        var one = [UInt8](repeating: 0, count: 1)
        #expect(throws: VFIOError.self) { try one.withUnsafeMutableBytes { try ctx.dmaRead(iova: 0xFFF, into: $0) } }
        #expect(throws: VFIOError.self) { try one.withUnsafeMutableBytes { try ctx.dmaRead(iova: UInt64.max, into: $0) } }
        // Overlapping maps are refused.
        #expect(throws: VFIOError.self) { try ctx.map(iova: 0x1800, size: 0x100) }
    }

    @Test func readOnlyMappingRefusesDeviceWrites() throws {
        let ctx = InMemoryDeviceContext()
        try ctx.map(iova: 0, bytes: [1, 2, 3], writable: false)
        #expect(throws: VFIOError.self) { try [UInt8(9)].withUnsafeBytes { try ctx.dmaWrite(iova: 0, from: $0) } }
        #expect(try ctx.peek(iova: 0, count: 3) == [1, 2, 3])
    }

    @Test func replyRuleAndDeferredWork() throws {
        let ctx = InMemoryDeviceContext()
        try ctx.map(iova: 0, size: 16)
        // DMA inside a request fails with EDEADLK; deferred work runs after it.
        let failure: VFIOError? = ctx.serve {
            var byte = [UInt8](repeating: 0, count: 1)
            do { try byte.withUnsafeMutableBytes { try ctx.dmaRead(iova: 0, into: $0) } } catch let e as VFIOError { return e } catch { return nil }
            return nil
        }
        #expect(failure?.errnoValue == DeviceErrno.EDEADLK)
        let ran = Counter()
        ctx.serve {
            ctx.afterReply {
                ran.add()
                ctx.afterReply { ran.add() }  // work may queue work
            }
            #expect(ran.value == 0)
        }
        #expect(ran.value == 2)
        #expect(ctx.pendingWorkCount == 0)
    }

    @Test func irqCounters() {
        let ctx = InMemoryDeviceContext()
        ctx.triggerIRQ(index: 2, vector: 3)
        ctx.triggerIRQ(index: 2, vector: 3)
        ctx.triggerIRQ(index: 1, vector: 0)
        #expect(ctx.irqCount(index: 2, vector: 3) == 2)
        #expect(ctx.irqCount(index: 1) == 1)
        #expect(ctx.irqLog == [IRQSignal(index: 2, vector: 3), IRQSignal(index: 2, vector: 3), IRQSignal(index: 1, vector: 0)])
        ctx.clearIRQs()
        #expect(ctx.irqLog.isEmpty)
    }
}

import Synchronization

final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
