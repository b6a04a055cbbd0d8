import Glibc
import Testing
import VFIO
import VFIODeviceKit
import VFIOMigration
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

// Migration over vfio-user through real UNIX sockets: the kit's edu behind a
// `VFIOUserServer`, driven through `VFIOUserClient`.

/// Reads a stream until it returns 0; returns everything read.
func readToEnd(_ stream: any MigrationDataStream, chunk: Int = 1000) throws -> [UInt8] {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: chunk)
    while true {
        let n = try readSome(stream, &buffer)
        if n == 0 { return out }
        out.append(contentsOf: buffer[0..<n])
    }
}

func writeAll(_ stream: any MigrationDataStream, _ bytes: [UInt8]) throws {
    // Result, not a typed-throws closure: Swift 6.3.1 crashes in IRGen on the thunk.
    let result = bytes.withUnsafeBytes { raw -> Result<Void, VFIOError> in
        do throws(VFIOError) { try stream.write(from: raw); return .success(()) } catch { return .failure(error) }
    }
    try result.get()
}

func readSome(_ stream: any MigrationDataStream, _ buffer: inout [UInt8]) throws -> Int {
    let result = buffer.withUnsafeMutableBytes { raw -> Result<Int, VFIOError> in
        do throws(VFIOError) { return .success(try stream.read(into: raw)) } catch { return .failure(error) }
    }
    return try result.get()
}

/// Whether `condition` comes to hold within 10 s (the edu DMA's busy bit clearing: the
/// transfer runs after the write's reply).
func eventually(_ condition: () throws -> Bool) rethrows -> Bool {
    try poll(for: .seconds(10), until: condition)
}

/// A saved edu stream (STOP_COPY of a fresh edu with liveness 0x1234 written).
func savedEduStream(features: MigrationFeatures = [.stopCopy, .p2p, .preCopy]) throws -> [UInt8] {
    let fixture = try UserServerFixture(model: EduDevice(migrationFeatures: features))
    let client = try fixture.connect()
    try client.write(UInt32(0x1234), region: bar0, offset: EduDevice.Register.liveness)
    let stream = try #require(try client.setMigrationState(.stopCopy))
    let bytes = try readToEnd(stream)
    _ = try client.setMigrationState(.running)
    return bytes
}

let featureCombinations: [MigrationFeatures] = [[.stopCopy], [.stopCopy, .p2p], [.stopCopy, .preCopy], [.stopCopy, .p2p, .preCopy]]

@Suite struct UserMigrationArcTests {
    static func hasStream(_ s: MigrationState) -> Int {
        switch s {
        case .preCopy, .preCopyP2P, .stopCopy: return 1
        case .resuming: return 2
        default: return 0
        }
    }

    /// Every (from, to) pair of states for each feature combination: the server walks the
    /// kernel's path, a stream comes back exactly when the kernel would return a data_fd,
    /// refused requests change nothing.
    @Test(arguments: featureCombinations)
    func everyArcOverTheSocket(features: MigrationFeatures) throws {
        let valid = try savedEduStream(features: features)
        let fixture = try UserServerFixture(model: EduDevice(migrationFeatures: features))
        let client = try fixture.connect()
        #expect(try client.migrationFeatures() == features)
        let states = MigrationState.allCases.filter { $0 != .error }
        for from in states {
            for to in MigrationState.allCases {
                try client.reset()
                #expect(try client.migrationState() == .running)
                // Reach `from` (a supported state) from RUNNING.
                guard MigrationStateMachine.isSupported(from, features: features) else {
                    expectErrno(EINVAL) { _ = try client.setMigrationState(from) }
                    #expect(try client.migrationState() == .running)
                    continue
                }
                let opened = try client.setMigrationState(from)
                #expect((opened != nil) == (Self.hasStream(from) != 0), "RUNNING -> \(from)")
                if from == .resuming, let opened { try writeAll(opened, valid) }
                let expected = Result { () throws(VFIOError) in try MigrationStateMachine.path(from: from, to: to, features: features) }
                switch expected {
                case .failure:
                    expectErrno(EINVAL) { _ = try client.setMigrationState(to) }
                    #expect(try client.migrationState() == from, "\(from) -> \(to) refused must change nothing")
                case .success:
                    let stream = try client.setMigrationState(to)
                    #expect(try client.migrationState() == to, "\(from) -> \(to)")
                    let newStream = Self.hasStream(to) != 0 && from != to && Self.hasStream(from) != Self.hasStream(to)
                    #expect((stream != nil) == newStream, "\(from) -> \(to): stream \(stream != nil)")
                    if Self.hasStream(to) == 1 {
                        // The saving stream (new or continued) reads.
                        let reader = stream ?? opened!
                        let bytes = try readToEnd(reader)
                        #expect(to != .stopCopy || !bytes.isEmpty || from == .preCopy || from == .preCopyP2P || from == .stopCopy)
                    }
                }
            }
        }
        // ERROR is left only by reset.
        try client.reset()
        let sink = try #require(try client.setMigrationState(.resuming))
        try writeAll(sink, [1, 2, 3])
        expectErrno(EINVAL) { _ = try client.setMigrationState(.stop) }
        #expect(try client.migrationState() == .error)
        expectErrno(EINVAL) { _ = try client.setMigrationState(.running) }
        try client.reset()
        #expect(try client.migrationState() == .running)
    }

