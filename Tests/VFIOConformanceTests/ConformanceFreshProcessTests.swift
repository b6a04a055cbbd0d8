import Glibc
import Testing
import VFIO
import VFIOConformance
import VFIOSystem
import TestSupport

/// A leak check's baseline in a process where nothing has waited on an eventfd yet: the
/// readiness poller, started by the first wait that finds no value, must not read as a
/// leak. In this test process some earlier test has usually started it already, so the
/// case runs in a fresh copy of the test bundle (`/proc/self/exe`), which writes what it
/// found to a file named by `SWIFT_VFIO_FRESH_PROBE`.
@Suite struct ConformanceFreshProcessTests {
    static let probeVariable = "SWIFT_VFIO_FRESH_PROBE"

    @Test func theReadinessPollerIsInAFreshProcessBaseline() throws {
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-probe-XXXXXX")
        let output = directory + "/probe-result"
        defer {
            unlink(output)
            rmdir(directory)
        }
        let log = directory + "/probe-log"
        defer { unlink(log) }
        let status = try spawnSelf(
            arguments: ["--testing-library", "swift-testing", "--filter", "freshProcessProbe"],
            environment: ["\(Self.probeVariable)=\(output)"],
            output: log
        )
        #expect(status == 0, "the probe process exited with status \(status): \(readWholeFile(log) ?? "")")
        // The file exists only if the probe ran; empty means nothing was added.
        let added = try #require(readWholeFile(output), "the probe did not run")
        #expect(added == "", "descriptors added after the baseline: \(added)")
    }

    /// Run only in the child: baseline, then the process's first wait that has to wait.
    @Test(.enabled(if: getenv(Self.probeVariable) != nil))
    func freshProcessProbe() async throws {
        let output = String(cString: getenv(Self.probeVariable)!)
        let baseline = try await ProcessResources.settled()
        let event = try EventFD()
        await #expect(throws: VFIOError.self) { _ = try await event.wait(timeout: .milliseconds(1)) }
        event.close()
        let added = ProcessResources.current().descriptorsAdded(since: baseline)
        try writeWholeFile(output, added.joined(separator: "\n"))
    }
}
