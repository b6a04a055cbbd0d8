import Glibc
import Logging
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserClient
import VFIOUserServer

/// A server on a real UNIX socket in a fresh directory, stopped and removed at the end.
package final class UserServerFixture: @unchecked Sendable {
    package let directory: String
    package let path: String
    package let server: VFIOUserServer
    package let model: any DeviceModel

    package init(model: any DeviceModel = EduDevice(), configuration: VFIOUserServer.Configuration = .init(),
                 logger: Logger? = nil) throws {
        directory = try makeTemporaryDirectory("/tmp/swift-vfio-user-XXXXXX")
        path = directory + "/device.sock"
        self.model = model
        server = try VFIOUserServer(model: model, configuration: configuration, logger: logger)
        try server.listen(path: path)
    }

    package func connect(_ configuration: VFIOUserClient.Configuration = .init()) throws -> VFIOUserClient {
        try VFIOUserClient(path: path, configuration: configuration)
    }

    deinit {
        server.stop()
        unlink(path)
        rmdir(directory)
    }
}

/// A memory-backed 4 MiB region 0, all of it mmap-able: bulk transfers.
package final class BulkMemoryModel: DeviceModel {
    package static let size: UInt64 = 4 << 20
    package let deviceFlags: DeviceInfoFlags = [.pci]
    package let regions = [RegionDescriptor(index: 0, size: BulkMemoryModel.size, flags: [.read, .write],
                                            backing: .memory(mmapAreas: [SparseMmapArea(offset: 0, size: BulkMemoryModel.size)]))]
    package let irqs: [IRQDescriptor] = []
    package init() {}
    package func attach(_ context: any DeviceContext) {}
    package func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) { throw .errno("read", EINVAL) }
    package func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) { throw .errno("write", EINVAL) }
    package func reset() throws(VFIOError) {}
}

/// Waits up to `milliseconds` for `event` to be signalled; returns its count or nil.
package func waitSignalled(_ event: EventFD, milliseconds: Int32 = 2000) throws -> UInt64? {
    var p = pollfd(fd: event.fd, events: Int16(POLLIN), revents: 0)
    guard poll(&p, 1, milliseconds) > 0 else { return nil }
    return try event.consume()
}

/// Expects `body` to throw a `VFIOError` carrying errno `code`.
package func expectErrno(_ code: Int32, _ sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected errno \(VFIOError.errnoName(code)), the call succeeded", sourceLocation: sourceLocation)
    } catch let error as VFIOError {
        #expect(error.errnoValue == code, "expected \(VFIOError.errnoName(code)), got \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
    }
}

/// PCI config space and BAR0, as region indices.
package let config = PCIRegionIndex.config.rawValue
package let bar0 = PCIRegionIndex.bar0.rawValue
