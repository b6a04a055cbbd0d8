import Testing
import VFIO
import VFIOConformance
import VFIODeviceKit
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import VFIOSystem
import TestSupport

/// The transport-independent edu suite (the one the guest runs on QEMU's edu through the
/// kernel) on the Swift `EduDevice` over vfio-user, through real sockets.
///
/// Three checks are skipped over vfio-user, and only those: `registers-mmap` (the model's
/// BAR0 is register space, not mmap-able memory), `ioeventfd` and `hot-reset-info` (the
/// protocol has neither). Each run includes the leak check, which counts the whole
/// process's descriptors and mappings: each test runs alone, in a process of its own.
@Suite struct ConformanceUserTests {
    static let expectedSkips: Set<String> = ["registers-mmap", "ioeventfd", "hot-reset-info"]

    func expectSameAnswersAsTheKernel(_ report: ConformanceReport, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(report.failed.isEmpty, "\(report)", sourceLocation: sourceLocation)
        #expect(Set(report.skipped.map(\.name)) == Self.expectedSkips, "\(report)", sourceLocation: sourceLocation)
        #expect(report.summary == "12 passed, 0 failed, 3 skipped", sourceLocation: sourceLocation)
    }

    @Test func eduServedOnAUNIXSocketPassesTheSuite() async throws {
        guard try await runsAlone(Self.self) else { return }
        let fixture = try UserServerFixture()
        let report = await EduConformance.runner(options: ConformanceOptions(timeout: .seconds(5), leakCycles: 3))
            .run(deviceName: "unix:\(fixture.path)") { try fixture.connect() }
        expectSameAnswersAsTheKernel(report)
    }

    @Test func eduServedInProcessOnASocketPairPassesTheSuite() async throws {
        guard try await runsAlone(Self.self) else { return }
        let report = await EduConformance.runner(options: ConformanceOptions(timeout: .seconds(5), leakCycles: 3))
            .run(deviceName: "model:edu") { try VFIOUserClient.serving(EduDevice(), name: "model:edu") }
        expectSameAnswersAsTheKernel(report)
    }

    @Test func oneClientSharedByEveryCheck() async throws {
        guard try await runsAlone(Self.self) else { return }
        let fixture = try UserServerFixture()
        let options = ConformanceOptions(timeout: .seconds(5), leakCycles: 2, reopenPerCheck: false)
        let report = await EduConformance.runner(options: options)
            .run(deviceName: "unix:\(fixture.path)") { try fixture.connect() }
        #expect(report.failed.isEmpty, "\(report)")
    }
}
