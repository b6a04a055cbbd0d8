import CVFIO
import Foundation
import Synchronization
import Testing
import VFIO
import VFIOConformance
import TestSupport

/// The conformance suite's own logic, against `FakeEdu`: a sound fake passes, each fault
/// fails the check written to catch it, and what a device lacks is skipped. The leak check
/// counts the whole process's descriptors and mappings: a test that runs it runs alone
/// (`runsAlone`), in a process of its own.
@Suite struct ConformanceSuiteTests {
    static let options = ConformanceOptions(timeout: .seconds(2), leakCycles: 4)

    func run(_ faults: FakeEdu.Faults = [], only: [String]? = nil) async throws -> ConformanceReport {
        var runner = EduConformance.runner(options: Self.options)
        if let only { runner = try runner.selecting(only) }
        return await runner.run(deviceName: "fake:edu") { FakeEdu(faults: faults) }
    }

    @Test func aSoundFakePassesAndSkipsWhatItLacks() async throws {
        guard try await runsAlone(Self.self) else { return }
        let report = try await run()
        #expect(report.results.map(\.name) == EduConformance.checkNames)
        #expect(report.failed.isEmpty, "\(report)")
        #expect(Set(report.skipped.map(\.name)) == ["registers-mmap", "ioeventfd", "hot-reset-info"], "\(report)")
        #expect(report.summary == "12 passed, 0 failed, 3 skipped")
        #expect(report.description.hasSuffix("\n12 passed, 0 failed, 3 skipped"))
    }

    @Test func livenessThatIsNotInvertedFails() async throws {
        let report = try await run(.livenessNotInverted, only: ["identity", "registers-pio"])
        #expect(report["identity"] == .passed)
        guard case .failed(let why) = report["registers-pio"] else {
            Issue.record("registers-pio: \(String(describing: report["registers-pio"]))")
            return
        }
        #expect(why.contains("liveness"))
        #expect(report.summary == "1 passed, 1 failed, 0 skipped")
    }

    @Test func aDeviceWithoutResetIsSkipped() async throws {
        let report = try await run(.noReset, only: ["reset"])
        guard case .skipped(let why) = report["reset"] else {
            Issue.record("reset: \(String(describing: report["reset"]))")
            return
        }
        #expect(why.contains("VFIO_DEVICE_FLAGS_RESET"))
    }

    @Test func aLeakyDeviceFailsTheLeakCheck() async throws {
        guard try await runsAlone(Self.self) else { return }
        let report = try await run(.leaksDescriptor, only: ["leaks"])
        guard case .failed(let why) = report["leaks"] else {
            Issue.record("leaks: \(String(describing: report["leaks"]))")
            return
        }
        // FakeEdu opens /dev/null on each of the 4 cycles and never closes it: the failure
        // names each (the baseline was taken after the warm-up's).
        #expect(why.contains("descriptors open beyond the baseline's"), "\(why)")
        #expect(why.components(separatedBy: "/dev/null").count - 1 == Self.options.leakCycles, "\(why)")
    }

    @Test func descriptorsAreComparedByWhatTheyReferTo() {
        let baseline = ProcessResources(descriptors: [0: "pipe:[1]", 3: "anon_inode:[eventfd]", 4: "/dev/null"], mappings: 5)
        // Closed and opened again on the same thing under another number: nothing added.
        let renumbered = ProcessResources(descriptors: [0: "pipe:[1]", 3: "anon_inode:[eventfd]", 7: "/dev/null"], mappings: 5)
        #expect(renumbered.descriptorsAdded(since: baseline).isEmpty)
        // One more of a kind already open, and a new one while another closed: both added.
        let grown = ProcessResources(descriptors: [0: "pipe:[1]", 3: "anon_inode:[eventfd]", 5: "anon_inode:[eventfd]", 6: "/memfd:x (deleted)"], mappings: 5)
        #expect(grown.descriptorsAdded(since: baseline) == ["/memfd:x (deleted)", "anon_inode:[eventfd]"])
        #expect(baseline.descriptorsAdded(since: grown) == ["/dev/null"])
        // The runtime's timer descriptors are never counted (libdispatch may open one late).
        let timed = ProcessResources(descriptors: [0: "pipe:[1]", 3: "anon_inode:[eventfd]", 4: "/dev/null", 9: "anon_inode:[timerfd]"], mappings: 5)
        #expect(timed.descriptorsAdded(since: baseline).isEmpty)
    }

    @Test func aSnapshotNamesWhatEachDescriptorRefersTo() throws {
        let before = ProcessResources.current()
        let fd = cvfio_memfd_create("conformance-snapshot", 0)
        try #require(fd >= 0)
        let during = ProcessResources.current()
        close(fd)
        #expect(during.descriptors[fd] == "/memfd:conformance-snapshot (deleted)")
        #expect(during.descriptorsAdded(since: before).contains("/memfd:conformance-snapshot (deleted)"))
        #expect(!ProcessResources.current().descriptorsAdded(since: before).contains("/memfd:conformance-snapshot (deleted)"))
    }