    @Test func featureRequestsFollowVfioCheckFeature() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        _ = try client.feature(.probe(.migration, get: true))
        _ = try client.feature(.probe(.migrationDeviceState, get: true, set: true))
        _ = try client.feature(.probe(.migrationDataSize, get: true))
        _ = try client.feature(.probe(.dmaLoggingStart, set: true))
        _ = try client.feature(.probe(.dmaLoggingStop, set: true))
        _ = try client.feature(.probe(.dmaLoggingReport, get: true))
        expectErrno(EINVAL) { _ = try client.feature(.probe(.migration, set: true)) }
        expectErrno(EINVAL) { _ = try client.feature(.probe(.migrationDataSize, set: true)) }
        expectErrno(EINVAL) { _ = try client.feature(.set(.migrationDataSize(MigrationDataSize(stopCopyLength: 0)))) }
        expectErrno(ENOTTY) { _ = try client.feature(.probe(.busMaster, set: true)) }
        expectErrno(ENOTTY) { _ = try client.feature(.probe(feature: 77, get: true)) }
        // A GET whose argsz leaves no room for the data.
        let short = DeviceFeatureHeader(argsz: 8, flags: DeviceFeatureFlags(feature: DeviceFeatureID.migration.rawValue, .get)).encoded()
        let reply = try #require(try client.rawRequest(command: VFIOUserCommand.deviceFeature.rawValue, payload: short))
        #expect(reply.header.isError && reply.header.error == UInt32(EINVAL))
        #expect(try client.migrationDataSize() > 4096)
        #expect(try client.migrationState() == .running)
        // Malformed data: an error reply each, the connection and the state unharmed.
        func raw(_ feature: DeviceFeatureID, _ ops: DeviceFeatureFlags, argsz: Int? = nil, _ data: [UInt8]) -> [UInt8] {
            DeviceFeatureHeader(argsz: UInt32(argsz ?? 8 + data.count), flags: DeviceFeatureFlags(feature: feature.rawValue, ops)).encoded() + data
        }
        let bad: [[UInt8]] = [
            raw(.migrationDeviceState, .set, [2, 0]),                               // short state
            raw(.migrationDeviceState, .set, [9, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),  // no such state
            raw(.dmaLoggingStart, .set, [0, 0x10, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]),  // 5 ranges, none sent
            raw(.dmaLoggingReport, .get, argsz: 32, [0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0]),  // logging off / no room
            raw(.dmaLoggingReport, .get, argsz: 1 << 30, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x10, 0, 0, 0, 0, 0, 0]),  // bitmap too large
            raw(.migrationDataSize, .get, argsz: 12, []),
        ]
        for payload in bad {
            let reply = try #require(try client.rawRequest(command: VFIOUserCommand.deviceFeature.rawValue, payload: payload))
            #expect(reply.header.isError && reply.header.error != 0, "\(payload) was accepted")
        }
        for payload in [VFIOUserMigData(argsz: 8, size: 4).encoded, VFIOUserMigData(argsz: 8, size: 2 << 20).encoded] {
            let reply = try #require(try client.rawRequest(command: VFIOUserCommand.migDataRead.rawValue, payload: payload))
            #expect(reply.header.isError, "MIG_DATA_READ outside a saving state or too large was accepted")
        }
        let write = try #require(try client.rawRequest(command: VFIOUserCommand.migDataWrite.rawValue,
                                                       payload: VFIOUserMigData(argsz: 8, size: 3, data: [1, 2, 3]).encoded))
        #expect(write.header.isError && write.header.error == UInt32(EINVAL), "MIG_DATA_WRITE outside RESUMING")
        #expect(try client.migrationState() == .running)
        #expect(try client.read(UInt32.self, region: bar0, offset: 0) == EduDevice.identification)
        // A model that does not migrate: ENOTTY for migration, DMA logging still offered.
        let plain = try UserServerFixture(model: BulkMemoryModel())
        let other = try plain.connect()
        expectErrno(ENOTTY) { _ = try other.migrationFeatures() }
        expectErrno(ENOTTY) { _ = try other.migrationState() }
        expectErrno(EINVAL) { _ = try other.migrationDataRead(size: 16) }
        _ = try other.feature(.probe(.dmaLoggingStart, set: true))
    }

    @Test func vfioUserHasNoPrecopyInfo() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        let stream = try #require(try client.setMigrationState(.preCopy))
        #expect(throws: VFIOError.self) { _ = try stream.precopyInfo() }
        let estimate = try client.migrationDataSize()
        let initial = try readToEnd(stream)
        #expect(initial.count > 4096)
        #expect(try client.migrationDataSize() < estimate)
        _ = try client.setMigrationState(.running)
        // A closed stream refuses use.
        stream.close()
        expectErrno(EBADF) { _ = try readToEnd(stream) }
    }
}

