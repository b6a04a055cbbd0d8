import CVFIO
import Glibc
import Synchronization
import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserClient
import VFIOUserServer
import VFIOUserWire

// The servers run in a child process (this executable again, `--child MODE`), connected
// to the benchmark by a socket pair whose child end is descriptor 3. The floor (`echo`)
// and the vfio-user server are each their own child, so both arrangements are the same:
// the benchmark's threads in one process, one server thread in another.

struct Child {
    let pid: pid_t
    let fd: Int32

    func finish() {
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }
}

func selfExecutable() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    precondition(n > 0, "readlink /proc/self/exe")
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The CPUs this process may run on.
func allowedCPUs() -> [Int] {
    var cpus = [Int32](repeating: 0, count: 1024)
    let n = cvfio_allowed_cpus(&cpus, Int32(cpus.count))
    return n > 0 ? cpus[0..<Int(n)].map(Int.init) : []
}

/// Pins the calling process (all its threads to come) to `cpu`.
func pinToCPU(_ cpu: Int) {
    if cvfio_pin_to_cpu(Int32(cpu)) != 0 {
        writeStandardError("vfio-bench: cannot pin to CPU \(cpu): errno \(errno)\n")
    }
}

/// Starts `--child mode` on one end of a new socket pair; returns the other end.
func spawnChild(_ mode: String, cpu: Int? = nil) -> Child {
    var pair: [Int32] = [-1, -1]
    precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0, "socketpair")
    // Keep the child's end away from 3, so that dup2 clears its close-on-exec flag.
    let childEnd = fcntl(pair[1], F_DUPFD_CLOEXEC, 10)
    Glibc.close(pair[1])
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, childEnd, 3)
    let path = selfExecutable()
    let args = [path, "--child", mode] + (cpu.map { ["--cpu", String($0)] } ?? [])
    var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, &argv, environ)
    precondition(rc == 0, "posix_spawn: \(rc)")
    for a in argv { free(a) }
    posix_spawn_file_actions_destroy(&actions)
    Glibc.close(childEnd)
    return Child(pid: pid, fd: pair[0])
}

// MARK: The floor: a plain socket echo

/// Floor messages: a 16-byte header like vfio-user's (size at offset 4), the size of the
/// answer wanted at offset 12, and at offset 8 where in the echo's 40 MiB answer buffer the
/// answer's bytes start (so a stream of answers can walk through as much memory as a
/// device's state). The echo server reads greedily into a stream buffer (one `read` may
/// take several pipelined messages) and answers each whole message with one `write` of the
/// size asked: the fewest system calls a byte stream allows.
func runEchoServer(_ fd: Int32) -> Never {
    let capacity = 4 << 20
    let answerCapacity = echoSourceCapacity
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
    let reply = UnsafeMutableRawPointer.allocate(byteCount: answerCapacity, alignment: 64)
    memset(reply, 0x5a, answerCapacity)
    var have = 0
    while true {
        let n = Glibc.read(fd, buffer + have, capacity - have)
        if n <= 0 { exit(0) }
        have += n
        var at = 0
        while have - at >= 16 {
            let size = Int(buffer.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self))
            guard size >= 16, size <= capacity else { exit(2) }
            if have - at < size { break }
            let answer = Int(buffer.loadUnaligned(fromByteOffset: at + 12, as: UInt32.self))
            let source = Int(buffer.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self))
            guard source + answer <= answerCapacity else { exit(2) }
            (reply + source).storeBytes(of: UInt32(answer), toByteOffset: 4, as: UInt32.self)
            writeAll(fd, reply + source, answer)
            at += size
        }
        if at > 0 {
            if have > at { memmove(buffer, buffer + at, have - at) }
            have -= at
        }
    }
}

/// The size of the memory floor messages may be sent from (both sides).
let echoSourceCapacity = 40 << 20

func writeAll(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int) {
    var done = 0
    while done < count {
        let n = Glibc.write(fd, p + done, count - done)
        if n < 0 { if errno == EINTR { continue }; exit(3) }
        done += n
    }
}

