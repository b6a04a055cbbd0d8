import Testing
import VFIO
import VFIODeviceKit

private typealias R = EduDevice.Register

private func read32(_ edu: EduDevice, _ ctx: InMemoryDeviceContext, _ offset: UInt64) throws -> UInt64 {
    try edu.access(ctx, read: bar0Index, offset: offset, width: 4)
}

private func write32(_ edu: EduDevice, _ ctx: InMemoryDeviceContext, _ offset: UInt64, _ value: UInt64) throws {
    try edu.access(ctx, write: bar0Index, offset: offset, width: 4, value: value)
}

private func configWrite(_ edu: EduDevice, _ ctx: InMemoryDeviceContext, _ offset: UInt64, _ width: Int, _ value: UInt64) throws {
    try edu.access(ctx, write: configIndex, offset: offset, width: width, value: value)
}

/// An edu with bus mastering on and MSI enabled by the client.
private func eduWithMSI() throws -> (EduDevice, InMemoryDeviceContext) {
    let (edu, ctx) = attached(EduDevice())
    try configWrite(edu, ctx, 0x04, 2, 0x6)
    edu.irqsConfigured(index: msi, enabledVectors: 1)
    return (edu, ctx)
}

@Suite struct KitEduDescriptionTests {
    @Test func deviceInfoRegionsIRQs() throws {
        let edu = EduDevice()
        #expect(edu.deviceInfo.flags == [.pci, .reset])
        #expect(edu.deviceInfo.numRegions == 9)
        #expect(edu.deviceInfo.numIRQs == 5)
        let bar0 = edu.region(0)!.regionInfo(offset: 0)
        #expect(bar0.size == 1 << 20 && bar0.flags == [.read, .write] && bar0.capabilities.isEmpty)
        #expect(edu.region(1)!.size == 0 && edu.region(6)!.size == 0 && edu.region(8)!.size == 0)
        #expect(edu.region(7)!.size == 256)
        #expect(edu.irq(intx)!.count == 1 && edu.irq(intx)!.flags == [.eventfd, .maskable, .automasked])
        #expect(edu.irq(msi)!.count == 1)
        #expect(edu.irq(msix)!.count == 0)
    }

    @Test func configSpace() throws {
        let (edu, ctx) = attached(EduDevice())
        #expect(try edu.access(ctx, read: configIndex, offset: 0, width: 4) == 0x11e8_1234)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x08, width: 4) == 0x00ff_0010)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x2C, width: 4) == 0x1100_1af4)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x3D, width: 1) == 1)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x34, width: 1) == 0x40)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x40, width: 1) == 0x05)  // MSI
        #expect(try edu.access(ctx, read: configIndex, offset: 0x41, width: 1) == 0)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x42, width: 2) == 0x0080)  // 64-bit, 1 vector
        try configWrite(edu, ctx, 0x10, 4, 0xFFFF_FFFF)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x10, width: 4) == 0xFFF0_0000)
        #expect(throws: VFIOError.self) { try edu.access(ctx, read: configIndex, offset: 0x100, count: 1) }
    }
}

@Suite struct KitEduRegisterTests {
    @Test func identificationAndLiveness() throws {
        let (edu, ctx) = attached(EduDevice())
        #expect(try read32(edu, ctx, R.identification) == 0x0100_00ed)
        try write32(edu, ctx, R.liveness, 0x1234_5678)
        #expect(try read32(edu, ctx, R.liveness) == 0xEDCB_A987)
        // Read-only identification.
        try write32(edu, ctx, R.identification, 0)
        #expect(try read32(edu, ctx, R.identification) == 0x0100_00ed)
    }