@Suite struct UserMigrationWorkloadTests {
    static let ram: UInt64 = 0x100000

    /// edu in the middle of a workload: liveness written, a factorial computed, one DMA
    /// done and one queued (the source quiescent in RUNNING_P2P); moved through
    /// PRE_COPY_P2P and STOP_COPY to a second server, where the registers read back and the
    /// queued DMA completes into the destination's DMA buffer.
    @Test func eduMidWorkloadMovesToAnotherServer() throws {
        let source = try UserServerFixture()
        let destination = try UserServerFixture()
        let a = try source.connect()
        let b = try destination.connect()
        let memoryA = try DMABuffer(size: 8192)
        let memoryB = try DMABuffer(size: 8192)
        for i in 0..<4096 { memoryA.bytes[i] = UInt8(truncatingIfNeeded: i &* 7 &+ 3) }
        try a.mapDMA(memoryA, offset: 0, size: 8192, iova: Self.ram, access: .readWrite)
        try b.mapDMA(memoryB, offset: 0, size: 8192, iova: Self.ram, access: .readWrite)
        try a.writeConfig(UInt16(0x6), offset: 4)  // memory space, bus master
        typealias R = EduDevice.Register
        try a.write(UInt32(0x1234_5678), region: bar0, offset: R.liveness)
        try a.write(UInt32(12), region: bar0, offset: R.factorial)
        // DMA 1: RAM -> device buffer, done on the source.
        try a.write(Self.ram, region: bar0, offset: R.dmaSource)
        try a.write(EduDevice.dmaBufferAddress, region: bar0, offset: R.dmaDestination)
        try a.write(UInt64(4096), region: bar0, offset: R.dmaCount)
        try a.write(EduDevice.dmaStart, region: bar0, offset: R.dmaCommand)
        #expect(try eventually { try a.read(UInt64.self, region: bar0, offset: R.dmaCommand) & 1 == 0 })
        // DMA 2: device buffer -> RAM + 4096, queued while quiescent.
        #expect(try a.setMigrationState(.runningP2P) == nil)
        try a.write(EduDevice.dmaBufferAddress, region: bar0, offset: R.dmaSource)
        try a.write(Self.ram + 4096, region: bar0, offset: R.dmaDestination)
        try a.write(UInt64(4096), region: bar0, offset: R.dmaCount)
        try a.write(EduDevice.dmaStart | EduDevice.dmaToRAM | EduDevice.dmaRaiseIRQ, region: bar0, offset: R.dmaCommand)
        // Pending, and it stays so on the source: its memory is checked untouched at the end.
        #expect(try a.read(UInt64.self, region: bar0, offset: R.dmaCommand) & 1 == 1, "the second DMA is pending")

        let sink = try #require(try b.setMigrationState(.resuming))
        let stream = try #require(try a.setMigrationState(.preCopyP2P))
        try writeAll(sink, try readToEnd(stream))
        #expect(try a.setMigrationState(.stopCopy) == nil, "PRE_COPY_P2P -> STOP_COPY keeps the stream")
        try writeAll(sink, try readToEnd(stream))
        #expect(try b.setMigrationState(.stop) == nil)
        #expect(try b.setMigrationState(.running) == nil)
        _ = try a.setMigrationState(.stop)

        #expect(try b.read(UInt32.self, region: bar0, offset: R.liveness) == ~UInt32(0x1234_5678))
        #expect(try b.read(UInt32.self, region: bar0, offset: R.factorial) == 479_001_600)
        #expect(try b.readConfig(UInt16.self, offset: 4) & 0x6 == 0x6)
        #expect(try eventually { try b.read(UInt64.self, region: bar0, offset: R.dmaCommand) & 1 == 0 })
        let expected = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        #expect(Array(memoryB.bytes[4096..<8192]) == expected, "the queued DMA wrote the destination's memory")
        #expect(memoryA.bytes[4096..<8192].allSatisfy { $0 == 0 }, "the source never ran it")
        #expect(try b.read(UInt32.self, region: bar0, offset: R.interruptStatus) & EduDevice.dmaIRQ != 0)
    }