func readAll(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ count: Int) {
    var done = 0
    while done < count {
        let n = Glibc.read(fd, p + done, count - done)
        if n < 0 { if errno == EINTR { continue }; fatalError("read: \(errno)") }
        if n == 0 { fatalError("read: end of stream") }
        done += n
    }
}

/// The benchmark's side of the floor.
final class EchoClient {
    let fd: Int32
    let out: UnsafeMutableRawPointer
    let input: UnsafeMutableRawPointer
    init(fd: Int32) {
        self.fd = fd
        out = .allocate(byteCount: echoSourceCapacity, alignment: 64)
        input = .allocate(byteCount: 4 << 20, alignment: 64)
        memset(out, 0xa5, echoSourceCapacity)
    }

    /// Sends `size` bytes from `source` bytes into this side's memory, asking for `answer`
    /// bytes taken from `answerSource` bytes into the echo's memory.
    func send(size: Int, answer: Int, source: Int = 0, answerSource: Int = 0) {
        precondition(source + size <= echoSourceCapacity && answerSource + answer <= echoSourceCapacity)
        let message = out + source
        message.storeBytes(of: UInt32(size), toByteOffset: 4, as: UInt32.self)
        message.storeBytes(of: UInt32(answerSource), toByteOffset: 8, as: UInt32.self)
        message.storeBytes(of: UInt32(answer), toByteOffset: 12, as: UInt32.self)
        writeAll(fd, message, size)
    }

    func receive(_ answer: Int) { readAll(fd, input, answer) }

    /// `count` messages of `size` bytes written with one `write`, each asking for `answer`
    /// bytes; then all the answers read.
    func burst(count: Int, size: Int, answer: Int) {
        precondition(count * size <= echoSourceCapacity && count * answer <= 4 << 20)
        for i in 0..<count {
            let message = out + i * size
            message.storeBytes(of: UInt32(size), toByteOffset: 4, as: UInt32.self)
            message.storeBytes(of: UInt32(0), toByteOffset: 8, as: UInt32.self)
            message.storeBytes(of: UInt32(answer), toByteOffset: 12, as: UInt32.self)
        }
        writeAll(fd, out, count * size)
        readAll(fd, input, count * answer)
    }

    /// One round trip: `size` bytes out, `answer` bytes back.
    func pingPong(size: Int, answer: Int, source: Int = 0, answerSource: Int = 0) {
        send(size: size, answer: answer, source: source, answerSource: answerSource)
        receive(answer)
    }
}

// MARK: The device served over vfio-user

/// A device for measuring the transport, not a model: region 0 is 2 MiB of memory (one
/// mmap area; REGION_READ/WRITE there are a memcpy in the server), region 1 is registers
/// served by callbacks:
/// - 0x00 (RW, 4 bytes) scratch — the register of the 4-byte round trips.
/// - 0x08 (RW, 8) DMA address; 0x10 (RW, 4) DMA length; 0x14 (RW, 4) repetitions.
/// - 0x18 (WO, 4) DMA command: 1 the device reads RAM, 2 it writes RAM; runs after the
///   reply (`afterReply`), `repetitions` transfers of `length` bytes at the address.
/// - 0x20 (RO, 8) nanoseconds the last command took (server clock). 0x28 (RO, 4) number of
///   commands completed; 0x2C (RO, 4) errno of the last one (0 = fine).
///
/// It migrates (STOP_COPY only): its saved state is `migrationStateSize` bytes of memory
/// content, filled with a pattern once; a load must bring back exactly that many bytes.
/// It can be reset (VFIO_USER_DEVICE_RESET), which takes it back to RUNNING.
final class BenchDevice: DeviceModel, MigratableDevice, @unchecked Sendable {
    static let memorySize: UInt64 = 2 << 20
    static let migrationStateSize = 32 << 20
    let deviceFlags: DeviceInfoFlags = [.pci, .reset]
    let regions: [RegionDescriptor] = [
        RegionDescriptor(index: 0, size: BenchDevice.memorySize, flags: [.read, .write, .mmap],
                         backing: .memory(mmapAreas: [SparseMmapArea(offset: 0, size: BenchDevice.memorySize)])),
        RegionDescriptor(index: 1, size: 0x1000, flags: [.read, .write]),
    ]
    let irqs: [IRQDescriptor] = []