    @Test func accessWidths() throws {
        let (edu, ctx) = attached(EduDevice())
        // 8-byte accesses below 0x80 read all-ones and are ignored on write.
        #expect(try edu.access(ctx, read: bar0Index, offset: 0, width: 8) == UInt64.max)
        try edu.access(ctx, write: bar0Index, offset: R.liveness - 4, width: 8, value: 0)
        #expect(try read32(edu, ctx, R.liveness) == 0)
        // 1- and 2-byte and unaligned accesses fail.
        #expect(throws: VFIOError.errno("edu BAR0 read", DeviceErrno.EINVAL)) { try edu.access(ctx, read: bar0Index, offset: 0, width: 2) }
        #expect(throws: VFIOError.errno("edu BAR0 write", DeviceErrno.EINVAL)) { try edu.access(ctx, write: bar0Index, offset: 4, width: 1, value: 0) }
        #expect(throws: VFIOError.errno("edu BAR0 read", DeviceErrno.EINVAL)) { try edu.access(ctx, read: bar0Index, offset: 2, width: 4) }
        // Beyond the BAR: refused before the model.
        #expect(throws: VFIOError.errno("region read", DeviceErrno.EINVAL)) { try edu.access(ctx, read: bar0Index, offset: 1 << 20, width: 4) }
        // No register: all-ones. The DMA buffer is not visible through the BAR.
        #expect(try read32(edu, ctx, 0x10) == 0xFFFF_FFFF)
        #expect(try read32(edu, ctx, 0x40000) == 0xFFFF_FFFF)
        // DMA registers take 8-byte accesses; a 4-byte read returns the low half.
        try edu.access(ctx, write: bar0Index, offset: R.dmaSource, width: 8, value: 0x1_2345_6000)
        #expect(try edu.access(ctx, read: bar0Index, offset: R.dmaSource, width: 8) == 0x1_2345_6000)
        #expect(try read32(edu, ctx, R.dmaSource) == 0x2345_6000)
        try write32(edu, ctx, R.dmaCount, 0x10)
        #expect(try edu.access(ctx, read: bar0Index, offset: R.dmaCount, width: 8) == 0x10)
    }

    @Test func factorialWithoutIRQ() throws {
        let (edu, ctx) = try eduWithMSI()
        try write32(edu, ctx, R.factorial, 5)
        #expect(try read32(edu, ctx, R.status) & 1 == 0)
        #expect(try read32(edu, ctx, R.factorial) == 120)
        #expect(try read32(edu, ctx, R.interruptStatus) == 0)
        #expect(ctx.irqLog.isEmpty)
        try write32(edu, ctx, R.factorial, 12)
        #expect(try read32(edu, ctx, R.factorial) == 479_001_600)
        try write32(edu, ctx, R.factorial, 13)
        #expect(try read32(edu, ctx, R.factorial) == 1_932_053_504)  // 13! mod 2^32
        try write32(edu, ctx, R.factorial, 0)
        #expect(try read32(edu, ctx, R.factorial) == 1)
        try write32(edu, ctx, R.factorial, 0xFFFF_FFFF)
        #expect(try read32(edu, ctx, R.factorial) == 0)
    }

    @Test func factorialWithIRQ() throws {
        let (edu, ctx) = try eduWithMSI()
        try write32(edu, ctx, R.status, 0x80)
        #expect(try read32(edu, ctx, R.status) == 0x80)
        try write32(edu, ctx, R.factorial, 5)
        #expect(try read32(edu, ctx, R.factorial) == 120)
        #expect(try read32(edu, ctx, R.interruptStatus) == EduDevice.factorialIRQ)
        #expect(ctx.irqCount(index: msi) == 1)
        try write32(edu, ctx, R.acknowledgeInterrupt, 1)
        #expect(try read32(edu, ctx, R.interruptStatus) == 0)
        try write32(edu, ctx, R.status, 0)
        #expect(try read32(edu, ctx, R.status) == 0)
    }

