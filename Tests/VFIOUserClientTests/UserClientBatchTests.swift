import Glibc
import Synchronization
import Testing
import VFIO
import VFIODeviceKit
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import VFIOSystem
import TestSupport

/// `VFIOUserClient.perform(_:)`: region accesses sent together, answered in order, every
/// reply collected before an error is thrown.
@Suite struct UserClientBatchTests {
    /// Owns the buffers of a batch for the length of a test.
    final class Buffers {
        private var all: [UnsafeMutableRawBufferPointer] = []
        func make(_ bytes: [UInt8]) -> UnsafeMutableRawBufferPointer {
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
            b.copyBytes(from: bytes)
            all.append(b)
            return b
        }
        func make(count: Int) -> UnsafeMutableRawBufferPointer { make([UInt8](repeating: 0xEE, count: count)) }
        deinit { for b in all { b.deallocate() } }
    }

    static func pattern(_ seed: Int, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: seed &* 37 &+ $0 &* 11) }
    }

    /// Writes and reads of many sizes, in memory and through callbacks, each read after
    /// the write of the same place: every read sees its write.
    @Test func readsSeeTheWritesBeforeThem() throws {
        let fixture = try UserServerFixture(model: TwoRegionModel())
        let client = try fixture.connect()
        defer { client.close() }
        let buffers = Buffers()
        var accesses: [VFIOUserClient.Access] = []
        var expected: [(UnsafeMutableRawBufferPointer, [UInt8])] = []
        for i in 0..<48 {
            let size = [4, 8, 1, 100, 4096, 20_000][i % 6]
            let region = UInt32(i % 2)
            let offset = UInt64(i) * 0x5000
            let data = Self.pattern(i, size)
            let target = buffers.make(count: size)
            accesses.append(.write(region: region, offset: offset, from: UnsafeRawBufferPointer(buffers.make(data))))
            accesses.append(.read(region: region, offset: offset, into: target))
            expected.append((target, data))
        }
        try client.perform(accesses)
        for (i, (target, data)) in expected.enumerated() {
            #expect(Array(target) == data, "access pair \(i)")
        }
        // And the server kept them: a plain read agrees.
        #expect(try client.readBytes(region: 1, offset: 0x5000, count: 8) == Self.pattern(1, 8))
    }

    /// One access out of range in the middle: its error comes out, and the accesses after
    /// it were done all the same.
    @Test func aFailedAccessIsReportedAfterTheRestIsDone() throws {
        let fixture = try UserServerFixture(model: TwoRegionModel())
        let client = try fixture.connect()
        defer { client.close() }
        let buffers = Buffers()
        let size = try client.regionInfo(0).size
        let after = buffers.make([9, 8, 7, 6])
        expectErrno(EINVAL) {
            try client.perform([
                .write(region: 0, offset: 0, from: UnsafeRawBufferPointer(buffers.make([1, 2, 3, 4]))),
                .read(region: 0, offset: size - 2, into: buffers.make(count: 4)),
                .write(region: 0, offset: 16, from: UnsafeRawBufferPointer(after)),
            ])
        }
        #expect(try client.readBytes(region: 0, offset: 0, count: 4) == [1, 2, 3, 4])
        #expect(try client.readBytes(region: 0, offset: 16, count: 4) == [9, 8, 7, 6])
        #expect(client.isConnected)
    }

    /// An access the transfer size cannot carry is refused before anything is sent.
    @Test func anOversizedAccessIsRefusedUnsent() throws {
        let fixture = try UserServerFixture(model: TwoRegionModel())
        let client = try fixture.connect(VFIOUserClient.Configuration(capabilities: VFIOUserCapabilities(maxMessageFDs: 16, maxDataTransferSize: 4096)))
        defer { client.close() }
        let buffers = Buffers()
        do {
            try client.perform([
                .write(region: 0, offset: 0, from: UnsafeRawBufferPointer(buffers.make([5, 5, 5, 5]))),
                .read(region: 0, offset: 0, into: buffers.make(count: 4097)),
            ])
            Issue.record("a 4097-byte access with max_data_xfer_size 4096 was sent")
        } catch {
            #expect("\(error)".contains("4097"), "\(error)")
        }
        #expect(try client.readBytes(region: 0, offset: 0, count: 4) != [5, 5, 5, 5], "the first access went out")
    }

    /// Batches from several threads at once, with region info (whose replies carry a
    /// descriptor) asked meanwhile: every batch and every descriptor arrives.
    @Test func batchesFromSeveralThreadsAtOnce() throws {
        let fixture = try UserServerFixture(model: TwoRegionModel())
        let client = try fixture.connect()
        defer { client.close() }
        let failures = Mutex([String]())
        let threads = (0..<4).map { t in
            WorkerThread(name: "batcher \(t)") {
                let buffers = Buffers()
                for round in 0..<50 {
                    let data = Self.pattern(t * 1000 + round, 64)
                    let targets = (0..<8).map { _ in buffers.make(count: 64) }
                    var accesses: [VFIOUserClient.Access] = [.write(region: UInt32(t % 2), offset: UInt64(t) * 0x1000,
                                                                    from: UnsafeRawBufferPointer(buffers.make(data)))]
                    for target in targets { accesses.append(.read(region: UInt32(t % 2), offset: UInt64(t) * 0x1000, into: target)) }
                    do {
                        try client.perform(accesses)
                        if targets.contains(where: { Array($0) != data }) {
                            failures.withLock { $0.append("batcher \(t) round \(round): a read missed the write") }
                        }
                    } catch {
                        failures.withLock { $0.append("batcher \(t): \(error)") }
                        return
                    }
                }
            }
        }
        let missing = try UserClientPlainReadTests.regionInfoRepliesWithoutDescriptor(client, asking: 100)
        for thread in threads { thread.join() }
        #expect(failures.withLock { $0 } == [])
        #expect(missing == 0)
    }
}
