import Glibc
import NVMeController
import NVMeDriver
import VFIO
import VFIOSystem
import VFIOUserClient
import VFIOUserServer
import VFIOUserWire

// (h) The Swift NVMe controller (RAM namespace) in a child process, driven over vfio-user
// by NVMeDriver at queue depth 32, 4 KiB reads: I/Os per second beside the floor's
// socket round trips per second. More I/Os than round trips means the doorbell path
// costs less than one message per I/O (shadow doorbells with EventIdx, completions and
// data through the shared memory, interrupts on eventfds).

/// The child's server: `NVMeDevice` on a 64 MiB RAM namespace.
func runNVMeServer(_ fd: Int32) -> Never {
    do {
        let server = try VFIOUserServer(model: try NVMeDevice(ramBytes: 64 << 20))
        server.run(connection: VFIOUserSocket(adopting: fd))
        exit(0)
    } catch {
        writeStandardError("vfio-bench child (nvme): \(error)\n")
        exit(1)
    }
}

/// Runs `body` on the cooperative pool and waits for it on this thread (the benchmark's
/// loops are synchronous; the driver's API is async).
func waitFor<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = VFIOSystem.Monitor<Result<T, any Error>?>(nil)
    Task {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        outcome.update { $0 = result }
    }
    return try outcome.wait(until: { $0 }).get()
}

struct NVMeBenchmark {
    let echo: EchoClient
    let rounds: Int
    let ios: Int
    static let depth = 32
    static let blockBytes = 4096

    func run() throws -> [Row] {
        let child = spawnChild("nvme")
        defer { child.finish() }
        let client = try VFIOUserClient(socket: VFIOUserSocket(adopting: child.fd), name: "bench-nvme")
        defer { client.close() }
        let host = try waitFor { try await NVMeHost.open(client) }
        let buffers = try (0..<Self.depth).map { _ in try host.allocateBuffer(Self.blockBytes) }
        let blocks = Self.blockBytes / 512
        let span = UInt64((64 << 20) / Self.blockBytes)
        let perTask = ios / Self.depth
        let (f, s) = try interleavedRate(rounds: rounds, floor: {
            for _ in 0..<(perTask * Self.depth) { echo.pingPong(size: regionAccessSize, answer: regionAccessSize + 4) }
            return Double(perTask * Self.depth)
        }, subject: {
            try waitFor {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (i, buffer) in buffers.enumerated() {
                        group.addTask {
                            var slot = UInt64(i) &* 2_654_435_761
                            for _ in 0..<perTask {
                                slot = (slot &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407)
                                try await host.read(lba: (slot >> 33) % span * UInt64(blocks), blocks: blocks, into: buffer)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            return Double(perTask * Self.depth)
        })
        for buffer in buffers { host.releaseBuffer(buffer) }
        if let error = try waitFor({ await host.close() }) { throw error }
        return [Row(group: "h", name: "NVMe 4 KiB read, QD32, RAM namespace", unit: "k IO/s", subject: median(s) / 1000,
                    floorName: "ping-pong round trips", floor: median(f) / 1000, lowerIsBetter: false)]
    }
}
