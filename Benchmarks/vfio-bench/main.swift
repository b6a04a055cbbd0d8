// vfio-bench: the vfio-user transport against its floor, measured in the same run.
//
//   swift run -c release vfio-bench [--json] [--quick] [--only GROUP] [--iterations N] [--rounds R]
//
// GROUP: latency, read4, write4, pingpong, inflight, bulk, mmap, dma, maps, migration, nvme (read4, write4 and
// pingpong run one loop only, for counting system calls with strace).
// Every figure is printed beside its floor and as a ratio; absolute times depend on the
// machine and its load, the ratios much less.

import CVFIO
import Glibc
import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserClient
import VFIOUserServer
import VFIOUserWire

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--child", arguments.count >= 2 {
    if arguments.count >= 4, arguments[2] == "--cpu", let cpu = Int(arguments[3]) { pinToCPU(cpu) }
    switch arguments[1] {
    case "echo": runEchoServer(3)
    case "vfio-user": runVFIOUserServer(3)
    case "nvme": runNVMeServer(3)
    default: exit(64)
    }
}

func option(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}
let json = arguments.contains("--json")
let quick = arguments.contains("--quick")
let only = option("--only")
let iterations = Int(option("--iterations") ?? "") ?? (quick ? 4000 : 40000)
let rounds = Int(option("--rounds") ?? "") ?? (quick ? 3 : 5)
func wanted(_ group: String) -> Bool { only == nil || only == group }

func log(_ text: String) { if !json { writeStandardError(text + "\n") } }

// Where the processes run. `same` (the default): the benchmark and both servers on one
// CPU, so a round trip is the CPU work of both sides plus two context switches, without
// the cross-CPU wake-up latency that on a small VM swings between runs by 5x; `split`:
// the benchmark on one CPU, the servers on another; `free`: wherever the scheduler likes.
let placement = option("--placement") ?? "same"
let allowed = allowedCPUs()
var serverCPU: Int?
switch placement {
case "same":
    if let cpu = allowed.last { pinToCPU(cpu) }
case "split":
    guard allowed.count >= 2 else { fatalError("--placement split needs two CPUs") }
    pinToCPU(allowed[0])
    serverCPU = allowed[1]
case "free":
    break
default:
    fatalError("--placement must be same, split or free")
}

let echoChild = spawnChild("echo", cpu: serverCPU)
let echo = EchoClient(fd: echoChild.fd)
let userChild = spawnChild("vfio-user", cpu: serverCPU)
let client: VFIOUserClient
do {
    client = try VFIOUserClient(socket: VFIOUserSocket(adopting: userChild.fd), name: "bench")
} catch {
    fatalError("vfio-user client: \(error)")
}

var rows: [Row] = []
var notes: [String] = [
    "servers in a child process each (floor: plain socket echo; vfio-user: VFIOUserServer with a bench device), the client in this process",
    "placement: \(placement) (same: all on CPU \(allowed.last ?? 0); split: client on one CPU, servers on another; free: unpinned)",
    "ratio = vfio-user / floor: for times higher is slower, for rates lower is slower",
]

nonisolated(unsafe) let register = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
let regionAccessSize = 16 + 16   // header + struct vfio_user_region_access

func read4() throws { try client.read(region: 1, offset: 0, into: UnsafeMutableRawBufferPointer(rebasing: register[0..<4])) }
func write4() throws { try client.write(region: 1, offset: 0, from: UnsafeRawBufferPointer(rebasing: register[0..<4])) }

// The server's share alone: 4-byte REGION_READs written and read as raw bytes (no
// VFIOUserClient) to a server of its own, timed against the floor in alternating blocks.
if only == "rawread4" {
    let raw = spawnChild("vfio-user", cpu: serverCPU)
    let rawSocket = RawVFIOUserPeer(fd: raw.fd)
    rawSocket.negotiate()
    let (f, s) = interleavedLatency(iterations: iterations, warmup: 500,
                                    floor: { echo.pingPong(size: regionAccessSize, answer: regionAccessSize + 4) },
                                    subject: { rawSocket.read4() })
    log("raw REGION_READ 4 B median \(s.median / 1000) us, floor \(f.median / 1000) us, ratio \(s.median / f.median)")
    client.close(); echoChild.finish(); userChild.finish(); raw.finish()
    exit(0)
}

