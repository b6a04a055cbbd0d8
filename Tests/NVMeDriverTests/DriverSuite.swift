import NVMe
import NVMeDriver
import Testing
import TestSupport
import VFIO

/// The driver's test suite, written once against `VFIODevice`: run against the Swift
/// controller over vfio-user (`NVMeDriverTests`) and against QEMU's NVMe on vfio-pci in
/// the guest (`GuestNVMeDriverTests`). Each check opens the controller, works, closes it.
/// The data checks use LBAs from `firstLBA` (a guest disk's first blocks are left alone).
enum DriverSuite {
    static let firstLBA: UInt64 = 64

    static func withHost(_ device: any VFIODevice, _ options: NVMeHost.Options = .init(),
                         _ body: (NVMeHost) async throws -> Void) async throws {
        let host = try await NVMeHost.open(device, options: options)
        do {
            try await body(host)
        } catch {
            await host.close()
            throw error
        }
        let failure = await host.close()
        #expect(failure == nil, "close: \(String(describing: failure))")
        #expect(host.dmaMappingCount == 0)
    }

    /// Bring-up: the controller identified, namespaces with a block size, queues created.
    static func bringUp(_ device: any VFIODevice, options: NVMeHost.Options = .init()) async throws {
        try await withHost(device, options) { host in
            #expect(host.version.major >= 1)
            #expect(!host.controller.modelNumber.isEmpty)
            #expect(!host.namespaces.isEmpty)
            for ns in host.namespaces {
                #expect([512, 4096].contains(ns.blockSize))
                #expect(ns.blockCount > firstLBA + 1024)
            }
            #expect(host.ioQueueCount == options.ioQueues)
            #expect(host.usesInterrupts == options.interrupts)
            #expect(host.maximumTransferBytes >= 4096)
            // Identify again through the public API: the same controller data.
            let again = IdentifyController(decoding: try await host.identify(cns: IdentifyCNS.controller.rawValue))
            #expect(again.serialNumber == host.controller.serialNumber)
        }
    }

    /// Write a pattern, read it back into another buffer, compare; several sizes (up to
    /// the largest transfer) and buffer offsets (page-aligned, dword-aligned inside a
    /// page, near a page's end), so PRP1 alone, PRP1 + PRP2 and PRP lists all occur.
    static func writeReadVerify(_ device: any VFIODevice, options: NVMeHost.Options = .init()) async throws {
        try await withHost(device, options) { host in
            let ns = host.namespaces[0]
            let maxBlocks = host.maximumTransferBytes / ns.blockSize
            let source = try host.allocateBuffer(host.maximumTransferBytes + 8192)
            let sink = try host.allocateBuffer(host.maximumTransferBytes + 8192)
            var lba = firstLBA
            var seed: UInt64 = 1
            for blocks in Set([1, 2, 7, 8, 9, 33, maxBlocks / 2, maxBlocks - 1, maxBlocks]).sorted() where (1...maxBlocks).contains(blocks) {
                for offset in [0, 4, 512, 4092, 2048 + 4096] {
                    let length = blocks * ns.blockSize
                    guard offset + length + 8 <= source.size else { continue }
                    let data = pattern(length, seed: seed)
                    seed += 1
                    source.store(data, at: offset)
                    sink.store([UInt8](repeating: 0xA5, count: length + 8), at: offset)
                    try await host.write(namespace: ns.id, lba: lba, blocks: blocks, from: source, offset: offset)
                    try await host.read(namespace: ns.id, lba: lba, blocks: blocks, into: sink, offset: offset)
                    #expect(sink.load(length, at: offset) == data, "\(blocks) blocks at buffer offset \(offset), LBA \(lba)")
                    #expect(sink.load(8, at: offset + length) == [UInt8](repeating: 0xA5, count: 8), "read past its length")
                    lba += UInt64(blocks)
                }
            }
            host.releaseBuffer(source)
            host.releaseBuffer(sink)
        }
    }