    /// A corrupt and a truncated stream: RESUMING -> STOP fails with an error naming the
    /// state, the device is in ERROR, and DEVICE_RESET brings it back.
    @Test(arguments: ["corrupt", "truncated"])
    func badStreamFailsResumingAndResetRecovers(kind: String) throws {
        var bytes = try savedEduStream()
        if kind == "corrupt" { bytes[bytes.count / 2] ^= 0x40 } else { bytes.removeLast(bytes.count / 3) }
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        let sink = try #require(try client.setMigrationState(.resuming))
        try writeAll(sink, bytes)
        do {
            _ = try client.setMigrationState(.stop)
            Issue.record("a \(kind) stream was loaded")
        } catch {
            #expect(error.errnoValue == EINVAL)
            #expect(error.operation.contains("SET STOP") && error.operation.contains("now in ERROR"), "\(error)")
        }
        #expect(try client.migrationState() == .error)
        try client.reset()
        #expect(try client.migrationState() == .running)
        try client.write(UInt32(5), region: bar0, offset: EduDevice.Register.liveness)
        #expect(try client.read(UInt32.self, region: bar0, offset: EduDevice.Register.liveness) == ~UInt32(5))
        // The good stream loads after the reset.
        let again = try #require(try client.setMigrationState(.resuming))
        try writeAll(again, try savedEduStream())
        _ = try client.setMigrationState(.running)
        #expect(try client.read(UInt32.self, region: bar0, offset: EduDevice.Register.liveness) == ~UInt32(0x1234))
    }

