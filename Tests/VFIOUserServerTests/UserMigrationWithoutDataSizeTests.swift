import Glibc
import Synchronization
import Testing
import VFIO
import VFIODeviceKit
import VFIOMigration
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

// Live migration from and to servers that answer as libvfio-user's do (no MIG_DATA_SIZE,
// padded MIG_DATA_READ replies, the MIG_DATA_WRITE argsz rule): this library's servers
// behind `LibvfioUserStyleRelay`, on real sockets.

@Suite struct UserMigrationWithoutDataSizeTests {
    /// `vfio migrate`'s routine between two of this library's servers each behind a relay
    /// answering as libvfio-user does: no MIG_DATA_SIZE, so pre-copy is measured by its
    /// reads; the padded read replies and the write `argsz` rule pass; the state arrives.
    @Test func liveMigrationWithoutMigDataSizeCompletes() throws {
        let pair = try RelayedPair()
        defer { pair.close() }
        let (relayA, relayB) = (pair.relayA, pair.relayB)
        let from = try VFIOUserClient(path: relayA.path)
        defer { from.close() }
        let to = try VFIOUserClient(path: relayB.path)
        defer { to.close() }
        let pattern = (0..<0x3000).map { UInt8(truncatingIfNeeded: $0 &* 11) }
        try from.writeBytes(pattern, region: bar0, offset: 0x2000)
        expectErrno(EINVAL) { _ = try from.migrationDataSize() }

        var sources: Set<String> = []
        let report = try LiveMigration.migrate(from: from, to: to, options: MigrationOptions(threshold: 1024, maxRounds: 4)) { progress in
            if let source = progress.estimateSource { sources.insert(source.rawValue) }
        }
        #expect(report.usedPreCopy && report.estimateSource == .reads && report.preCopyBytes > 0x3000)
        #expect(sources == [PrecopyEstimateSource.reads.rawValue])
        #expect(try to.migrationState() == .running && from.migrationState() == .stop)
        #expect(try to.readBytes(region: bar0, offset: 0x2000, count: pattern.count) == pattern)
        #expect(relayA.refusedSizeQueries.load(ordering: .relaxed) >= 1 && relayA.paddedReads.load(ordering: .relaxed) >= 1)
        #expect(relayB.refusedWrites.load(ordering: .relaxed) == 0)
    }

    /// Without an estimate, a round reads at most `firstRoundLimit`, later rounds at most
    /// what the round before read; `maxRounds` then ends pre-copy and STOP_COPY moves the
    /// rest, all of it arriving.
    @Test func roundsMeasuredByReadsAreBounded() throws {
        let pair = try RelayedPair()
        defer { pair.close() }
        let (relayA, relayB) = (pair.relayA, pair.relayB)
        let from = try VFIOUserClient(path: relayA.path)
        defer { from.close() }
        let to = try VFIOUserClient(path: relayB.path)
        defer { to.close() }
        let pattern = (0..<0xE000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        try from.writeBytes(pattern, region: bar0, offset: 0x2000)
        let options = MigrationOptions(threshold: 0, maxRounds: 3, chunkSize: 4096, firstRoundLimit: 8192)
        let report = try LiveMigration.migrate(from: from, to: to, options: options)
        #expect(report.estimateSource == .reads && report.rounds == 3 && report.preCopyBytes == 3 * 8192, "\(report)")
        #expect(report.stopCopyBytes > 0xE000 - 3 * 8192)
        #expect(try to.readBytes(region: bar0, offset: 0x2000, count: pattern.count) == pattern)
    }

    /// `vfio migrate` between two relayed servers: it completes and says where its
    /// pre-copy estimate came from.
    @Test func theToolSaysTheEstimateComesFromTheReads() throws {
        guard let tool = builtToolPath() else {
            print("UserMigrationWithoutDataSizeTests: no built vfio next to the tests; the tool run is skipped")
            return
        }
        let pair = try RelayedPair()
        defer { pair.close() }
        let (source, relayA, relayB) = (pair.source, pair.relayA, pair.relayB)
        let out = source.directory + "/out", err = source.directory + "/err"
        defer { unlink(out); unlink(err) }
        let status = system("'\(tool)' migrate --from unix:\(relayA.path) --to unix:\(relayB.path) --threshold 1024 > '\(out)' 2> '\(err)'")
        let stdout = String(decoding: readFile(out) ?? [], as: UTF8.self)
        let stderr = String(decoding: readFile(err) ?? [], as: UTF8.self)
        #expect(status == 0, "\(stdout)\(stderr)")
        #expect(stderr.contains("pre-copy round 1") && stderr.contains("estimated from the reads"), "\(stderr)")
        #expect(stdout.contains("pre-copy estimate: from the reads"), "\(stdout)")
    }
}

/// Two memory-backed servers, each behind a relay that answers as libvfio-user does.
struct RelayedPair {
    let source: UserServerFixture
    let destination: UserServerFixture
    let relayA: LibvfioUserStyleRelay
    let relayB: LibvfioUserStyleRelay

    init() throws {
        source = try UserServerFixture(model: MemoryBackedDevice())
        destination = try UserServerFixture(model: MemoryBackedDevice())
        relayA = try LibvfioUserStyleRelay(path: source.directory + "/relay.sock", target: source.path)
        do {
            relayB = try LibvfioUserStyleRelay(path: destination.directory + "/relay.sock", target: destination.path)
        } catch {
            relayA.close()
            throw error
        }
    }

    func close() {
        relayA.close()
        relayB.close()
    }
}
