import Testing
import VFIO
import VFIODeviceKit

private let reg = EduDevice.Register.self
private let ramBase: UInt64 = 0x10000
private let ramSize = 0x8000

/// An edu attached through the kit to a fresh in-memory context with RAM mapped at
/// `ramBase` (filled with `pattern`), bus mastering on and INTx enabled by the client.
private func eduSetup(pattern: (Int) -> UInt8 = { UInt8(($0 * 31 + 7) & 0xFF) }) throws -> (EduDevice, AttachedDevice, InMemoryDeviceContext) {
    let context = InMemoryDeviceContext()
    try context.map(iova: ramBase, bytes: (0..<ramSize).map(pattern))
    let edu = EduDevice()
    let device = try AttachedDevice(model: edu, context: context)
    try edu.access(context, write: configIndex, offset: 4, width: 2, value: 0x6)  // memory + bus master
    edu.irqsConfigured(index: intx, enabledVectors: 1)
    return (edu, device, context)
}

private func write(_ edu: EduDevice, _ context: InMemoryDeviceContext, _ offset: UInt64, _ value: UInt64, width: Int = 4) throws {
    try edu.access(context, write: bar0Index, offset: offset, width: width, value: value)
}

private func read(_ edu: EduDevice, _ context: InMemoryDeviceContext, _ offset: UInt64, width: Int = 4) throws -> UInt64 {
    try edu.access(context, read: bar0Index, offset: offset, width: width)
}