// Single-loop modes, for strace -c.
if let only, ["read4", "write4", "pingpong"].contains(only) {
    let t = now()
    for _ in 0..<iterations {
        switch only {
        case "read4": try read4()
        case "write4": try write4()
        default: echo.pingPong(size: regionAccessSize, answer: regionAccessSize + 4)
        }
    }
    log("\(only): \(iterations) in \(Double(now() - t) / 1e6) ms")
    client.close(); echoChild.finish(); userChild.finish()
    exit(0)
}

// (a) One at a time.
if wanted("latency") {
    log("(a) 4-byte round trips…")
    for (name, subject, out, back) in [("REGION_READ 4 B", read4 as () throws -> Void, regionAccessSize, regionAccessSize + 4),
                                       ("REGION_WRITE 4 B", write4, regionAccessSize + 4, regionAccessSize)] {
        let (f, s) = try interleavedLatency(iterations: iterations, warmup: 500,
                                            floor: { echo.pingPong(size: out, answer: back) }, subject: subject)
        let floorName = "ping-pong \(out)/\(back) B"
        rows.append(Row(group: "a", name: "\(name) median", unit: "us", subject: s.median / 1000, floorName: floorName,
                        floor: f.median / 1000, lowerIsBetter: true, target: "<= 1.05x"))
        rows.append(Row(group: "a", name: "\(name) p99", unit: "us", subject: s.p99 / 1000, floorName: floorName,
                        floor: f.p99 / 1000, lowerIsBetter: true))
    }
}

// (b) 16 requests in flight.
if wanted("inflight") {
    log("(b) 16 in flight…")
    let depth = 16
    let total = iterations
    let (f, s) = interleavedRate(rounds: rounds, floor: {
        // One thread keeps 16 echo messages in flight.
        for _ in 0..<depth { echo.send(size: regionAccessSize, answer: regionAccessSize + 4) }
        for i in 0..<total {
            echo.receive(regionAccessSize + 4)
            if i + depth < total { echo.send(size: regionAccessSize, answer: regionAccessSize + 4) }
        }
        return Double(total)
    }, subject: {
        // 16 threads, each one REGION_READ at a time (the client pipelines them).
        let threads = (0..<depth).map { _ in
            BenchThread {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4)
                for _ in 0..<(total / depth) { try! client.read(region: 1, offset: 0, into: buffer) }
                buffer.deallocate()
            }
        }
        for t in threads { t.join() }
        return Double(total / depth * depth)
    })
    rows.append(Row(group: "b", name: "REGION_READ 4 B, 16 in flight, 16 threads", unit: "k msg/s", subject: median(s) / 1000,
                    floorName: "ping-pong 16 deep", floor: median(f) / 1000, lowerIsBetter: false))
    // One thread, 16 REGION_READs at a time with `perform` (sent together, then collected).
    let buffers = (0..<depth).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 4) }
    defer { for b in buffers { b.deallocate() } }
    let batch = buffers.map { VFIOUserClient.Access.read(region: 1, offset: 0, into: $0) }
    let (f2, s2) = try interleavedRate(rounds: rounds, floor: {
        // 16 messages in one write, then their 16 answers.
        for _ in 0..<(total / depth) { echo.burst(count: depth, size: regionAccessSize, answer: regionAccessSize + 4) }
        return Double(total / depth * depth)
    }, subject: {
        for _ in 0..<(total / depth) { try client.perform(batch) }
        return Double(total / depth * depth)
    })
    rows.append(Row(group: "b", name: "REGION_READ 4 B, 16 in flight, one thread", unit: "k msg/s", subject: median(s2) / 1000,
                    floorName: "16 in one write, 16 back", floor: median(f2) / 1000, lowerIsBetter: false))
}

