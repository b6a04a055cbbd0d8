import Glibc
import Testing
import VFIO
import VFIODeviceKit
import VFIOMigration
import VFIOUserClient
import VFIOUserServer
import VFIOSystem
import VFIOUserWire
import TestSupport

/// `Snapshot.save` never destroys the snapshot already at its path, stops at its size cap,
/// and writes nothing `restore` would refuse; `restore` refuses a snapshot with no state.
@Suite struct SnapshotSafetyTests {
    /// Forwards to `device`, but hands out `replace(stream)` for the stream the move to
    /// STOP_COPY opens: a device whose stream misbehaves in one chosen way.
    final class SwappedStreamDevice: VFIODevice {
        let device: any VFIODevice
        let replace: @Sendable (any MigrationDataStream) -> any MigrationDataStream
        init(_ device: any VFIODevice, replace: @escaping @Sendable (any MigrationDataStream) -> any MigrationDataStream) {
            self.device = device
            self.replace = replace
        }
        var name: String { device.name }
        func setMigrationState(_ state: MigrationState) throws(VFIOError) -> (any MigrationDataStream)? {
            let stream = try device.setMigrationState(state)
            guard state == .stopCopy, let stream else { return stream }
            return replace(stream)
        }
        func deviceInfo() throws(VFIOError) -> DeviceInfo { try device.deviceInfo() }
        func regionInfo(_ index: UInt32) throws(VFIOError) -> RegionInfo { try device.regionInfo(index) }
        func irqInfo(_ index: UInt32) throws(VFIOError) -> IRQInfo { try device.irqInfo(index) }
        func read(region index: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
            try device.read(region: index, offset: offset, into: buffer)
        }
        func write(region index: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
            try device.write(region: index, offset: offset, from: buffer)
        }
        func mapRegion(_ index: UInt32, offset: UInt64, size: Int) throws(VFIOError) -> any MappedRegion {
            try device.mapRegion(index, offset: offset, size: size)
        }
        func setIRQs(_ set: IRQSet) throws(VFIOError) { try device.setIRQs(set) }
        func reset() throws(VFIOError) { try device.reset() }
        func feature(_ request: DeviceFeature) throws(VFIOError) -> DeviceFeaturePayload? { try device.feature(request) }
        func validIOVARanges() throws(VFIOError) -> [IOVARange] { try device.validIOVARanges() }
        func mapDMA(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError) {
            try device.mapDMA(memory, offset: offset, size: size, iova: iova, access: access)
        }
        func unmapDMA(iova: UInt64, size: UInt64) throws(VFIOError) { try device.unmapDMA(iova: iova, size: size) }
        func hotResetInfo() throws(VFIOError) -> PCIHotResetInfo { try device.hotResetInfo() }
        func setIOEventfd(_ ioeventfd: IOEventfd) throws(VFIOError) { try device.setIOEventfd(ioeventfd) }
        func startDirtyLogging(ranges: [DMALoggingRange], pageSize: UInt64) throws(VFIOError) -> UInt64 {
            try device.startDirtyLogging(ranges: ranges, pageSize: pageSize)
        }
        func stopDirtyLogging() throws(VFIOError) { try device.stopDirtyLogging() }
        func reportDirtyPages(iova: UInt64, length: UInt64, pageSize: UInt64) throws(VFIOError) -> [UInt64] {
            try device.reportDirtyPages(iova: iova, length: length, pageSize: pageSize)
        }
    }

    /// A STOP_COPY stream that never ends: every read fills the buffer. The device's own
    /// stream is closed when this one is.
    final class EndlessStream: MigrationDataStream {
        let real: any MigrationDataStream
        init(_ real: any MigrationDataStream) { self.real = real }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int {
            buffer.initializeMemory(as: UInt8.self, repeating: 0x5a)
            return buffer.count
        }
        func write(from buffer: UnsafeRawBufferPointer) throws(VFIOError) { throw .errno("write", EINVAL) }
        func precopyInfo() throws(VFIOError) -> PrecopyInfo { throw .errno("VFIO_MIG_GET_PRECOPY_INFO", EINVAL) }
        func close() { real.close() }
    }

