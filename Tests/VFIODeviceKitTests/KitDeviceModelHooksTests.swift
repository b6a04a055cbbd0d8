import Synchronization
import Testing
import VFIO
import VFIODeviceKit

/// A model that keeps every write and leaves the new hooks to their defaults.
private final class WriteLog: DeviceModel {
    let deviceFlags: DeviceInfoFlags = [.pci]
    let regions = [RegionDescriptor(index: 0, size: 0x100, flags: [.read, .write],
                                    ioEventAreas: [IOEventArea(offset: 0x10, width: 2, dataMatch: 0x1234), IOEventArea(offset: 0x20, width: 4)])]
    let irqs: [IRQDescriptor] = []
    let writes = Mutex<[(offset: UInt64, bytes: [UInt8])]>([])

    func attach(_ context: any DeviceContext) {}
    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {}
    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        writes.withLock { $0.append((offset, Array(buffer))) }
    }
    func reset() throws(VFIOError) {}
}

@Suite struct KitDeviceModelHooksTests {
    @Test func anIOEventWithADataMatchIsOneWriteOfThatValue() throws {
        let model = WriteLog()
        try model.ioEventSignalled(region: 0, area: model.regions[0].ioEventAreas[0], count: 5)
        let writes = model.writes.withLock { $0 }
        #expect(writes.count == 1 && writes.first?.offset == 0x10 && writes.first?.bytes == [0x34, 0x12])
        // Without a data match the value is unknown: the default writes nothing.
        try model.ioEventSignalled(region: 0, area: model.regions[0].ioEventAreas[1], count: 1)
        #expect(model.writes.withLock { $0.count } == 1)
    }

    @Test func theOtherHooksDefaultToNothing() throws {
        let model = WriteLog()
        model.sessionOpened()
        model.sessionClosed()
        #expect(model.deviceFeatures.isEmpty)
        #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE_GET 256", DeviceErrno.ENOTTY)) { _ = try model.getFeature(0x100, room: 8) }
        #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE_SET 256", DeviceErrno.ENOTTY)) { try model.setFeature(0x100, data: []) }
        // A context with no client to ask.
        #expect(!InMemoryDeviceContext().requestRelease())
        #expect(TrackingContext(wrapping: InMemoryDeviceContext()).requestRelease() == false)
    }

    @Test func requestIRQIndexesByBus() {
        #expect(DeviceInfoFlags.pci.requestIRQIndex == PCIIRQIndex.req.rawValue)
        #expect(DeviceInfoFlags.ccw.requestIRQIndex == CCWIRQIndex.req.rawValue)
        #expect(DeviceInfoFlags.ap.requestIRQIndex == APIRQIndex.req.rawValue)
        #expect(DeviceInfoFlags.platform.requestIRQIndex == nil)
    }

    @Test func areaDeclarationsAreChecked() {
        func check(_ areas: [IOEventArea], size: UInt64 = 0x100) -> Bool {
            (try? IOEventArea.validate(RegionDescriptor(index: 0, size: size, flags: [.write], ioEventAreas: areas))) != nil
        }
        #expect(check([IOEventArea(offset: 0, width: 1, dataMatch: 0xff), IOEventArea(offset: 1, width: 0), IOEventArea(offset: 0xf8, width: 8)]))
        #expect(!check([IOEventArea(offset: 0, width: 1, dataMatch: 0x100)]))
        #expect(!check([IOEventArea(offset: 0xfc, width: 8)]))
        #expect(!check([IOEventArea(offset: 4, width: 4), IOEventArea(offset: 4, width: 0)]))
        #expect(!check([IOEventArea(offset: 0, width: 16)]))
        #expect(!check([IOEventArea(offset: 0, width: 4)], size: 0))
    }
}