    /// A client that closes its socket in PRE_COPY, STOP_COPY or RESUMING: the next
    /// client finds edu RUNNING and usable, and can migrate it.
    @Test(arguments: [MigrationState.preCopy, .stopCopy, .resuming, .preCopyP2P, .stop])
    func clientDyingMidMigrationLeavesAUsableDevice(state: MigrationState) throws {
        let fixture = try UserServerFixture()
        do {
            let first = try fixture.connect()
            try first.write(UInt32(77), region: bar0, offset: EduDevice.Register.liveness)
            let stream = try first.setMigrationState(state)
            if let stream, state == .resuming {
                try writeAll(stream, [1, 2, 3, 4])
            } else if let stream {
                var some = [UInt8](repeating: 0, count: 100)
                _ = try readSome(stream, &some)
            }
            first.close()
        }
        let next = try fixture.connect()
        #expect(try next.migrationState() == .running)
        #expect(try next.read(UInt32.self, region: bar0, offset: EduDevice.Register.liveness) == ~UInt32(77))
        try next.write(UInt32(78), region: bar0, offset: EduDevice.Register.liveness)
        #expect(try next.read(UInt32.self, region: bar0, offset: EduDevice.Register.liveness) == ~UInt32(78))
        let stream = try #require(try next.setMigrationState(.stopCopy))
        #expect(try readToEnd(stream).count > 4096)
        _ = try next.setMigrationState(.running)
        #expect(fixture.server.connectionCount == 2)
    }
}

@Suite struct UserMigrationDirtyTests {
    static let ram: UInt64 = 0x200000

    /// Runs one edu DMA from its buffer to RAM at `iova`, `count` bytes, and waits.
    static func dmaToRAM(_ client: VFIOUserClient, iova: UInt64, count: UInt64) throws {
        typealias R = EduDevice.Register
        try client.write(EduDevice.dmaBufferAddress, region: bar0, offset: R.dmaSource)
        try client.write(iova, region: bar0, offset: R.dmaDestination)
        try client.write(count, region: bar0, offset: R.dmaCount)
        try client.write(EduDevice.dmaStart | EduDevice.dmaToRAM, region: bar0, offset: R.dmaCommand)
        #expect(try eventually { try client.read(UInt64.self, region: bar0, offset: R.dmaCommand) & 1 == 0 })
    }

    static func bits(_ words: [UInt64]) -> [Int] {
        var out: [Int] = []
        for (w, word) in words.enumerated() { for b in 0..<64 where word & (1 << UInt64(b)) != 0 { out.append(w * 64 + b) } }
        return out
    }

    /// Dirty bitmaps over the socket at 4, 8, 16 and 64 KiB against the pages edu's DMA
    /// wrote; reads mark nothing; a report clears what it reported.
    @Test func bitmapsAtSeveralPageSizesMatchTheDMA() throws {
        let fixture = try UserServerFixture()
        let client = try fixture.connect()
        let memory = try DMABuffer(size: 0x40000)
        try client.mapDMA(memory, offset: 0, size: 0x40000, iova: Self.ram, access: .readWrite)
        try client.writeConfig(UInt16(0x6), offset: 4)
        #expect(try client.startDirtyLogging(ranges: [DMALoggingRange(iova: Self.ram, length: 0x40000)], pageSize: 512) == 4096)
        expectErrno(EBUSY) { _ = try client.startDirtyLogging(ranges: [DMALoggingRange(iova: Self.ram, length: 0x1000)], pageSize: 4096) }
        // A DMA into the device (a read of RAM) marks nothing.
        typealias R = EduDevice.Register
        try client.write(Self.ram, region: bar0, offset: R.dmaSource)
        try client.write(EduDevice.dmaBufferAddress, region: bar0, offset: R.dmaDestination)
        try client.write(UInt64(4096), region: bar0, offset: R.dmaCount)
        try client.write(EduDevice.dmaStart, region: bar0, offset: R.dmaCommand)
        #expect(try eventually { try client.read(UInt64.self, region: bar0, offset: R.dmaCommand) & 1 == 0 })
        #expect(Self.bits(try client.reportDirtyPages(iova: Self.ram, length: 0x40000, pageSize: 4096)).isEmpty)

        // Written: [0x1800, 0x2800) then [0x13000, 0x13100) inside the range.
        let cases: [(UInt64, [Int])] = [(4096, [1, 2, 0x13]), (8192, [0, 1, 9]), (16384, [0, 4]), (65536, [0, 1])]
        for (pageSize, expected) in cases {
            try Self.dmaToRAM(client, iova: Self.ram + 0x1800, count: 0x1000)
            try Self.dmaToRAM(client, iova: Self.ram + 0x13000, count: 0x100)
            let words = try client.reportDirtyPages(iova: Self.ram, length: 0x40000, pageSize: pageSize)
            #expect(words.count == (0x40000 / Int(pageSize) + 63) / 64)
            #expect(Self.bits(words) == expected, "page size \(pageSize)")
            #expect(Self.bits(try client.reportDirtyPages(iova: Self.ram, length: 0x40000, pageSize: pageSize)).isEmpty,
                    "read-and-clear at \(pageSize)")
        }
        // A sub-range report.
        try Self.dmaToRAM(client, iova: Self.ram + 0x13000, count: 0x100)
        #expect(Self.bits(try client.reportDirtyPages(iova: Self.ram + 0x10000, length: 0x10000, pageSize: 4096)) == [3])
        expectErrno(EINVAL) { _ = try client.reportDirtyPages(iova: Self.ram, length: 0x80000, pageSize: 4096) }
        try client.stopDirtyLogging()
        expectErrno(EINVAL) { _ = try client.reportDirtyPages(iova: Self.ram, length: 0x1000, pageSize: 4096) }
        // Logging stops when the client leaves.
        _ = try client.startDirtyLogging(ranges: [DMALoggingRange(iova: Self.ram, length: 0x1000)], pageSize: 4096)
        client.close()
        let next = try fixture.connect()
        expectErrno(EINVAL) { _ = try next.reportDirtyPages(iova: Self.ram, length: 0x1000, pageSize: 4096) }
    }
}

