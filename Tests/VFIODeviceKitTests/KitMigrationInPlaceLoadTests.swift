import Synchronization
import Testing
import VFIO
import VFIODeviceKit

/// A model that takes its state through `loadState(from:version:)` and records where the
/// bytes were and what they held.
final class InPlaceLoadingModel: DeviceModel, MigratableDevice, @unchecked Sendable {
    struct Load {
        var address: Int
        var bytes: [UInt8]
        var version: UInt32
    }
    let loads = Mutex([Load]())
    let arrayLoads = Mutex(0)

    let migrationFeatures: MigrationFeatures = [.stopCopy, .preCopy]
    let migrationIdentity = MigrationIdentity(name: "recorder", version: 2)
    let deviceFlags: DeviceInfoFlags = [.platform]
    let regions: [RegionDescriptor] = []
    let irqs: [IRQDescriptor] = []
    var migration: (any MigratableDevice)? { self }
    func attach(_ context: any DeviceContext) {}
    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) { throw .errno("read", DeviceErrno.EINVAL) }
    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) { throw .errno("write", DeviceErrno.EINVAL) }
    func reset() throws(VFIOError) {}
    func setMigrationRunState(_ state: MigrationRunState) throws(VFIOError) {}
    func saveState() throws(VFIOError) -> [UInt8] { [] }
    func loadState(_ state: [UInt8], version: UInt32) throws(VFIOError) { arrayLoads.withLock { $0 += 1 } }
    func loadState(from state: UnsafeRawBufferPointer, version: UInt32) throws(VFIOError) {
        loads.withLock { $0.append(Load(address: Int(bitPattern: state.baseAddress), bytes: Array(state), version: version)) }
    }
}

/// RESUMING -> STOP hands a model that takes `loadState(from:)` the image where it lies in
/// the resuming stream when no delta changed it (no copy, no array of the state's size),
/// and the rebuilt image otherwise.
@Suite struct KitMigrationInPlaceLoadTests {
    static let image: [UInt8] = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ $0 >> 10) }

    /// Writes `stream` to a fresh destination and stops it; returns the load and whether
    /// its bytes lay inside the stream's memory.
    func load(_ stream: [UInt8]) throws -> (InPlaceLoadingModel.Load, inStream: Bool) {
        let allocator = MappingAllocator()
        let model = InPlaceLoadingModel()
        let driver = try MigrationDriver(device: model, bufferAllocator: allocator)
        try driver.setState(.stop)
        try driver.setState(.resuming)
        try driver.writeData(stream)
        let memory = allocator.given.withLock { $0 }
        try driver.setState(.stop)
        let loads = model.loads.withLock { $0 }
        try #require(loads.count == 1, "one load, got \(loads.count)")
        #expect(model.arrayLoads.withLock { $0 } == 0, "the array version was called as well")
        let inStream = memory.contains { loads[0].address >= $0.pointer && loads[0].address < $0.pointer + $0.count }
        return (loads[0], inStream)
    }

    /// A stream saved from a source with pre-copy: the image taken while running, then the
    /// final delta after `change` (if any) was applied to the source's data.
    func precopyStream(change: (inout [UInt8]) -> Void) throws -> (stream: [UInt8], final: [UInt8]) {
        let source = RecordingModel(data: Self.image)
        let driver = try MigrationDriver(device: source)
        try driver.setState(.preCopy)
        var stream = try drain(driver)
        var data = Self.image
        change(&data)
        source.data = data
        try driver.setState(.stopCopy)
        stream += try drain(driver)
        return (stream, data)
    }

    @Test func aStopCopyStreamIsLoadedFromWhereItLies() throws {
        let (loaded, inStream) = try load(try savedStream(data: Self.image))
        #expect(loaded.bytes == Self.image)
        #expect(loaded.version == 2)
        #expect(inStream, "the image was copied out of the stream first")
    }

    @Test func anUnchangedPrecopyImageIsLoadedFromWhereItLies() throws {
        let (stream, final) = try precopyStream { _ in }
        let (loaded, inStream) = try load(stream)
        #expect(loaded.bytes == final)
        #expect(inStream, "an empty final delta made a copy of the image")
    }

    @Test func aChangedPrecopyImageIsRebuiltBeforeTheLoad() throws {
        let (stream, final) = try precopyStream { data in
            data[100] ^= 0xFF
            data[250_000] ^= 0x0F
        }
        #expect(final != Self.image)
        let (loaded, inStream) = try load(stream)
        #expect(loaded.bytes == final)
        #expect(!inStream, "the changed image cannot lie in the stream")
    }

    /// A model with only the array version still gets its state (the default forwards).
    @Test func aModelWithoutTheInPlaceLoadGetsAnArray() throws {
        let stream = try savedStream(data: Self.image)
        let model = RecordingModel()
        let driver = try MigrationDriver(device: model)
        try driver.setState(.stop)
        try driver.setState(.resuming)
        try driver.writeData(stream)
        try driver.setState(.stop)
        #expect(model.log.withLock { $0.loads.map(\.state) } == [Self.image])
    }
}