/// A register write made the way a server makes it, but with the deferred work (the DMA)
/// left queued: the next request (here, a migration state change) comes first.
private func writeLeavingWorkQueued(_ edu: EduDevice, _ context: InMemoryDeviceContext, _ offset: UInt64, _ value: UInt64) throws {
    let bytes = (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    let failure = bytes.withUnsafeBytes { raw -> VFIOError? in
        do throws(VFIOError) {
            try DeviceAccess.write(edu, context: context, region: bar0Index, offset: offset, from: raw)
            return nil
        } catch { return error }
    }
    if let failure { throw failure }
}

@Suite struct KitMigrationEduTests {
    /// Source: liveness written, a factorial done (with its interrupt), one DMA done, one
    /// queued when the migration starts. Destination: resumes, runs the carried DMA,
    /// answers as the source would have.
    @Test func migratedMidWorkload() throws {
        let (source, sourceDevice, sourceContext) = try eduSetup()
        try write(source, sourceContext, reg.liveness, 0x1234_5678)
        try write(source, sourceContext, reg.status, UInt64(EduDevice.statusIRQOnFactorial))
        try write(source, sourceContext, reg.factorial, 10)
        #expect(try read(source, sourceContext, reg.interruptStatus) == UInt64(EduDevice.factorialIRQ))
        try write(source, sourceContext, reg.acknowledgeInterrupt, UInt64(EduDevice.factorialIRQ))
        // DMA 1, RAM -> device buffer, runs now.
        try write(source, sourceContext, reg.dmaSource, ramBase + 0x100, width: 8)
        try write(source, sourceContext, reg.dmaDestination, EduDevice.dmaBufferAddress, width: 8)
        try write(source, sourceContext, reg.dmaCount, 0x200, width: 8)
        try write(source, sourceContext, reg.dmaCommand, EduDevice.dmaStart, width: 8)
        #expect(source.completedTransfers == 1)
        // DMA 2, device buffer -> RAM with an interrupt: queued, not run yet.
        try write(source, sourceContext, reg.dmaSource, EduDevice.dmaBufferAddress + 0x10, width: 8)
        try write(source, sourceContext, reg.dmaDestination, ramBase + 0x4000, width: 8)
        try write(source, sourceContext, reg.dmaCount, 0x100, width: 8)
        try writeLeavingWorkQueued(source, sourceContext, reg.dmaCommand, EduDevice.dmaStart | EduDevice.dmaToRAM | EduDevice.dmaRaiseIRQ)
        #expect(source.dmaPending && sourceContext.pendingWorkCount == 1)

        let sourceDriver = try #require(sourceDevice.migration)
        #expect(try sourceDriver.setState(.stopCopy))
        #expect(source.runState == .stopped)
        // The queued work runs now (after the reply): a stopped edu leaves the DMA pending.
        sourceContext.runDeferredWork()
        #expect(source.dmaPending && source.completedTransfers == 1)
        let untouched: [UInt8] = (0x4000..<0x4100).map { (k: Int) -> UInt8 in UInt8((k * 31 + 7) & 0xFF) }
        #expect(try sourceContext.peek(iova: ramBase + 0x4000, count: 0x100) == untouched)
        let stream = try drain(sourceDriver)
        #expect(stream.count <= MigrationStream.headerSize + 4096 + 512)
        try sourceDriver.setState(.stop)

        // Destination: the guest's RAM migrated as it was on the source.
        let (destination, destinationDevice, destinationContext) = try eduSetup { _ in 0 }
        try destinationContext.poke(iova: ramBase, try sourceContext.peek(iova: ramBase, count: ramSize))
        destinationContext.clearIRQs()
        let driver = try #require(destinationDevice.migration)
        #expect(try driver.setState(.resuming))
        try driver.writeData(stream)
        #expect(try driver.setState(.running) == false)
        #expect(destination.runState == .running)
        #expect(destination.dmaPending)
        destinationContext.runDeferredWork()  // the carried DMA runs on the destination

        #expect(!destination.dmaPending && destination.completedTransfers == 2)
        #expect(destination.lastDMAError == nil)
        let buffer = destination.deviceBuffer
        #expect(buffer == source.deviceBuffer)
        #expect(try destinationContext.peek(iova: ramBase + 0x4000, count: 0x100) == Array(buffer[0x10..<0x110]))
        let copied: [UInt8] = (0x100..<0x300).map { (k: Int) -> UInt8 in UInt8((k * 31 + 7) & 0xFF) }
        #expect(Array(buffer[0..<0x200]) == copied)
        #expect(try read(destination, destinationContext, reg.liveness) == UInt64(~UInt32(0x1234_5678)))
        #expect(try read(destination, destinationContext, reg.factorial) == 3_628_800)
        #expect(try read(destination, destinationContext, reg.status) == UInt64(EduDevice.statusIRQOnFactorial))
        #expect(try read(destination, destinationContext, reg.interruptStatus) == UInt64(EduDevice.dmaIRQ))
        #expect(try read(destination, destinationContext, reg.dmaCommand, width: 8) == EduDevice.dmaToRAM | EduDevice.dmaRaiseIRQ)
        #expect(destinationContext.irqCount(index: intx) == 1)
        #expect(destination.configSpace.busMasterEnabled)
        #expect(destination.configSpace.intxAsserted)
        // The source never ran the transfer.
        #expect(source.completedTransfers == 1)
    }

    /// A raised INTx travels: the destination signals it once running.
    @Test func assertedINTxIsSignalledOnTheDestination() throws {
        let (source, sourceDevice, sourceContext) = try eduSetup()
        try write(source, sourceContext, reg.raiseInterrupt, 0x8)
        #expect(sourceContext.irqCount(index: intx) == 1)
        let sourceDriver = try #require(sourceDevice.migration)
        try sourceDriver.setState(.stopCopy)
        let stream = try drain(sourceDriver)
        let (destination, destinationDevice, destinationContext) = try eduSetup()
        let driver = try #require(destinationDevice.migration)
        try driver.setState(.resuming)
        try driver.writeData(stream)
        try driver.setState(.stop)
        #expect(destinationContext.irqCount(index: intx) == 0)
        try driver.setState(.running)
        #expect(destinationContext.irqCount(index: intx) == 1)
        #expect(try read(destination, destinationContext, reg.interruptStatus) == 0x8)
        try write(destination, destinationContext, reg.acknowledgeInterrupt, 0x8)
        #expect(!destination.configSpace.intxAsserted)
    }

    /// An abandoned migration: the DMA held while quiescent runs on the source again.
    @Test func quiescedDMAResumesOnTheSource() throws {
        let (edu, device, context) = try eduSetup()
        let driver = try #require(device.migration)
        try write(edu, context, reg.dmaSource, EduDevice.dmaBufferAddress, width: 8)
        try write(edu, context, reg.dmaDestination, ramBase, width: 8)
        try write(edu, context, reg.dmaCount, 0x10, width: 8)
        try writeLeavingWorkQueued(edu, context, reg.dmaCommand, EduDevice.dmaStart | EduDevice.dmaToRAM)
        try driver.setState(.preCopyP2P)
        context.runDeferredWork()
        #expect(edu.dmaPending && edu.runState == .quiescent)
        try driver.setState(.running)  // PRE_COPY_P2P -> RUNNING_P2P -> RUNNING: stream abandoned
        #expect(driver.openStream == nil)
        context.runDeferredWork()
        #expect(!edu.dmaPending && edu.completedTransfers == 1)
        #expect(try context.peek(iova: ramBase, count: 0x10) == [UInt8](repeating: 0, count: 0x10))
    }

    @Test func stoppedEduIgnoresRegisterWrites() throws {
        let (edu, device, context) = try eduSetup()
        try write(edu, context, reg.liveness, 1)
        try device.migration!.setState(.stop)
        try write(edu, context, reg.liveness, 2)
        try write(edu, context, reg.raiseInterrupt, 4)
        #expect(try read(edu, context, reg.liveness) == UInt64(~UInt32(1)))
        #expect(try read(edu, context, reg.interruptStatus) == 0)
        try device.migration!.setState(.running)
        try write(edu, context, reg.liveness, 2)
        #expect(try read(edu, context, reg.liveness) == UInt64(~UInt32(2)))
    }

    /// PRE_COPY on edu: initial bytes, the temporary end of stream, dirty bytes after a
    /// change, the stop-copy estimate, and the whole stream loading on a destination.
    @Test func precopyProgress() throws {
        let (edu, device, context) = try eduSetup()
        let driver = try #require(device.migration)
        let stateSize = try edu.saveState().count
        let full = UInt64(MigrationStream.headerSize + stateSize)
        #expect(try driver.dataSize() == full)
        #expect(try driver.setState(.preCopy))
        var info = try driver.precopyInfo()
        #expect(info.initialBytes == full && info.dirtyBytes == 0)
        var stream = try driver.readData(max: 100)
        #expect(stream.count == 100)
        #expect(try driver.precopyInfo().initialBytes == full - 100)
        stream += try drain(driver)
        #expect(stream.count == Int(full))
        info = try driver.precopyInfo()
        #expect(info.initialBytes == 0 && info.dirtyBytes == 0)
        // Idle: temporary end of stream, again and again, still in PRE_COPY.
        #expect(try driver.readData(max: 4096).isEmpty)
        #expect(try driver.readData(max: 4096).isEmpty)
        #expect(driver.currentState == .preCopy)
        // The device changes while running: dirty bytes, then a delta.
        try write(edu, context, reg.liveness, 0xCAFE)
        info = try driver.precopyInfo()
        #expect(info.initialBytes == 0 && info.dirtyBytes > 0)
        #expect(info.dirtyBytes < 200, "a register change is a small delta, not the state (\(info.dirtyBytes))")
        let delta = try drain(driver, chunk: 16)
        #expect(delta.count == Int(info.dirtyBytes))
        #expect(Array(delta.prefix(4)) == [0x53, 0x56, 0x46, 0x4d])
        #expect(try driver.precopyInfo().dirtyBytes == 0)
        #expect(try driver.readData(max: 10).isEmpty)
        // Stop-copy estimate: only what changed since, far less than the whole state.
        try write(edu, context, reg.factorial, 5)
        let estimate = try driver.dataSize()
        #expect(estimate < full / 4, "\(estimate)")
        #expect(try driver.setState(.stopCopy) == false)  // the same stream continues
        let final = try drain(driver)
        #expect(UInt64(final.count) == estimate)
        #expect(try driver.readData(max: 10).isEmpty)  // the real end
        #expect(try driver.dataSize() == 0)
        #expect(throws: VFIOError.self) { try driver.precopyInfo() }
        stream += delta + final

        let (destination, destinationDevice, destinationContext) = try eduSetup()
        let resuming = try #require(destinationDevice.migration)
        try resuming.setState(.resuming)
        try resuming.writeData(stream)
        try resuming.setState(.running)
        #expect(try read(destination, destinationContext, reg.liveness) == UInt64(~UInt32(0xCAFE)))
        #expect(try read(destination, destinationContext, reg.factorial) == 120)
    }

    /// DMA into the device buffer while pre-copying shows as dirty data of about a
    /// buffer's worth, through the P2P states too.
    @Test func precopyThroughP2PWithDMA() throws {
        let (edu, device, context) = try eduSetup()
        let driver = try #require(device.migration)
        try driver.setState(.preCopyP2P)  // RUNNING -> RUNNING_P2P -> PRE_COPY_P2P
        var stream = try drain(driver)
        try driver.setState(.preCopy)
        try write(edu, context, reg.dmaSource, ramBase, width: 8)
        try write(edu, context, reg.dmaDestination, EduDevice.dmaBufferAddress, width: 8)
        try write(edu, context, reg.dmaCount, 0x1000, width: 8)
        try write(edu, context, reg.dmaCommand, EduDevice.dmaStart, width: 8)
        let info = try driver.precopyInfo()
        #expect(info.dirtyBytes > 4000 && info.dirtyBytes < 4400, "\(info.dirtyBytes)")
        stream += try drain(driver)
        try driver.setState(.stopCopy)  // PRE_COPY -> PRE_COPY_P2P -> STOP_COPY
        stream += try drain(driver)
        let decoded = try MigrationStream.decode(stream, expecting: edu.migrationIdentity)
        #expect(decoded.state == (try edu.saveState()))
    }

    @Test func memoryBackedDeviceMigrates() throws {
        let sourceContext = InMemoryDeviceContext()
        let source = MemoryBackedDevice()
        sourceContext.provideMemory(for: source)
        let sourceDevice = try AttachedDevice(model: source, context: sourceContext)
        try source.access(sourceContext, write: bar0Index, offset: MemoryBackedDevice.Register.fill, width: 4, value: 0x5A)
        try source.access(sourceContext, write: bar0Index, offset: MemoryBackedDevice.Register.scratch, width: 4, value: 0xBEEF)
        try source.access(sourceContext, write: bar0Index, offset: 0x2345, bytes: [1, 2, 3])  // the mmap area
        try source.access(sourceContext, write: bar0Index, offset: 0x800 + 12, width: 4, value: 1)  // mask MSI-X vector 0
        let driver = try #require(sourceDevice.migration)
        try driver.setState(.preCopy)
        var stream = try drain(driver)
        try source.access(sourceContext, write: bar0Index, offset: 0x9000, bytes: [9])
        let info = try driver.precopyInfo()
        #expect(info.dirtyBytes > 0 && info.dirtyBytes < 300, "\(info.dirtyBytes)")
        try driver.setState(.stopCopy)
        stream += try drain(driver)

        let destinationContext = InMemoryDeviceContext()
        let destination = MemoryBackedDevice()
        destinationContext.provideMemory(for: destination)
        let destinationDevice = try AttachedDevice(model: destination, context: destinationContext)
        let resuming = try #require(destinationDevice.migration)
        try resuming.setState(.resuming)
        try resuming.writeData(stream)
        try resuming.setState(.running)
        let checksum = { (m: MemoryBackedDevice, c: InMemoryDeviceContext) throws -> UInt64 in
            try m.access(c, read: bar0Index, offset: MemoryBackedDevice.Register.checksum, width: 4)
        }
        #expect(try checksum(destination, destinationContext) == (try checksum(source, sourceContext)))
        #expect(try destination.access(destinationContext, read: bar0Index, offset: 0x2344, count: 5) == [0x5A, 1, 2, 3, 0x5A])
        #expect(try destination.access(destinationContext, read: bar0Index, offset: 0x9000, count: 1) == [9])
        #expect(try destination.access(destinationContext, read: bar0Index, offset: MemoryBackedDevice.Register.scratch, width: 4) == 0xBEEF)
        #expect(destination.configSpace.msixVectorMasked(0))
        // Another vector count is refused.
        let other = MemoryBackedDevice(vectorCount: 4)
        let otherContext = InMemoryDeviceContext()
        otherContext.provideMemory(for: other)
        let otherDriver = try #require(try AttachedDevice(model: other, context: otherContext).migration)
        try otherDriver.setState(.resuming)
        try otherDriver.writeData(stream)
        let e = #expect(throws: VFIOError.self) { try otherDriver.setState(.stop) }
        #expect(text(e).contains("vectors"), "\(text(e))")
        #expect(otherDriver.currentState == .error)
    }
}