@Suite struct UserMigrationToolTests {
    /// `LiveMigration.migrate` between two in-process servers (what `vfio migrate --from
    /// model:edu --to model:edu` runs), with and without PRE_COPY, for edu and the memory
    /// model; the figures go to the test log.
    @Test(arguments: ["edu", "memory"], [true, false])
    func liveMigrationBetweenTwoServers(model: String, preCopy: Bool) throws {
        func make() -> any DeviceModel { model == "edu" ? EduDevice() : MemoryBackedDevice() }
        let source = try VFIOUserClient.serving(make(), name: "model:\(model)#1")
        let destination = try VFIOUserClient.serving(make(), name: "model:\(model)#2")
        if model == "edu" {
            try source.write(UInt32(0xabc), region: bar0, offset: EduDevice.Register.liveness)
            try source.write(UInt32(10), region: bar0, offset: EduDevice.Register.factorial)
        } else {
            try source.writeBytes(Array(repeating: 0x5a, count: 4096), region: bar0, offset: 0x2000)
        }
        var updates = 0
        let report = try LiveMigration.migrate(from: source, to: destination,
                                               options: MigrationOptions(threshold: 1024, maxRounds: 4, preCopy: preCopy)) { _ in updates += 1 }
        #expect(report.usedPreCopy == preCopy)
        #expect(report.totalBytes > 4096 && updates > 0)
        #expect(try destination.migrationState() == .running)
        #expect(try source.migrationState() == .stop)
        if model == "edu" {
            #expect(try destination.read(UInt32.self, region: bar0, offset: EduDevice.Register.liveness) == ~UInt32(0xabc))
            #expect(try destination.read(UInt32.self, region: bar0, offset: EduDevice.Register.factorial) == 3_628_800)
        } else {
            #expect(try destination.readBytes(region: bar0, offset: 0x2000, count: 4096) == Array(repeating: 0x5a, count: 4096))
        }
        let seconds = Double(report.total.components.attoseconds) * 1e-18 + Double(report.total.components.seconds)
        print("migrate \(model) pre-copy=\(preCopy): \(report); \(Double(report.totalBytes) / seconds / 1e6) MB/s")
    }

