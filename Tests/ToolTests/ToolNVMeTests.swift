import Testing
import TestSupport

/// `vfio nvme` against the in-process Swift controller (`model:nvme`): identify, a write
/// and a read of the same blocks in one process are not possible (each run serves a fresh
/// controller), so these check what each command reports.
@Suite struct ToolNVMeTests {
    func run(_ arguments: [String]) throws -> (ToolProcess.Ending, String)? {
        guard let tool = builtToolPath() else {
            print("ToolNVMeTests: no built vfio next to the tests; skipped")
            return nil
        }
        let process = try ToolProcess(tool: tool, arguments)
        let ending = process.waitForExit(timeout: .seconds(60))
        return (ending, process.log)
    }

    @Test(arguments: [[], ["--polled"], ["--no-shadow-doorbells", "--queues", "2"]])
    func identifyReportsTheControllerAndTheDriver(_ options: [String]) throws {
        guard let (ending, log) = try run(["nvme", "identify", "model:nvme", "--json"] + options) else { return }
        #expect(ending == .exited(0), "\(log)")
        #expect(log.contains("\"model\": \"swift-vfio NVMe controller\""))
        #expect(log.contains("\"block_size\": 512"))
        #expect(log.contains("\"interrupts\": \(!options.contains("--polled"))"))
        #expect(log.contains("\"shadow_doorbells\": \(!options.contains("--no-shadow-doorbells"))"))
        #expect(log.contains("\"io_queues\": \(options.contains("2") ? 2 : 1)"))
    }

    @Test func readPastTheEndNamesTheCommandAndStatus() throws {
        // model:nvme has 131072 blocks of 512 bytes.
        guard let (ending, log) = try run(["nvme", "read", "model:nvme", "--lba", "131072", "--count", "1"]) else { return }
        #expect(ending == .exited(1), "\(log)")
        #expect(log.contains("Read"), "\(log)")
        #expect(log.contains("LBA Out of Range"), "\(log)")
    }

    @Test func writeThenBenchReport() throws {
        guard let (writeEnding, writeLog) = try run(["nvme", "write", "model:nvme", "--lba", "8", "--count", "4"]) else { return }
        #expect(writeEnding == .exited(0), "\(writeLog)")
        #expect(writeLog.contains("wrote 2048 bytes at LBA 8"))
        guard let (ending, log) = try run(["nvme", "bench", "model:nvme", "--qd", "4", "--size", "8k", "--mixed", "--seconds", "0.5", "--json"]) else { return }
        #expect(ending == .exited(0), "\(log)")
        for key in ["\"iops\"", "\"mb_per_s\"", "\"latency_p50_ns\"", "\"latency_p99_ns\"", "\"mode\": \"mixed\"", "\"size\": 8192"] {
            #expect(log.contains(key), "\(key) missing: \(log)")
        }
    }
}