    @Test func raiseAndAcknowledgeWithMSI() throws {
        let (edu, ctx) = try eduWithMSI()
        try write32(edu, ctx, R.raiseInterrupt, 0x8000_0000)
        #expect(try read32(edu, ctx, R.interruptStatus) == 0x8000_0000)
        try write32(edu, ctx, R.raiseInterrupt, 0x1)
        #expect(try read32(edu, ctx, R.interruptStatus) == 0x8000_0001)
        #expect(ctx.irqCount(index: msi) == 2)  // each raise sends a message
        try write32(edu, ctx, R.acknowledgeInterrupt, 0x8000_0000)
        #expect(try read32(edu, ctx, R.interruptStatus) == 0x1)
        try write32(edu, ctx, R.acknowledgeInterrupt, 0x1)
        #expect(try read32(edu, ctx, R.interruptStatus) == 0)
        #expect(ctx.irqCount(index: intx) == 0)
    }

    @Test func raiseAndAcknowledgeWithINTx() throws {
        let (edu, ctx) = attached(EduDevice())
        edu.irqsConfigured(index: intx, enabledVectors: 1)
        try write32(edu, ctx, R.raiseInterrupt, 0x4)
        #expect(ctx.irqCount(index: intx) == 1)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x06, width: 2) & 0x8 != 0)
        try write32(edu, ctx, R.acknowledgeInterrupt, 0x4)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x06, width: 2) & 0x8 == 0)
        #expect(!edu.configSpace.intxAsserted)
        // Interrupt Disable: the status bit follows the line, no signal.
        edu.irqMaskChanged(index: intx, vector: 0, masked: false)
        try configWrite(edu, ctx, 0x04, 2, 0x0400)
        try write32(edu, ctx, R.raiseInterrupt, 0x4)
        #expect(ctx.irqCount(index: intx) == 1)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x06, width: 2) & 0x8 != 0)
        // Enabling it again signals the still-asserted line.
        try configWrite(edu, ctx, 0x04, 2, 0x0000)
        #expect(ctx.irqCount(index: intx) == 2)
    }

    @Test func resetKeepsRegistersLikeQEMU() throws {
        let (edu, ctx) = try eduWithMSI()
        try write32(edu, ctx, R.liveness, 1)
        try edu.reset()
        #expect(try read32(edu, ctx, R.liveness) == 0xFFFF_FFFE)
        #expect(try edu.access(ctx, read: configIndex, offset: 0x04, width: 2) == 0)
    }
}

@Suite struct KitEduDMATests {
    private static let ram: UInt64 = 0x10_0000

    private func start(_ edu: EduDevice, _ ctx: InMemoryDeviceContext, src: UInt64, dst: UInt64, count: UInt64, command: UInt64) throws {
        try edu.access(ctx, write: bar0Index, offset: R.dmaSource, width: 8, value: src)
        try edu.access(ctx, write: bar0Index, offset: R.dmaDestination, width: 8, value: dst)
        try edu.access(ctx, write: bar0Index, offset: R.dmaCount, width: 8, value: count)
        try edu.access(ctx, write: bar0Index, offset: R.dmaCommand, width: 8, value: command)
    }

    @Test func roundTripBothDirections() throws {
        let (edu, ctx) = try eduWithMSI()
        let pattern = (0..<256).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        try ctx.map(iova: Self.ram, bytes: pattern + [UInt8](repeating: 0, count: 4096 - 256))
        // RAM -> device buffer (direction 0), with IRQ.
        try start(edu, ctx, src: Self.ram, dst: EduDevice.dmaBufferAddress + 0x10, count: 256, command: 0x1 | 0x4)
        // The transfer ran after the reply: RUN is clear, buffer filled, IRQ 0x100 raised.
        #expect(edu.lastDMAError == nil)
        #expect(try read32(edu, ctx, R.dmaCommand) & 1 == 0)
        #expect(Array(edu.deviceBuffer[0x10..<0x110]) == pattern)
        #expect(try read32(edu, ctx, R.interruptStatus) == EduDevice.dmaIRQ)
        #expect(ctx.irqCount(index: msi) == 1)
        // Device buffer -> RAM (direction 1), without IRQ, to another page.
        try start(edu, ctx, src: EduDevice.dmaBufferAddress + 0x10, dst: Self.ram + 0x800, count: 256, command: 0x1 | 0x2)
        #expect(try ctx.peek(iova: Self.ram + 0x800, count: 256) == pattern)
        #expect(ctx.irqCount(index: msi) == 1)
        #expect(edu.completedTransfers == 2)
    }