// (c) Bulk.
if wanted("bulk") {
    log("(c) bulk…")
    let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
    memset(memory.baseAddress!, 7, 1 << 20)
    for size in [4096, 16384, 65536, 262144, 1 << 20] {
        let count = max(8, min(2000, (quick ? 16 : 64) * (1 << 20) / size)) / rounds + 1
        let piece = UnsafeMutableRawBufferPointer(rebasing: memory[0..<size])
        let label = size >= 1 << 20 ? "\(size >> 20) MiB" : "\(size >> 10) KiB"
        let r = try interleavedRate(rounds: rounds, floor: {
            for _ in 0..<count { echo.pingPong(size: regionAccessSize, answer: regionAccessSize + size) }
            return Double(count * size)
        }, subject: {
            for _ in 0..<count { try client.read(region: 0, offset: 0, into: piece) }
            return Double(count * size)
        })
        rows.append(Row(group: "c", name: "REGION_READ \(label)", unit: "MB/s", subject: median(r.subject) / 1e6,
                        floorName: "socket \(label)", floor: median(r.floor) / 1e6, lowerIsBetter: false,
                        target: size == 1 << 20 ? ">= 0.85x" : ""))
        let w = try interleavedRate(rounds: rounds, floor: {
            for _ in 0..<count { echo.pingPong(size: regionAccessSize + size, answer: regionAccessSize) }
            return Double(count * size)
        }, subject: {
            for _ in 0..<count { try client.write(region: 0, offset: 0, from: UnsafeRawBufferPointer(piece)) }
            return Double(count * size)
        })
        rows.append(Row(group: "c", name: "REGION_WRITE \(label)", unit: "MB/s", subject: median(w.subject) / 1e6,
                        floorName: "socket \(label)", floor: median(w.floor) / 1e6, lowerIsBetter: false,
                        target: size == 1 << 20 ? ">= 0.85x" : ""))
    }
    memory.deallocate()
}

// (d) mmap-ed BAR.
if wanted("mmap") {
    log("(d) mmap…")
    let size = 1 << 20
    let mapping = try client.mapRegion(0, offset: 0, size: Int(BenchDevice.memorySize))
    let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    let target = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    memset(source, 3, size); memset(target, 4, size)
    let count = quick ? 100 : 400
    let r = interleavedRate(rounds: rounds, floor: {
        for _ in 0..<count { memcpy(target, source, size) }
        return Double(count * size)
    }, subject: {
        for _ in 0..<count { memcpy(target, mapping.baseAddress, size) }
        return Double(count * size)
    })
    rows.append(Row(group: "d", name: "mmap BAR read 1 MiB", unit: "MB/s", subject: median(r.subject) / 1e6,
                    floorName: "memcpy 1 MiB", floor: median(r.floor) / 1e6, lowerIsBetter: false))
    let w = interleavedRate(rounds: rounds, floor: {
        for _ in 0..<count { memcpy(target, source, size) }
        return Double(count * size)
    }, subject: {
        for _ in 0..<count { memcpy(mapping.baseAddress, source, size) }
        return Double(count * size)
    })
    rows.append(Row(group: "d", name: "mmap BAR write 1 MiB", unit: "MB/s", subject: median(w.subject) / 1e6,
                    floorName: "memcpy 1 MiB", floor: median(w.floor) / 1e6, lowerIsBetter: false))
    // A 4-byte register-like load through the mapping against a REGION_READ.
    let loads = 1_000_000
    var sink: UInt32 = 0
    let l = interleavedRate(rounds: rounds, floor: {
        for i in 0..<loads { sink &+= cvfio_mmio_read32(source + (i & 0xFFF) * 4) }
        return Double(loads)
    }, subject: {
        for i in 0..<loads { sink &+= cvfio_mmio_read32(mapping.baseAddress + (i & 0xFFF) * 4) }
        return Double(loads)
    })
    if sink == 42 { log("") }
    rows.append(Row(group: "d", name: "mmap BAR 4-byte load", unit: "ns", subject: 1e9 / median(l.subject),
                    floorName: "4-byte load, private memory", floor: 1e9 / median(l.floor), lowerIsBetter: true))
    source.deallocate(); target.deallocate()
}