    /// A failing migration (edu into the memory model: the destination refuses the state)
    /// names the destination and the arc and puts the source back to RUNNING.
    @Test func failedMigrationPutsTheSourceBack() throws {
        let source = try VFIOUserClient.serving(EduDevice(), name: "model:edu")
        let destination = try VFIOUserClient.serving(MemoryBackedDevice(), name: "model:memory")
        do {
            _ = try LiveMigration.migrate(from: source, to: destination)
            Issue.record("edu loaded into the memory model")
        } catch {
            #expect(error.step.contains("destination model:memory: RESUMING -> STOP"), "\(error)")
            #expect(error.recovery?.contains("source model:edu is back in RUNNING") == true, "\(error)")
        }
        #expect(try source.migrationState() == .running)
    }

    @Test func saveAndRestoreThroughAFile() throws {
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-snap-XXXXXX")
        defer { _ = system("rm -rf '\(directory)'") }
        let path = directory + "/edu.snap"
        let source = try VFIOUserClient.serving(EduDevice(), name: "model:edu")
        try source.write(UInt32(0x55), region: bar0, offset: EduDevice.Register.liveness)
        let count = try Snapshot.save(source, to: path)
        #expect(try source.migrationState() == .running)
        let target = try VFIOUserClient.serving(EduDevice(), name: "model:edu#2")
        #expect(try Snapshot.restore(path, into: target) == count)
        #expect(try target.migrationState() == .running)
        #expect(try target.read(UInt32.self, region: bar0, offset: EduDevice.Register.liveness) == ~UInt32(0x55))

        // Truncated: refused before the device is touched.
        let bytes = try #require(readFile(path))
        let short = directory + "/short.snap"
        try #require(writeFile(short, Array(bytes.dropLast(100))))
        do { _ = try Snapshot.restore(short, into: target); Issue.record("a truncated file was restored") } catch {
            #expect(error.description.contains("truncated"), "\(error)")
        }
        // Corrupt: the device refuses it at RESUMING -> STOP and is reset to RUNNING.
        var bad = bytes
        bad[bad.count / 2] ^= 0xff
        let corrupt = directory + "/corrupt.snap"
        try #require(writeFile(corrupt, bad))
        do { _ = try Snapshot.restore(corrupt, into: target); Issue.record("a corrupt file was restored") } catch {
            #expect(error.step.contains("RESUMING -> STOP"), "\(error)")
            #expect(error.recovery?.contains("reset to RUNNING") == true, "\(error)")
        }
        #expect(try target.migrationState() == .running)
        // Not a snapshot at all.
        let junk = directory + "/junk"
        try #require(writeFile(junk, Array(repeating: 0x41, count: 100)))
        do { _ = try Snapshot.restore(junk, into: target); Issue.record("junk was restored") } catch {
            #expect(error.description.contains("magic"), "\(error)")
        }
    }

    /// The built tool: `vfio migrate --from model:edu --to model:edu`, `vfio save` and
    /// `vfio restore` (skipped when the tool is not built next to the tests).
    @Test func theToolMigratesSavesAndRestores() throws {
        guard let tool = builtToolPath() else {
            print("UserMigrationToolTests: no built vfio next to the tests; the tool run is skipped")
            return
        }
        print("UserMigrationToolTests: running \(tool)")
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-tool-XXXXXX")
        defer { _ = system("rm -rf '\(directory)'") }
        #expect(system("'\(tool)' migrate --from model:edu --to model:edu > '\(directory)/out' 2>&1") == 0)
        let out = String(decoding: readFile(directory + "/out") ?? [], as: UTF8.self)
        #expect(out.contains("downtime:") && out.contains("migrated model:edu -> model:edu"), "\(out)")
        #expect(system("'\(tool)' save model:edu '\(directory)/s' > /dev/null 2>&1") == 0)
        #expect(system("'\(tool)' restore '\(directory)/s' model:edu > /dev/null 2>&1") == 0)
        #expect(system("'\(tool)' restore '\(directory)/s' model:memory > '\(directory)/err' 2>&1") != 0)
        let err = String(decoding: readFile(directory + "/err") ?? [], as: UTF8.self)
        #expect(err.contains("RESUMING -> STOP"), "\(err)")
    }
}
