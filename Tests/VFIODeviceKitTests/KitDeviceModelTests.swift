import Synchronization
import Testing
import VFIO
import VFIODeviceKit

/// The smallest model a user can write: one write-only callback region, one read-only
/// one, everything else from the protocol's defaults.
private final class TinyModel: DeviceModel {
    let deviceFlags: DeviceInfoFlags = [.platform]
    let regions = [
        RegionDescriptor(index: 0, size: 16, flags: [.write]),
        RegionDescriptor(index: 1, size: 16, flags: [.read]),
        RegionDescriptor.absent(2),
    ]
    let irqs = [IRQDescriptor(index: 0, count: 1, flags: [.eventfd])]
    private let last = Mutex<[UInt8]>([])

    func attach(_ context: any DeviceContext) {}
    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        let bytes = last.withLock { $0 }
        for k in 0..<buffer.count { buffer[k] = k < bytes.count ? bytes[k] : 0 }
    }
    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        last.withLock { $0 = Array(buffer) }
    }
    func reset() throws(VFIOError) { throw .errno("reset", DeviceErrno.EOPNOTSUPP) }
}

@Suite struct KitDeviceModelTests {
    @Test func defaultsAndInfo() {
        let model = TinyModel()
        #expect(model.deviceInfo == DeviceInfo(flags: [.platform], numRegions: 3, numIRQs: 1))
        #expect(model.migration == nil && model.dirtyLogging == nil)
        #expect(model.irq(0)?.irqInfo == IRQInfo(flags: [.eventfd], index: 0, count: 1))
        #expect(model.region(3) == nil)
        model.irqsConfigured(index: 0, enabledVectors: 1)  // default: ignored
        model.dmaMapped(try! IOVARange(iova: 0, length: 4096))
    }

    @Test func accessRouting() throws {
        let model = TinyModel()
        let ctx = InMemoryDeviceContext()
        model.attach(ctx)
        try model.access(ctx, write: 0, offset: 4, bytes: [1, 2, 3])
        #expect(try model.access(ctx, read: 1, offset: 0, count: 3) == [1, 2, 3])
        let einvalRead = VFIOError.errno("region read", DeviceErrno.EINVAL)
        let einvalWrite = VFIOError.errno("region write", DeviceErrno.EINVAL)
        #expect(throws: einvalRead) { try model.access(ctx, read: 0, offset: 0, count: 4) }   // write-only
        #expect(throws: einvalWrite) { try model.access(ctx, write: 1, offset: 0, bytes: [0]) } // read-only
        #expect(throws: einvalRead) { try model.access(ctx, read: 2, offset: 0, count: 1) }   // absent
        #expect(throws: einvalRead) { try model.access(ctx, read: 9, offset: 0, count: 1) }   // unknown
        #expect(throws: einvalRead) { try model.access(ctx, read: 1, offset: 0, count: 0) }   // empty
        #expect(throws: einvalRead) { try model.access(ctx, read: 1, offset: 12, count: 8) }  // past the end
        #expect(throws: einvalRead) { try model.access(ctx, read: 1, offset: UInt64.max, count: 2) }
        #expect(throws: VFIOError.errno("reset", DeviceErrno.EOPNOTSUPP)) { try model.reset() }
    }

    @Test func regionInfoFromDescriptors() {
        let callbacks = RegionDescriptor(index: 0, size: 0x1000, flags: [.read, .write, .mmap])
        #expect(callbacks.regionInfo(offset: 0).flags == [.read, .write])  // mmap is derived, not declared
        let noAreas = RegionDescriptor(index: 2, size: 0x2000, flags: [.read, .write], backing: .memory(mmapAreas: []))
        #expect(noAreas.regionInfo(offset: 0).flags == [.read, .write])
        #expect(noAreas.isMemoryBacked)
        let whole = RegionDescriptor(index: 2, size: 0x2000, flags: [.read, .write], backing: .memory(mmapAreas: [SparseMmapArea(offset: 0, size: 0x2000)]))
        let info = whole.regionInfo(offset: 2 << 40)
        #expect(info.flags == [.read, .write, .mmap, .caps] && info.offset == 2 << 40)
        #expect(whole.mmapArea(containing: 0x1FFF, count: 1) != nil)
        #expect(whole.mmapArea(containing: 0x1FFF, count: 2) == nil)
        #expect(whole.mmapArea(containing: UInt64.max, count: 2) == nil)
    }

    @Test func pciIRQDescriptors() {
        let irqs = IRQDescriptor.pci(intx: true, msiVectors: 4, msixVectors: 0, err: 1)
        #expect(irqs.map(\.index) == [0, 1, 2, 3, 4])
        #expect(irqs.map(\.count) == [1, 4, 0, 1, 0])
        #expect(irqs[1].flags == [.eventfd, .noResize])
        #expect(irqs[2].flags == [])
    }
}