    /// The largest transfers from an offset that is not page-aligned: a PRP list whose
    /// entries span every page, the data checked block by block against what was written
    /// block by block (so a wrong list entry shows as a misplaced block).
    static func prpListsAcrossPages(_ device: any VFIODevice) async throws {
        try await withHost(device) { host in
            let ns = host.namespaces[0]
            let blocks = (host.maximumTransferBytes - 4096) / ns.blockSize
            let length = blocks * ns.blockSize
            let buffer = try host.allocateBuffer(length + 8192)
            let data = pattern(length, seed: 77)
            // Block by block from a page-aligned buffer, then one large read from offset 1028.
            for k in 0..<blocks {
                buffer.store(Array(data[(k * ns.blockSize)..<((k + 1) * ns.blockSize)]))
                try await host.write(namespace: ns.id, lba: firstLBA + UInt64(k), blocks: 1, from: buffer)
            }
            buffer.store([UInt8](repeating: 0, count: buffer.size))
            try await host.read(namespace: ns.id, lba: firstLBA, blocks: blocks, into: buffer, offset: 1028)
            #expect(buffer.load(length, at: 1028) == data)
            // And one large write from offset 2052, read back block by block.
            let second = pattern(length, seed: 78)
            buffer.store(second, at: 2052)
            try await host.write(namespace: ns.id, lba: firstLBA, blocks: blocks, from: buffer, offset: 2052)
            for k in stride(from: 0, to: blocks, by: max(1, blocks / 8)) {
                try await host.read(namespace: ns.id, lba: firstLBA + UInt64(k), blocks: 1, into: buffer)
                #expect(buffer.load(ns.blockSize) == Array(second[(k * ns.blockSize)..<((k + 1) * ns.blockSize)]), "block \(k)")
            }
        }
    }

    /// Queues of 4 entries (3 outstanding): many single commands and a batch much longer
    /// than the queue wrap both rings several times; every block lands where it should.
    static func queueWrap(_ device: any VFIODevice, interrupts: Bool) async throws {
        var options = NVMeHost.Options()
        options.queueEntries = 4
        options.adminEntries = 4
        options.interrupts = interrupts
        try await withHost(device, options) { host in
            #expect(host.ioQueueEntries == 4)
            let ns = host.namespaces[0]
            let count = 40
            let buffer = try host.allocateBuffer(count * ns.blockSize)
            for k in 0..<count { buffer.store(pattern(ns.blockSize, seed: UInt64(1000 + k)), at: k * ns.blockSize) }
            for k in 0..<(count / 2) {
                try await host.write(namespace: ns.id, lba: firstLBA + UInt64(k), blocks: 1, from: buffer, offset: k * ns.blockSize)
            }
            let writes = (count / 2..<count).map { k in
                NVMeIO.write(namespace: ns.id, lba: firstLBA + UInt64(k), blocks: 1, buffer: buffer, offset: k * ns.blockSize)
            }
            for result in await host.submit(writes) { _ = try result.get() }
            let sink = try host.allocateBuffer(count * ns.blockSize)
            let reads = (0..<count).map { k in
                NVMeIO.read(namespace: ns.id, lba: firstLBA + UInt64(k), blocks: 1, buffer: sink, offset: k * ns.blockSize)
            }
            for result in await host.submit(reads) { _ = try result.get() }
            #expect(sink.load(count * ns.blockSize) == buffer.load(count * ns.blockSize))
            // Admin queue of 4: more Identify commands than it has entries.
            for _ in 0..<10 { _ = try await host.identify(cns: IdentifyCNS.controller.rawValue) }
        }
    }

