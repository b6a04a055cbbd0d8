import Glibc
import Testing
import VFIO
import VFIOConformance
import VFIOSystem
import TestSupport

/// A leak check's baseline in a process where nothing has waited on an eventfd yet: the
/// readiness poller, started by the first wait that finds no value, must not read as a
/// leak. In this test process some earlier test has usually started it already, so the
/// case runs alone in a fresh copy of the test bundle (`runsAlone`).
@Suite struct ConformanceFreshProcessTests {
    @Test func theReadinessPollerIsInAFreshProcessBaseline() async throws {
        guard try await runsAlone(Self.self) else { return }
        // Baseline, then the process's first wait that has to wait.
        let baseline = try await ProcessResources.settled()
        let event = try EventFD()
        await #expect(throws: VFIOError.self) { _ = try await event.wait(timeout: .milliseconds(1)) }
        event.close()
        #expect(ProcessResources.current().descriptorsAdded(since: baseline) == [], "descriptors added after the baseline")
    }
}
