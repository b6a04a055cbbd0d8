import ArgumentParser
import Foundation
import NVMeDriver
import Synchronization

/// `vfio nvme bench`: N tasks keep N commands in flight (the queue depth) for S seconds,
/// each timing its own commands; prints IOPS, MB/s and latency percentiles.
struct NVMeBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure reads and/or writes: IOPS, MB/s and latency percentiles.",
        discussion: "Writes (--write, --mixed) overwrite the namespace's blocks in the range used: only on a disk whose data may go."
    )

    @OptionGroup var common: NVMeDriverOptions
    @Option(name: .long, help: "Commands in flight.") var qd: Int = 1
    @Option(name: .long, help: "Bytes per command (4k, 128k, ...), a multiple of the block size.") var size: ByteSize = ByteSize(bytes: 4096)
    @Flag(name: .long, help: "Reads (the default).") var read = false
    @Flag(name: .long, help: "Writes.") var write = false
    @Flag(name: .long, help: "Half reads, half writes.") var mixed = false
    @Flag(name: .long, help: "Sequential offsets (each task its own stream) instead of random ones.") var sequential = false
    @Option(name: .long, help: "Seconds to run.") var seconds: Double = 5
    @Option(name: .long, help: "Use at most this many bytes of the namespace (from LBA 0).") var span: ByteSize?
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        guard (1...4096).contains(qd) else { throw ValidationError("--qd must be 1...4096") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard size.bytes > 0, size.bytes <= 1 << 21 else { throw ValidationError("--size must be 1 byte to 2 MiB") }
        guard [read, write, mixed].filter({ $0 }).count <= 1 else { throw ValidationError("choose one of --read, --write, --mixed") }
    }

    final class Progress: Sendable {
        let done = Atomic<Int>(0)
    }

    func run() async throws {
        let (qd, seconds, sequential, json) = (qd, seconds, sequential, json)
        let mode = write ? "write" : mixed ? "mixed" : "read"
        let bytes = Int(size.bytes)
        let spanBytes = span.map { UInt64($0.bytes) }
        let result = try await common.withHost { host, ns -> (count: Int, elapsed: Duration, latencies: [UInt32]) in
            guard bytes % ns.blockSize == 0, bytes <= host.maximumTransferBytes else {
                throw ValidationError("--size \(bytes) must be a multiple of \(ns.blockSize) and at most \(host.maximumTransferBytes)")
            }
            let blocks = bytes / ns.blockSize
            let usable = min(ns.blockCount, (spanBytes ?? UInt64.max) / UInt64(ns.blockSize))
            let slots = usable / UInt64(blocks)
            guard slots >= 1 else { throw ValidationError("the namespace is smaller than one command") }
            let progress = Progress()
            let start = ContinuousClock.now
            let deadline = start + .milliseconds(Int64(seconds * 1000))
            let printer = Task {
                var last = 0
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    let now = progress.done.load(ordering: .relaxed)
                    if !json {
                        let elapsed = ContinuousClock.now - start
                        FileHandle.standardError.write(Data("\r\(Int(elapsed.seconds))s: \(now - last) IOPS, \(now) commands   ".utf8))
                    }
                    last = now
                }
            }
            // The I/O tasks run on the driver's interrupt thread (MSI-X mode): resumed where
            // the interrupt is taken.
            let latencies = try await withTaskExecutorPreference(host.executor) {
                try await withThrowingTaskGroup(of: [UInt32].self) { group in
                    for worker in 0..<qd {
                        group.addTask {
                            let buffer = try host.allocateBuffer(bytes)
                            buffer.store((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ worker) })
                            // Seeded once from the system: SystemRandomNumberGenerator is a getrandom()
                            // per number, a system call per command (fio's generator makes none).
                            var rng = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
                            var times: [UInt32] = []
                            times.reserveCapacity(1 << 16)
                            var slot = UInt64(worker) * (slots / UInt64(qd))
                            var k = 0
                            // One clock read per command: a command's end is the next one's start
                            // (where the clock is HPET, each read is a system call).
                            var t0 = ContinuousClock.now
                            while t0 < deadline {
                                if sequential { slot = (slot + 1) % slots } else { slot = UInt64.random(in: 0..<slots, using: &rng) }
                                let isWrite = mode == "write" || (mode == "mixed" && (k + worker) % 2 == 0)
                                k += 1
                                if isWrite {
                                    try await host.write(namespace: ns.id, lba: slot * UInt64(blocks), blocks: blocks, from: buffer)
                                } else {
                                    try await host.read(namespace: ns.id, lba: slot * UInt64(blocks), blocks: blocks, into: buffer)
                                }
                                let t1 = ContinuousClock.now
                                times.append(UInt32(clamping: (t1 - t0).nanoseconds))
                                t0 = t1
                                progress.done.add(1, ordering: .relaxed)
                            }
                            host.releaseBuffer(buffer)
                            return times
                        }
                    }
                    var all: [UInt32] = []
                    for try await times in group { all += times }
                    return all
                }
            }
            let elapsed = ContinuousClock.now - start
            printer.cancel()
            if !json { FileHandle.standardError.write(Data("\n".utf8)) }
            return (latencies.count, elapsed, latencies.sorted())
        }
        let secondsRun = result.elapsed.seconds
        let iops = Double(result.count) / secondsRun
        let mbps = iops * Double(bytes) / 1_000_000
        func percentile(_ p: Double) -> UInt64 {
            guard !result.latencies.isEmpty else { return 0 }
            return UInt64(result.latencies[min(result.latencies.count - 1, Int(Double(result.latencies.count) * p))])
        }
        let mean = result.latencies.isEmpty ? 0 : result.latencies.reduce(0) { $0 + UInt64($1) } / UInt64(result.latencies.count)
        let points: [(String, Double)] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)]
        if json {
            var fields: [(String, JSON)] = [
                ("device", .string(common.device.description)), ("mode", .string(mode)), ("pattern", .string(sequential ? "sequential" : "random")),
                ("size", .unsigned(UInt64(bytes))), ("qd", .unsigned(UInt64(qd))), ("queues", .unsigned(UInt64(common.queues))),
                ("polled", .bool(common.polled)), ("commands", .unsigned(UInt64(result.count))),
                ("seconds", .string(String(format: "%.3f", secondsRun))), ("iops", .unsigned(UInt64(iops))),
                ("mb_per_s", .string(String(format: "%.1f", mbps))), ("latency_mean_ns", .unsigned(mean)),
            ]
            for (name, p) in points { fields.append(("latency_\(name)_ns", .unsigned(percentile(p)))) }
            fields.append(("latency_max_ns", .unsigned(UInt64(result.latencies.last ?? 0))))
            print(JSON.object(fields).rendered())
        } else {
            print("\(mode) \(sequential ? "sequential" : "random") \(bytes) bytes, QD \(qd), \(common.queues) queue(s)\(common.polled ? ", polled" : ""): "
                  + "\(result.count) commands in \(String(format: "%.2f", secondsRun)) s")
            print(String(format: "  %.0f IOPS, %.1f MB/s", iops, mbps))
            print("  latency µs: mean \(micro(mean)), " + points.map { "\($0.0) \(micro(percentile($0.1)))" }.joined(separator: ", ")
                  + ", max \(micro(UInt64(result.latencies.last ?? 0)))")
        }
    }

    private func micro(_ ns: UInt64) -> String { String(format: "%.1f", Double(ns) / 1000) }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a fast generator for the bench's offsets,
/// not for anything secret.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