    @Test func aDeviceThatLeaksAMappingFailsTheLeakCheck() async throws {
        guard try await runsAlone(Self.self) else { return }
        let report = try await run(.leaksMapping, only: ["leaks"])
        guard case .failed(let why) = report["leaks"] else {
            Issue.record("leaks: \(String(describing: report["leaks"]))")
            return
        }
        #expect(why.contains("mappings"))
    }

    @Test func dmaThatIgnoresUnmapFails() async throws {
        let report = try await run(.dmaIgnoresUnmap, only: ["dma", "dma-unmapped"])
        #expect(report["dma"] == .passed)
        guard case .failed(let why) = report["dma-unmapped"] else {
            Issue.record("dma-unmapped: \(String(describing: report["dma-unmapped"]))")
            return
        }
        #expect(why.contains("unmapped"))
    }

    @Test func aMissingInterruptFailsAfterTheTimeout() async throws {
        var runner = try EduConformance.runner(options: ConformanceOptions(timeout: .milliseconds(100))).selecting(["raise-irq", "factorial-intx"])
        runner.options.leakCycles = 1
        let report = await runner.run { FakeEdu(faults: .deafMSI) }
        #expect(report["factorial-intx"] == .passed)
        guard case .failed(let why) = report["raise-irq"] else {
            Issue.record("raise-irq: \(String(describing: report["raise-irq"]))")
            return
        }
        #expect(why.contains("no MSI"))
    }
}

@Suite struct ConformanceRunnerTests {
    @Test func eachCheckGetsAFreshDeviceAndTheLeakCheckOpensItsOwn() async throws {
        guard try await runsAlone(Self.self) else { return }
        let opened = Mutex(0)
        let options = ConformanceOptions(timeout: .seconds(2), leakCycles: 3)
        let report = await EduConformance.runner(options: options).run {
            opened.withLock { $0 += 1 }
            return FakeEdu()
        }
        // One open per device check, and for the leak check a warm-up plus its cycles.
        #expect(opened.withLock { $0 } == EduConformance.checks.count - 1 + 1 + 3, "\(report)")
    }

    @Test func sharingTheDeviceOpensItOnceBesidesTheLeakCheck() async throws {
        guard try await runsAlone(Self.self) else { return }
        let opened = Mutex(0)
        let options = ConformanceOptions(timeout: .seconds(2), leakCycles: 2, reopenPerCheck: false)
        let report = await EduConformance.runner(options: options).run {
            opened.withLock { $0 += 1 }
            return FakeEdu()
        }
        #expect(report.summary == "12 passed, 0 failed, 3 skipped", "\(report)")
        #expect(opened.withLock { $0 } == 1 + 1 + 2)
    }

    @Test func aFactoryThatThrowsFailsTheCheck() async throws {
        let report = await (try EduConformance.runner().selecting(["identity"])).run {
            throw VFIOError.errno("open", 2)
        }
        guard case .failed(let why) = report["identity"] else {
            Issue.record("identity: \(String(describing: report["identity"]))")
            return
        }
        #expect(why.contains("cannot open the device"))
    }

    @Test func unknownCheckNamesAreRefused() {
        #expect(throws: VFIOError.self) { try EduConformance.runner().selecting(["identity", "no-such-check"]) }
    }

    @Test func aCheckThatThrowsSkipOrFailIsReportedSo() async throws {
        let checks = [
            ConformanceCheck(name: "a", summary: "", body: .device { _, _ in }),
            ConformanceCheck(name: "b", summary: "", body: .device { _, _ in throw CheckSkipped("not here") }),
            ConformanceCheck(name: "c", summary: "", body: .device { _, _ in throw CheckFailed("wrong") }),
            ConformanceCheck(name: "d", summary: "", body: .factory { _, _ in throw VFIOError.unsupported("x", "y") }),
        ]
        let report = await ConformanceRunner(checks: checks).run(deviceName: "fake") { FakeEdu() }
        #expect(report["a"] == .passed)
        #expect(report["b"] == .skipped("not here"))
        #expect(report["c"] == .failed("wrong"))
        #expect(report["d"] == .failed("x: not supported: y"))
        #expect(report.summary == "1 passed, 2 failed, 1 skipped")
        #expect(report.json.contains("\"failed\": 2"))
        #expect(report.json.contains("{\"name\": \"c\", \"result\": \"failed\", \"reason\": \"wrong\", \"milliseconds\": "))
        let parsed = try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any]
        #expect(parsed?["device"] as? String == "fake")
        #expect((parsed?["checks"] as? [[String: Any]])?.map { $0["result"] as? String } == ["passed", "skipped", "failed", "failed"])
    }
}