    /// Many tasks at once over two queues, each writing and verifying its own blocks.
    static func concurrentTasks(_ device: any VFIODevice, interrupts: Bool) async throws {
        var options = NVMeHost.Options()
        options.ioQueues = 2
        options.queueEntries = 8
        options.interrupts = interrupts
        try await withHost(device, options) { host in
            let ns = host.namespaces[0]
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<16 {
                    group.addTask {
                        let buffer = try host.allocateBuffer(4 * ns.blockSize)
                        let sink = try host.allocateBuffer(4 * ns.blockSize)
                        for round in 0..<8 {
                            let lba = firstLBA + UInt64(task * 4)
                            let data = pattern(4 * ns.blockSize, seed: UInt64(task * 100 + round))
                            buffer.store(data)
                            try await host.write(namespace: ns.id, lba: lba, blocks: 4, from: buffer)
                            try await host.read(namespace: ns.id, lba: lba, blocks: 4, into: sink)
                            #expect(sink.load(data.count) == data)
                        }
                        host.releaseBuffer(buffer)
                        host.releaseBuffer(sink)
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    /// A reset between two bring-ups: data written before reads back after, through a
    /// VFIO device reset (FLR) and a new bring-up.
    static func reset(_ device: any VFIODevice) async throws {
        let data = pattern(8 * 512, seed: 9)
        var blockSize = 512
        try await withHost(device) { host in
            let ns = host.namespaces[0]
            blockSize = ns.blockSize
            let buffer = try host.allocateBuffer(data.count)
            buffer.store(data)
            try await host.write(namespace: ns.id, lba: firstLBA, blocks: data.count / ns.blockSize, from: buffer)
            try await host.flush(namespace: ns.id)
        }
        try device.reset()
        try await withHost(device) { host in
            let ns = host.namespaces[0]
            let buffer = try host.allocateBuffer(data.count)
            try await host.read(namespace: ns.id, lba: firstLBA, blocks: data.count / blockSize, into: buffer)
            #expect(buffer.load(data.count) == data)
        }
    }

    /// Error statuses: a Read past the namespace's end fails with LBA Out of Range naming
    /// the Read; the controller keeps working; a batch reports each command's own result.
    static func errorStatuses(_ device: any VFIODevice) async throws {
        try await withHost(device) { host in
            let ns = host.namespaces[0]
            let buffer = try host.allocateBuffer(4096)
            do throws(NVMeDriverError) {
                try await host.read(namespace: ns.id, lba: ns.blockCount, blocks: 1, into: buffer)
                Issue.record("a read past the end succeeded")
            } catch {
                guard case .command(let failure) = error else { Issue.record("not a status: \(error)"); return }
                #expect(failure.command == "Read")
                #expect(failure.opcode == NVMOpcode.read.rawValue)
                #expect(failure.status.codeType == NVMeStatus.lbaOutOfRange.codeType && failure.status.code == NVMeStatus.lbaOutOfRange.code)
                #expect(error.description.contains("Read"))
                #expect(error.description.contains("LBA Out of Range"))
            }
            do throws(NVMeDriverError) {
                try await host.write(namespace: ns.id, lba: ns.blockCount - 1, blocks: 2, from: buffer)
                Issue.record("a write across the end succeeded")
            } catch {
                #expect(error.status?.code == NVMeStatus.lbaOutOfRange.code)
                if case .command(let failure) = error { #expect(failure.command == "Write") }
            }
            // An admin error: Get Log Page of a reserved log identifier.
            do throws(NVMeDriverError) {
                _ = try await host.logPage(0x7F, bytes: 512)
                Issue.record("a reserved log page was returned")
            } catch {
                if case .command(let failure) = error { #expect(failure.command == "Get Log Page") } else { Issue.record("\(error)") }
            }
            // Refused before the device: data outside the buffer.
            do throws(NVMeDriverError) {
                try await host.read(namespace: ns.id, lba: firstLBA, blocks: 16, into: buffer, offset: 4096 - 512)
                Issue.record("a read outside its buffer was sent")
            } catch {
                guard case .invalidArgument = error else { Issue.record("\(error)"); return }
            }
            let results = await host.submit([
                .read(namespace: ns.id, lba: firstLBA, blocks: 1, buffer: buffer),
                .read(namespace: ns.id, lba: ns.blockCount + 5, blocks: 1, buffer: buffer),
                .flush(namespace: ns.id),
            ])
            #expect(results.count == 3)
            #expect((try? results[0].get()) != nil)
            if case .failure(let error) = results[1] { #expect(error.status?.code == NVMeStatus.lbaOutOfRange.code) } else { Issue.record("no failure") }
            #expect((try? results[2].get()) != nil)
            try await host.read(namespace: ns.id, lba: firstLBA, blocks: 1, into: buffer)
        }
    }

    /// Write Zeroes, Dataset Management (deallocate), Flush and the SMART log page.
    static func otherCommands(_ device: any VFIODevice) async throws {
        try await withHost(device) { host in
            let ns = host.namespaces[0]
            let buffer = try host.allocateBuffer(8 * ns.blockSize)
            buffer.store(pattern(8 * ns.blockSize, seed: 5))
            try await host.write(namespace: ns.id, lba: firstLBA, blocks: 8, from: buffer)
            if host.controller.optionalNVMCommands.contains(.writeZeroes) {
                try await host.writeZeroes(namespace: ns.id, lba: firstLBA + 2, blocks: 3)
                try await host.read(namespace: ns.id, lba: firstLBA, blocks: 8, into: buffer)
                let read = buffer.load(8 * ns.blockSize)
                let original = pattern(8 * ns.blockSize, seed: 5)
                #expect(Array(read[0..<(2 * ns.blockSize)]) == Array(original[0..<(2 * ns.blockSize)]))
                #expect(read[(2 * ns.blockSize)..<(5 * ns.blockSize)].allSatisfy { $0 == 0 })
                #expect(Array(read[(5 * ns.blockSize)...]) == Array(original[(5 * ns.blockSize)...]))
            }
            if host.controller.optionalNVMCommands.contains(.datasetManagement) {
                try await host.deallocate(namespace: ns.id, ranges: [NVMeLBARange(lba: firstLBA, blocks: 2), NVMeLBARange(lba: firstLBA + 6, blocks: 2)])
            }
            try await host.flush(namespace: ns.id)
            let smart = try await host.logPage(LogPageID.smartHealth.rawValue, bytes: 512)
            #expect(smart.count == 512)
            // Data Units Written (bytes 47:32) counts the writes above: at least one unit.
            #expect(smart.le(48, 8) >= 1)
        }
    }

    /// Shadow doorbells on (when offered) and off: the same I/O works either way.
    static func shadowDoorbells(_ device: any VFIODevice, enabled: Bool) async throws {
        var options = NVMeHost.Options()
        options.shadowDoorbells = enabled
        options.queueEntries = 8
        var offered = false
        try await withHost(device, options) { host in
            offered = host.controller.optionalAdminCommands.contains(.doorbellBufferConfig)
            #expect(host.usesShadowDoorbells == (enabled && offered))
            let ns = host.namespaces[0]
            let buffer = try host.allocateBuffer(64 * ns.blockSize)
            let sink = try host.allocateBuffer(64 * ns.blockSize)
            let data = pattern(64 * ns.blockSize, seed: enabled ? 11 : 12)
            buffer.store(data)
            let writes = (0..<64).map { NVMeIO.write(namespace: ns.id, lba: firstLBA + UInt64($0), blocks: 1, buffer: buffer, offset: $0 * ns.blockSize) }
            for result in await host.submit(writes) { _ = try result.get() }
            for k in 0..<64 { try await host.read(namespace: ns.id, lba: firstLBA + UInt64(k), blocks: 1, into: sink, offset: k * ns.blockSize) }
            #expect(sink.load(data.count) == data)
        }
    }
}

func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    var bytes = [UInt8](repeating: 0, count: count)
    var k = 0
    while k < count {
        let word = rng.next()
        for b in 0..<Swift.min(8, count - k) { bytes[k + b] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(b))) }
        k += 8
    }
    return bytes
}