    @Test func dmaRunsOnlyAfterTheReply() throws {
        let (edu, ctx) = try eduWithMSI()
        try ctx.map(iova: Self.ram, size: 4096)
        try ctx.poke(iova: Self.ram, [1, 2, 3, 4])
        var command: [UInt8] = [0x1, 0, 0, 0, 0, 0, 0, 0]
        try edu.access(ctx, write: bar0Index, offset: R.dmaSource, width: 8, value: Self.ram)
        try edu.access(ctx, write: bar0Index, offset: R.dmaDestination, width: 8, value: EduDevice.dmaBufferAddress)
        try edu.access(ctx, write: bar0Index, offset: R.dmaCount, width: 8, value: 4)
        // Write the command outside `serve`: the work is queued, not run.
        try command.withUnsafeMutableBytes { raw in
            try edu.write(region: bar0Index, offset: R.dmaCommand, from: UnsafeRawBufferPointer(raw))
        }
        #expect(ctx.pendingWorkCount == 1)
        #expect(Array(edu.deviceBuffer[0..<4]) == [0, 0, 0, 0])
        // A register read served as a request still sees the transfer running...
        #expect(try read32(edu, ctx, R.dmaCommand) & 1 == 1)
        // ...and the work ran after its reply.
        #expect(ctx.pendingWorkCount == 0)
        #expect(try read32(edu, ctx, R.dmaCommand) & 1 == 0)
        #expect(Array(edu.deviceBuffer[0..<4]) == [1, 2, 3, 4])
        command[0] = 0
    }

    @Test func dmaSpanningAdjacentMappings() throws {
        let (edu, ctx) = try eduWithMSI()
        // QEMU's vIOMMU maps page by page: three 4 KiB maps, a transfer crossing two.
        for page in 0..<3 { try ctx.map(iova: Self.ram + UInt64(page) * 4096, size: 4096) }
        let data = (0..<2000).map { UInt8(truncatingIfNeeded: $0 * 13) }
        try ctx.poke(iova: Self.ram + 4096 - 1000, data)
        try start(edu, ctx, src: Self.ram + 4096 - 1000, dst: EduDevice.dmaBufferAddress, count: 2000, command: 0x1)
        #expect(edu.lastDMAError == nil)
        #expect(Array(edu.deviceBuffer[0..<2000]) == data)
        try start(edu, ctx, src: EduDevice.dmaBufferAddress, dst: Self.ram + 2 * 4096 - 500, count: 2000, command: 0x3)
        #expect(try ctx.peek(iova: Self.ram + 2 * 4096 - 500, count: 2000) == data)
    }

    @Test func dmaToUnmappedIOVAFailsWithoutTouchingMemory() throws {
        let (edu, ctx) = try eduWithMSI()
        try ctx.map(iova: Self.ram, size: 4096)
        try ctx.poke(iova: Self.ram, [UInt8](repeating: 0xAA, count: 4096))
        // Device buffer -> RAM where the range runs past the mapping.
        try start(edu, ctx, src: EduDevice.dmaBufferAddress, dst: Self.ram + 4000, count: 200, command: 0x3 | 0x4)
        #expect(edu.lastDMAError?.errnoValue == DeviceErrno.EFAULT)
        #expect(try ctx.peek(iova: Self.ram, count: 4096) == [UInt8](repeating: 0xAA, count: 4096))
        #expect(try read32(edu, ctx, R.dmaCommand) & 1 == 0)
        // As QEMU, the command completes and raises its interrupt.
        #expect(try read32(edu, ctx, R.interruptStatus) == EduDevice.dmaIRQ)
        // RAM -> device buffer from nowhere: the buffer is untouched.
        let before = edu.deviceBuffer
        try start(edu, ctx, src: 0x0800_0000, dst: EduDevice.dmaBufferAddress, count: 64, command: 0x1)
        #expect(edu.lastDMAError?.errnoValue == DeviceErrno.EFAULT)
        #expect(edu.deviceBuffer == before)
    }

