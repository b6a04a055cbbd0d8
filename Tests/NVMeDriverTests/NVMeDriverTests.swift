import NVMe
import NVMeController
import NVMeDriver
import Testing
import TestSupport
import VFIO
import VFIOSystem
import VFIOUserClient

/// The driver suite against the Swift NVMe controller, served in this process over a
/// real socket (vfio-user): shared-memory DMA, MSI-X on eventfds, doorbells as region writes.
@Suite struct NVMeDriverTests {
    /// A client of a fresh controller with one 8 MiB RAM namespace.
    func withController(blockSize: Int = 512, ioQueues: Int = 4, name: String = #function,
                        _ body: (VFIOUserClient) async throws -> Void) async throws {
        let client = try VFIOUserClient.serving(try NVMeDevice(ramBytes: 8 << 20, blockSize: blockSize, ioQueues: ioQueues), name: "nvme-driver:\(name)")
        defer { client.close() }
        try await body(client)
    }

    @Test(arguments: [true, false])
    func bringUp(interrupts: Bool) async throws {
        try await withController { client in
            var options = NVMeHost.Options()
            options.interrupts = interrupts
            options.ioQueues = 2
            try await DriverSuite.bringUp(client, options: options)
        }
    }

    @Test(arguments: [512, 4096])
    func writeReadVerifyInterrupts(blockSize: Int) async throws {
        try await withController(blockSize: blockSize) { try await DriverSuite.writeReadVerify($0) }
    }

    @Test func writeReadVerifyPolled() async throws {
        var options = NVMeHost.Options()
        options.interrupts = false
        try await withController { try await DriverSuite.writeReadVerify($0, options: options) }
    }

    @Test func prpListsAcrossPages() async throws {
        try await withController { try await DriverSuite.prpListsAcrossPages($0) }
    }

    @Test(arguments: [true, false])
    func queueWrap(interrupts: Bool) async throws {
        try await withController { try await DriverSuite.queueWrap($0, interrupts: interrupts) }
    }

    @Test(arguments: [true, false])
    func concurrentTasks(interrupts: Bool) async throws {
        try await withController { try await DriverSuite.concurrentTasks($0, interrupts: interrupts) }
    }

    @Test func reset() async throws {
        try await withController { try await DriverSuite.reset($0) }
    }

    @Test func errorStatuses() async throws {
        try await withController { try await DriverSuite.errorStatuses($0) }
    }

    @Test func otherCommands() async throws {
        try await withController { try await DriverSuite.otherCommands($0) }
    }

    @Test(arguments: [true, false])
    func shadowDoorbells(enabled: Bool) async throws {
        try await withController { try await DriverSuite.shadowDoorbells($0, enabled: enabled) }
    }

    /// Shadow doorbells save doorbell writes: the controller reads the shadow values, so
    /// a queue kept busy needs fewer region writes than commands.
    @Test func shadowDoorbellsAreUsedByTheController() async throws {
        try await withController { client in
            var options = NVMeHost.Options()
            options.queueEntries = 16
            try await DriverSuite.withHost(client, options) { host in
                #expect(host.usesShadowDoorbells)
                #expect(!host.usesMappedDoorbells)
                let ns = host.namespaces[0]
                let buffer = try host.allocateBuffer(4096)
                let batch = (0..<15).map { NVMeIO.read(namespace: ns.id, lba: UInt64($0), blocks: 1, buffer: buffer) }
                for _ in 0..<4 { for result in await host.submit(batch) { _ = try result.get() } }
            }
        }
    }

    /// Everything the driver made is gone after close: DMA mappings, the memfds behind
    /// them and the eventfds (no descriptor or mapping of this process refers to them).
    @Test(arguments: [true, false])
    func noLeaks(interrupts: Bool) async throws {
        try await withController { client in
            let device = InstrumentedDevice(client)
            var options = NVMeHost.Options()
            options.interrupts = interrupts
            options.ioQueues = 3
            try await DriverSuite.withHost(device, options) { host in
                let buffer = try host.allocateBuffer(64 << 10)
                try await host.write(lba: 0, blocks: 128, from: buffer)
                #expect(host.dmaMappingCount > 0)
            }
            #expect(device.liveMappings == 0)
            #expect(device.trackedCount >= (interrupts ? 6 : 2))
            #expect(device.leaks() == [])
        }
    }

    /// A bring-up that fails part way (the Nth DMA mapping refused) releases what it
    /// made, and the controller serves the next bring-up.
    @Test func failedBringUpReleasesEverything() async throws {
        try await withController(ioQueues: 2) { client in
            var options = NVMeHost.Options()
            options.ioQueues = 2
            var failures = 0
            for n in 1...12 {
                let faulty = InstrumentedDevice(client, failingMapping: n)
                do throws(NVMeDriverError) {
                    let host = try await NVMeHost.open(faulty, options: options)
                    await host.close()
                } catch {
                    failures += 1
                    guard case .transport = error else { Issue.record("mapping \(n): \(error)"); continue }
                }
                #expect(faulty.liveMappings == 0, "mapping \(n)")
                #expect(faulty.leaks() == [], "mapping \(n)")
            }
            #expect(failures >= 8)
            try await DriverSuite.bringUp(client, options: options)
        }
    }

    @Test func identifyDecodesWhatTheControllerEncodes() {
        var c = IdentifyController()
        c.serialNumber = "SN42"
        c.modelNumber = "model"
        c.maximumDataTransferSize = 5
        c.optionalAdminCommands = [.doorbellBufferConfig, .formatNVM]
        c.optionalNVMCommands = [.writeZeroes]
        c.numberOfNamespaces = 3
        c.subsystemNQN = "nqn.test"
        #expect(IdentifyController(decoding: c.encoded) == c)
        var n = IdentifyNamespace()
        n.size = 1000
        n.capacity = 1000
        n.formattedLBASize = 1
        n.formats = [LBAFormat(dataSizeShift: 9), LBAFormat(dataSizeShift: 12)]
        let decoded = IdentifyNamespace(decoding: n.encoded)
        #expect(decoded == n)
        #expect(decoded.formatInUse?.dataSizeShift == 12)
    }
}
