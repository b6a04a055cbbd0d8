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

    /// Tasks that prefer the driver's executor run on its interrupt thread, before and
    /// after every command they wait for, and their I/O is correct.
    @Test func tasksOnTheDriversExecutorRunOnItsInterruptThread() async throws {
        try await withController { client in
            try await DriverSuite.withHost(client) { host in
                let executor = try #require(host.executor)
                let ns = host.namespaces[0]
                let threads = try await withTaskExecutorPreference(executor) {
                    try await withThrowingTaskGroup(of: Set<String>.self) { group in
                        for task in 0..<4 {
                            group.addTask {
                                var seen: Set<String> = [currentThreadName()]
                                let buffer = try host.allocateBuffer(2 * ns.blockSize)
                                let sink = try host.allocateBuffer(2 * ns.blockSize)
                                for round in 0..<8 {
                                    let lba = DriverSuite.firstLBA + UInt64(task * 2)
                                    let data = pattern(2 * ns.blockSize, seed: UInt64(task * 10 + round))
                                    buffer.store(data)
                                    try await host.write(namespace: ns.id, lba: lba, blocks: 2, from: buffer)
                                    seen.insert(currentThreadName())
                                    try await host.read(namespace: ns.id, lba: lba, blocks: 2, into: sink)
                                    seen.insert(currentThreadName())
                                    #expect(sink.load(data.count) == data)
                                }
                                host.releaseBuffer(buffer)
                                host.releaseBuffer(sink)
                                return seen
                            }
                        }
                        var all: Set<String> = []
                        for try await seen in group { all.formUnion(seen) }
                        return all
                    }
                }
                #expect(threads == ["nvme-irq"])
            }
        }
    }

    /// A task on the driver's executor may close the driver (the thread cannot wait for
    /// itself to end: it ends when that job returns), and goes on afterwards on the
    /// global executor; so does a task that still prefers the executor.
    @Test func aTaskOnTheExecutorClosesTheDriver() async throws {
        try await withController { client in
            let host = try await NVMeHost.open(client)
            let executor = try #require(host.executor)
            let (failure, after) = await withTaskExecutorPreference(executor) { () async -> (NVMeDriverError?, String) in
                #expect(currentThreadName() == "nvme-irq")
                let failure = await host.close()
                await Task.yield()
                return (failure, currentThreadName())
            }
            #expect(failure == nil)
            #expect(after != "nvme-irq")
            #expect(host.dmaMappingCount == 0)
            // Later tasks that prefer the stopped executor run on the global one.
            let later = await withTaskExecutorPreference(executor) { () async -> String in
                await Task.yield()
                return currentThreadName()
            }
            #expect(later != "nvme-irq")
        }
    }

    @Test func polledModeHasNoExecutor() async throws {
        var options = NVMeHost.Options()
        options.interrupts = false
        try await withController { client in
            try await DriverSuite.withHost(client, options) { host in #expect(host.executor == nil) }
        }
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

    /// Shadow doorbells save doorbell writes: the controller reads the shadow tail while
    /// it works, so batches on a busy queue need fewer SQ 1 tail writes than batches;
    /// without them every batch writes the register once.
    @Test(arguments: [true, false])
    func shadowDoorbellsSaveRegisterWrites(enabled: Bool) async throws {
        try await withController { client in
            let device = InstrumentedDevice(client)
            var options = NVMeHost.Options()
            options.queueEntries = 64
            options.shadowDoorbells = enabled
            let batches = 80
            try await DriverSuite.withHost(device, options) { host in
                #expect(host.usesShadowDoorbells == enabled)
                #expect(!host.usesMappedDoorbells)
                let ns = host.namespaces[0]
                let buffer = try host.allocateBuffer(4096)
                // Four tasks keep the queue busy, so the controller is often awake when a tail moves.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<4 {
                        group.addTask {
                            for b in 0..<(batches / 4) {
                                let batch = (0..<8).map { NVMeIO.read(namespace: ns.id, lba: UInt64(b * 8 + $0), blocks: 1, buffer: buffer) }
                                for result in await host.submit(batch) { _ = try result.get() }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let tailWrites = device.writeCount(bar0Offset: ControllerRegister.submissionTailDoorbell(queue: 1))
            if enabled {
                #expect(tailWrites < batches, "\(tailWrites) SQ 1 tail writes for \(batches) batches")
            } else {
                #expect(tailWrites == batches)
            }
        }
    }

    /// The data pointers the driver builds describe exactly the buffer range, as the
    /// controller side's PRP rules read them.
    @Test func prpPointersDescribeTheBufferRange() throws {
        let builder = PRPBuilder(pageSize: 4096)
        for (iova, length) in [(0x10_0000, 512), (0x10_0004, 4092), (0x10_0004, 4093), (0x10_0800, 8192), (0x10_0FFC, 4100),
                               (0x10_0000, 128 << 10), (0x10_0404, 128 << 10), (0x10_0000, 2 << 20)] as [(UInt64, Int)] {
            let pointer = builder.pointer(iova: iova, length: length, listIOVA: 0x90_0000)
            let segments = PRP.segments(prp1: pointer.prp1, prp2: pointer.prp2, length: length, pageSize: 4096) { address, count in
                let start = Int(address - 0x90_0000) / 8
                guard address >= 0x90_0000, start + count <= pointer.list.count else { return nil }
                return Array(pointer.list[start..<(start + count)])
            }
            #expect(segments == .success([DataSegment(address: iova, length: length)]), "\(length) bytes at 0x\(String(iova, radix: 16))")
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

    /// A command the controller never sees (its doorbell write dropped) fails with
    /// `.timeout` naming it after the command timeout, in both modes, and close still
    /// shuts the controller down and releases everything.
    @Test(arguments: [true, false])
    func aCommandThatNeverCompletesTimesOut(interrupts: Bool) async throws {
        try await withController { client in
            let device = InstrumentedDevice(client)
            var options = NVMeHost.Options()
            options.interrupts = interrupts
            options.shadowDoorbells = false
            options.commandTimeout = .milliseconds(300)
            try await DriverSuite.withHost(device, options) { host in
                let buffer = try host.allocateBuffer(4096)
                device.droppedWrites.withLock { _ = $0.insert(ControllerRegister.submissionTailDoorbell(queue: 1)) }
                do throws(NVMeDriverError) {
                    try await host.read(lba: 0, blocks: 1, into: buffer)
                    Issue.record("a command without its doorbell completed")
                } catch {
                    guard case .timeout(let what) = error else { Issue.record("\(error)"); return }
                    #expect(what.contains("Read"), "\(what)")
                }
                device.droppedWrites.withLock { $0.removeAll() }
            }
            #expect(device.leaks() == [])
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