    private let lock = Monitor()
    private var scratch: UInt32 = 0
    private var address: UInt64 = 0
    private var length: UInt32 = 0
    private var repetitions: UInt32 = 1
    private var elapsed: UInt64 = 0
    private var completed: UInt32 = 0
    private var lastErrno: UInt32 = 0
    private var context: (any DeviceContext)?
    private var staging = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(BenchDevice.memorySize), alignment: 64)
    /// The state that migrates (guarded by `lock`).
    private let migrationMemory: UnsafeMutableRawBufferPointer = {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: BenchDevice.migrationStateSize, alignment: 64)
        for i in 0..<memory.count / 8 { memory.storeBytes(of: UInt64(i) &* 0x9E37_79B9_7F4A_7C15, toByteOffset: i * 8, as: UInt64.self) }
        return memory
    }()

    func attach(_ context: any DeviceContext) { self.context = context }
    func reset() throws(VFIOError) {}

    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        guard region == 1 else { throw .errno("bench read", EINVAL) }
        let value: UInt64 = lock.locked {
            switch offset {
            case 0x00: return UInt64(scratch)
            case 0x08: return address
            case 0x10: return UInt64(length)
            case 0x14: return UInt64(repetitions)
            case 0x20: return elapsed
            case 0x28: return UInt64(completed)
            case 0x2C: return UInt64(lastErrno)
            default: return 0
            }
        }
        withUnsafeBytes(of: value.littleEndian) { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<min(8, buffer.count)])) }
    }

    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        guard region == 1 else { throw .errno("bench write", EINVAL) }
        var raw: UInt64 = 0
        withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[0..<min(8, buffer.count)])) }
        let value = UInt64(littleEndian: raw)
        switch offset {
        case 0x00: lock.locked { scratch = UInt32(truncatingIfNeeded: value) }
        case 0x08: lock.locked { address = value }
        case 0x10: lock.locked { length = UInt32(min(value, BenchDevice.memorySize)) }
        case 0x14: lock.locked { repetitions = UInt32(truncatingIfNeeded: value) }
        case 0x18:
            let (at, count, times) = lock.locked { (address, Int(length), Int(repetitions)) }
            let toRAM = value == 2
            context?.afterReply { [self] in
                let start = now()
                var code: UInt32 = 0
                let piece = UnsafeMutableRawBufferPointer(rebasing: staging[0..<count])
                for _ in 0..<times {
                    do throws(VFIOError) {
                        if toRAM { try context?.dmaWrite(iova: at, from: UnsafeRawBufferPointer(piece)) }
                        else { try context?.dmaRead(iova: at, into: piece) }
                    } catch {
                        code = UInt32(bitPattern: error.errnoValue ?? EIO)
                        break
                    }
                }
                let took = now() - start
                lock.locked {
                    elapsed = took
                    lastErrno = code
                    completed &+= 1
                }
            }
        default: break
        }
    }
}

extension BenchDevice {
    var migration: (any MigratableDevice)? { self }
    var migrationFeatures: MigrationFeatures { [.stopCopy] }
    var migrationIdentity: MigrationIdentity { MigrationIdentity(name: "vfio-bench", version: 1) }

    /// The bench device starts no work of its own: nothing to stop.
    func setMigrationRunState(_ state: MigrationRunState) throws(VFIOError) {}

    var stateSizeHint: Int? { BenchDevice.migrationStateSize }

    func saveState() throws(VFIOError) -> [UInt8] {
        lock.locked { [UInt8](UnsafeRawBufferPointer(migrationMemory)) }
    }