    /// A STOP_COPY stream that ends before any byte.
    final class EmptyStream: MigrationDataStream {
        let real: any MigrationDataStream
        init(_ real: any MigrationDataStream) { self.real = real }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) -> Int { 0 }
        func write(from buffer: UnsafeRawBufferPointer) throws(VFIOError) { throw .errno("write", EINVAL) }
        func precopyInfo() throws(VFIOError) -> PrecopyInfo { throw .errno("VFIO_MIG_GET_PRECOPY_INFO", EINVAL) }
        func close() { real.close() }
    }

    /// The names in `directory` besides . and ..
    static func entries(_ directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The server goes away after the first MiB of a save's stream: the snapshot saved
    /// before is still there, byte for byte, and still restores.
    @Test func aSaveThatFailsMidStreamLeavesTheOldSnapshot() throws {
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-snap-XXXXXX")
        defer { _ = system("rm -rf '\(directory)'") }
        let path = directory + "/state.snap"
        let fixture = try UserServerFixture(model: StateModel())
        let client = try fixture.connect()
        defer { client.close() }
        let count = try Snapshot.save(client, to: path)
        let good = try #require(readFile(path))
        #expect(good.count == Snapshot.headerSize + Int(count))

        var pieces = 0
        do {
            _ = try Snapshot.save(client, to: path) { _ in
                pieces += 1
                if pieces == 1 { fixture.server.stop() }
            }
            Issue.record("a save whose server went away mid-stream succeeded")
        } catch {
            #expect(error.step.contains("STOP_COPY: migration data read"), "\(error)")
        }
        #expect(pieces == 1)
        #expect(readFile(path) == good, "the snapshot saved before was changed")
        #expect(Self.entries(directory) == ["state.snap"])
        let target = try VFIOUserClient.serving(StateModel(), name: "model:state")
        #expect(try Snapshot.restore(path, into: target) == count)
    }

    /// A stream longer than the cap fails the save once it passes the cap, names the cap,
    /// leaves the old snapshot and puts the device back to RUNNING; the cap is inclusive.
    @Test func theSizeCapStopsALongStream() throws {
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-snap-XXXXXX")
        defer { _ = system("rm -rf '\(directory)'") }
        let path = directory + "/state.snap"
        let device = try VFIOUserClient.serving(StateModel(), name: "model:state")
        let count = try Snapshot.save(device, to: path)
        let good = try #require(readFile(path))
        // Exactly at the cap: saved.
        #expect(try Snapshot.save(device, to: path, maxBytes: count) == count)
        #expect(readFile(path) == good)
        // One byte under: refused.
        do {
            _ = try Snapshot.save(device, to: path, maxBytes: count - 1)
            Issue.record("a stream over the cap was saved")
        } catch {
            #expect(error.error.operation == Snapshot.sizeCapOperation, "\(error)")
            #expect(error.description.contains("cap of \(count - 1) bytes"), "\(error)")
            #expect(error.recovery?.contains("back in RUNNING") == true, "\(error)")
        }
        #expect(try device.migrationState() == .running)
        #expect(readFile(path) == good)
        #expect(Self.entries(directory) == ["state.snap"])
    }

    /// An endless stream (a hostile or broken device) stops at the cap: the save ends, the
    /// disk is not filled.
    @Test func anEndlessStreamStopsAtTheCap() throws {
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-snap-XXXXXX")
        defer { _ = system("rm -rf '\(directory)'") }
        let path = directory + "/edu.snap"
        let edu = try VFIOUserClient.serving(EduDevice(), name: "model:edu")
        let device = SwappedStreamDevice(edu) { EndlessStream($0) }
        var written: UInt64 = 0
        do {
            _ = try Snapshot.save(device, to: path, maxBytes: 8 << 20) { written = $0.bytes }
            Issue.record("an endless stream was saved")
        } catch {
            #expect(error.error.operation == Snapshot.sizeCapOperation, "\(error)")
        }
        #expect(written <= 8 << 20)
        #expect(try edu.migrationState() == .running)
        #expect(Self.entries(directory).isEmpty)
    }

    /// A stream that ends before any byte saves nothing (restore would refuse it) and leaves
    /// the old snapshot.
    @Test func anEmptyStreamIsNotSaved() throws {
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-snap-XXXXXX")
        defer { _ = system("rm -rf '\(directory)'") }
        let path = directory + "/edu.snap"
        let edu = try VFIOUserClient.serving(EduDevice(), name: "model:edu")
        _ = try Snapshot.save(edu, to: path)
        let good = try #require(readFile(path))
        do {
            _ = try Snapshot.save(SwappedStreamDevice(edu) { EmptyStream($0) }, to: path)
            Issue.record("an empty stream was saved")
        } catch {
            #expect(error.description.contains("ended before any state"), "\(error)")
        }
        #expect(try edu.migrationState() == .running)
        #expect(readFile(path) == good)
        #expect(Self.entries(directory) == ["edu.snap"])
    }

    /// A snapshot whose header states 0 bytes is refused before the device is touched.
    @Test func restoreRefusesASnapshotWithNoState() throws {
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-snap-XXXXXX")
        defer { _ = system("rm -rf '\(directory)'") }
        let path = directory + "/empty.snap"
        try #require(writeFile(path, Snapshot.header(count: 0)))
        let edu = try VFIOUserClient.serving(EduDevice(), name: "model:edu")
        try edu.write(UInt32(0x1234), region: bar0, offset: EduDevice.Register.liveness)
        do {
            _ = try Snapshot.restore(path, into: edu)
            Issue.record("a snapshot with no state was restored")
        } catch {
            #expect(error.description.contains("0 bytes of device state"), "\(error)")
            #expect(error.recovery == nil, "the device was touched: \(error)")
        }
        #expect(try edu.migrationState() == .running)
        #expect(try edu.read(UInt32.self, region: bar0, offset: EduDevice.Register.liveness) == ~UInt32(0x1234))
    }

    /// The tool: `--max-size` caps `vfio save` and its error names the flag; the snapshot
    /// already there survives; `vfio restore` of a snapshot with no state says why.
    @Test func theToolCapsSavesAndRefusesEmptySnapshots() throws {
        guard let tool = builtToolPath() else {
            print("SnapshotSafetyTests: no built vfio next to the tests; the tool run is skipped")
            return
        }
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-snap-XXXXXX")
        defer { _ = system("rm -rf '\(directory)'") }
        let path = directory + "/edu.snap"
        let saved = try ToolProcess(tool: tool, ["save", "model:edu", path])
        #expect(saved.waitForExit(timeout: .seconds(60)) == .exited(0), "\(saved.log)")
        let good = try #require(readFile(path))

        let capped = try ToolProcess(tool: tool, ["save", "model:edu", path, "--max-size", "1K"])
        #expect(capped.waitForExit(timeout: .seconds(60)) == .exited(1), "\(capped.log)")
        #expect(capped.log.contains("1024 bytes") && capped.log.contains("--max-size"), "\(capped.log)")
        #expect(readFile(path) == good)
        #expect(Self.entries(directory) == ["edu.snap"])

        let empty = directory + "/empty.snap"
        try #require(writeFile(empty, Snapshot.header(count: 0)))
        let restored = try ToolProcess(tool: tool, ["restore", empty, "model:edu"])
        #expect(restored.waitForExit(timeout: .seconds(60)) == .exited(1), "\(restored.log)")
        #expect(restored.log.contains("0 bytes of device state"), "\(restored.log)")
    }
}