// (e) Device DMA.
if wanted("dma") {
    log("(e) device DMA…")
    let size = 1 << 20
    let times = quick ? 20 : 64
    let shared = try DMABuffer(size: size, backing: .sharedMemory)
    let anonymous = try DMABuffer(size: size, backing: .anonymous)
    try client.mapDMA(shared, offset: 0, size: size, iova: 0x1000_0000, access: [.read, .write])
    try client.mapDMA(anonymous, offset: 0, size: size, iova: 0x2000_0000, access: [.read, .write])
    let engine = BenchDMAEngine(client: client)
    /// Runs a device DMA command; returns bytes per second measured by the server.
    func deviceDMA(iova: UInt64, length: Int, toRAM: Bool) throws -> Double {
        Double(length * times) / (try engine.run(iova: iova, length: length, times: times, toRAM: toRAM))
    }
    let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    let target = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    memset(source, 3, size); memset(target, 4, size)
    for length in [65536, 1 << 20] {
        let label = length >= 1 << 20 ? "1 MiB" : "64 KiB"
        for toRAM in [false, true] {
            let direction = toRAM ? "write" : "read"
            var floor: [Double] = [], mapped: [Double] = [], messages: [Double] = []
            for _ in 0..<rounds {
                var t = now()
                for _ in 0..<times { memcpy(target, source, length) }
                floor.append(Double(length * times) / (Double(now() - t) / 1e9))
                mapped.append(try deviceDMA(iova: 0x1000_0000, length: length, toRAM: toRAM))
                t = now()
                messages.append(try deviceDMA(iova: 0x2000_0000, length: length, toRAM: toRAM))
            }
            rows.append(Row(group: "e", name: "DMA \(direction) \(label), mapped descriptor", unit: "MB/s", subject: median(mapped) / 1e6,
                            floorName: "memcpy \(label)", floor: median(floor) / 1e6, lowerIsBetter: false))
            rows.append(Row(group: "e", name: "DMA \(direction) \(label), DMA_\(toRAM ? "WRITE" : "READ") messages", unit: "MB/s",
                            subject: median(messages) / 1e6, floorName: "memcpy \(label)", floor: median(floor) / 1e6, lowerIsBetter: false))
        }
    }
    source.deallocate(); target.deallocate()
    try client.unmapAllDMA()
}

// (f) Migration stream.
if wanted("migration") {
    log("(f) migration stream…")
    rows += try MigrationBenchmark(client: client, echo: echo, rounds: rounds).run()
}

// (g) The DMA map table, filled page by page.
if wanted("maps") {
    log("(g) DMA map table…")
    rows += try DMAMapBenchmark(client: client, rounds: rounds).run()
}

// (h) The Swift NVMe controller driven by NVMeDriver.
if wanted("nvme") {
    log("(h) NVMe controller, 4 KiB reads at QD32…")
    rows += try NVMeBenchmark(echo: echo, rounds: rounds, ios: max(iterations, 3200)).run()
}

client.close()
echoChild.finish()
userChild.finish()

if json {
    printJSON(rows, notes: notes)
} else {
    printTable(rows)
    for n in notes { print("- " + n) }
}

/// A joinable thread for the in-flight benchmark.
final class BenchThread: @unchecked Sendable {
    private var thread = pthread_t()
    init(_ body: @escaping @Sendable () -> Void) {
        final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
    }
    func join() { pthread_join(thread, nil) }
}