    func loadState(_ state: [UInt8], version: UInt32) throws(VFIOError) {
        let result = state.withUnsafeBytes { raw -> Result<Void, VFIOError> in
            do throws(VFIOError) { return .success(try loadState(from: raw, version: version)) } catch { return .failure(error) }
        }
        try result.get()
    }

    /// Straight from the resuming stream (the kit calls this one).
    func loadState(from state: UnsafeRawBufferPointer, version: UInt32) throws(VFIOError) {
        guard state.count == migrationMemory.count else {
            throw .malformed("vfio-bench state", "\(state.count) byte(s), \(migrationMemory.count) expected")
        }
        lock.locked { migrationMemory.copyMemory(from: state) }
    }
}

/// A plain mutex for the bench device's registers: `Synchronization.Mutex`, what a
/// device written in Swift 6 would take.
final class Monitor: Sendable {
    private let mutex = Mutex(())
    func locked<R>(_ body: () -> sending R) -> sending R {
        mutex.withLock { _ in body() }
    }
}

func runVFIOUserServer(_ fd: Int32) -> Never {
    do {
        let server = try VFIOUserServer(model: BenchDevice())
        // On this (the main) thread, as the floor's echo runs on its main thread.
        server.run(connection: VFIOUserSocket(adopting: fd))
        exit(0)
    } catch {
        writeStandardError("vfio-bench child: \(error)\n")
        exit(1)
    }
}

/// Writes `text` to standard error (file descriptor 2), unbuffered.
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
        if written <= 0 { if errno == EINTR { continue }; return }
        offset += written
    }
}

/// A vfio-user client reduced to raw bytes (a diagnostic of the server's share of a
/// round trip): VERSION once, then 4-byte REGION_READs of region 1 with one `write` and
/// one `read` each, as the floor's client does.
final class RawVFIOUserPeer {
    let fd: Int32
    private let request = UnsafeMutableRawPointer.allocate(byteCount: 32, alignment: 16)
    private let reply = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 16)

    init(fd: Int32) {
        self.fd = fd
        // REGION_READ (9) of 4 bytes at offset 0 of region 1.
        request.storeBytes(of: UInt16(1), toByteOffset: 0, as: UInt16.self)
        request.storeBytes(of: UInt16(9), toByteOffset: 2, as: UInt16.self)
        request.storeBytes(of: UInt32(32), toByteOffset: 4, as: UInt32.self)
        request.storeBytes(of: UInt32(0), toByteOffset: 8, as: UInt32.self)
        request.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self)
        request.storeBytes(of: UInt64(0), toByteOffset: 16, as: UInt64.self)
        request.storeBytes(of: UInt32(1), toByteOffset: 24, as: UInt32.self)
        request.storeBytes(of: UInt32(4), toByteOffset: 28, as: UInt32.self)
    }

    /// VFIO_USER_VERSION 0.0 with no capabilities; the reply is read and dropped.
    func negotiate() {
        let json = Array("{}".utf8) + [0]
        var message: [UInt8] = []
        let size = 16 + 4 + json.count
        withUnsafeBytes(of: UInt16(0).littleEndian) { message += $0 }
        withUnsafeBytes(of: UInt16(1).littleEndian) { message += $0 }
        withUnsafeBytes(of: UInt32(size).littleEndian) { message += $0 }
        message += [UInt8](repeating: 0, count: 8)
        message += [0, 0, 0, 0] + json
        message.withUnsafeBytes { writeAll(fd, $0.baseAddress!, $0.count) }
        readAll(fd, reply, 16)
        let replySize = Int(reply.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        if replySize > 16 { readAll(fd, reply + 16, replySize - 16) }
        precondition(reply.loadUnaligned(fromByteOffset: 8, as: UInt32.self) & 0x20 == 0, "VERSION refused")
    }

    func read4() {
        writeAll(fd, request, 32)
        readAll(fd, reply, 36)
    }
}