    @Test func dmaOutsideTheDeviceBufferIsSkipped() throws {
        let (edu, ctx) = try eduWithMSI()
        try ctx.map(iova: Self.ram, size: 8192)
        try ctx.poke(iova: Self.ram, [UInt8](repeating: 0x55, count: 8192))
        let before = edu.deviceBuffer
        try start(edu, ctx, src: Self.ram, dst: EduDevice.dmaBufferAddress + 0x800, count: 0x801, command: 0x1)
        #expect(edu.lastDMAError != nil)
        #expect(edu.deviceBuffer == before)
        // A full 4 KiB transfer fits.
        try start(edu, ctx, src: Self.ram, dst: EduDevice.dmaBufferAddress, count: 4096, command: 0x1)
        #expect(edu.lastDMAError == nil)
        #expect(edu.deviceBuffer == [UInt8](repeating: 0x55, count: 4096))
    }

    @Test func dmaAddressIsClampedTo28Bits() throws {
        let (edu, ctx) = try eduWithMSI()
        try ctx.map(iova: Self.ram, bytes: [9, 8, 7, 6])
        try start(edu, ctx, src: 0x7000_0000 | Self.ram, dst: EduDevice.dmaBufferAddress, count: 4, command: 0x1)
        #expect(edu.lastDMAError == nil)
        #expect(Array(edu.deviceBuffer[0..<4]) == [9, 8, 7, 6])
    }

    @Test func dmaWithBusMasterOffDoesNothing() throws {
        let (edu, ctx) = attached(EduDevice())
        try configWrite(edu, ctx, 0x04, 2, 0x2)  // memory only
        try ctx.map(iova: Self.ram, size: 4096)
        try ctx.poke(iova: Self.ram, [UInt8](repeating: 0x11, count: 4096))
        try start(edu, ctx, src: Self.ram, dst: EduDevice.dmaBufferAddress, count: 16, command: 0x1)
        #expect(edu.deviceBuffer == [UInt8](repeating: 0, count: 4096))
        try start(edu, ctx, src: EduDevice.dmaBufferAddress, dst: Self.ram, count: 16, command: 0x3)
        #expect(try ctx.peek(iova: Self.ram, count: 4096) == [UInt8](repeating: 0x11, count: 4096))
        #expect(edu.lastDMAError != nil)
        #expect(try read32(edu, ctx, R.dmaCommand) & 1 == 0)
    }

    @Test func dmaRegistersIgnoreWritesWhileRunning() throws {
        let (edu, ctx) = try eduWithMSI()
        try ctx.map(iova: Self.ram, size: 4096)
        try edu.access(ctx, write: bar0Index, offset: R.dmaSource, width: 8, value: Self.ram)
        try edu.access(ctx, write: bar0Index, offset: R.dmaDestination, width: 8, value: EduDevice.dmaBufferAddress)
        try edu.access(ctx, write: bar0Index, offset: R.dmaCount, width: 8, value: 4)
        var bytes: [UInt8] = [1, 0, 0, 0]
        try bytes.withUnsafeMutableBytes { raw in
            try edu.write(region: bar0Index, offset: R.dmaCommand, from: UnsafeRawBufferPointer(raw))
        }
        // Still running (work queued): the source register ignores writes.
        bytes = [0, 0, 0, 0]
        try bytes.withUnsafeMutableBytes { raw in
            try edu.write(region: bar0Index, offset: R.dmaSource, from: UnsafeRawBufferPointer(raw))
        }
        #expect(try edu.access(ctx, read: bar0Index, offset: R.dmaSource, width: 8) == Self.ram)
        #expect(edu.completedTransfers == 1)
    }
}
