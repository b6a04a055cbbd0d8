import Glibc
import VFIO
import VFIOUserClient
import VFIOUserServer
import VFIOUserWire

/// Group (f): the migration stream of the bench device (`BenchDevice.migrationStateSize`
/// bytes of state, one image record) against the same bytes over a plain socket.
///
/// Each round, floor and subject alternate:
/// - saving: RUNNING -> STOP_COPY (timed alone: the server serializes the state), then
///   the whole stream read with `VFIOUserMigrationStream.read(into:)` into a 1 MiB buffer
///   (one MIG_DATA_READ per call); the floor answers requests of the same sizes (the
///   24-byte request, a 24-byte header plus the data back, to the final empty answer).
/// - resuming: RUNNING -> RESUMING (timed alone: the server reserves and faults in the
///   memory for the stream, as the bench device gives a `stateSizeHint`), the stream
///   written back with `write(from:)` (1 MiB MIG_DATA_WRITEs), then RESUMING -> STOP
///   (timed alone: the server checks the stream and loads it); the floor sends messages
///   of the same sizes into a buffer it wrote before, a 16-byte answer each.
/// - reset (VFIO_USER_DEVICE_RESET) back to RUNNING, untimed.
/// The preparation, serialization and load times are set beside a memcpy of the state in
/// this process.
struct MigrationBenchmark {
    let client: VFIOUserClient
    let echo: EchoClient
    let rounds: Int
    let chunk = 1 << 20
    /// header + struct vfio_user_mig_data (argsz, size)
    let fixed = VFIOUserHeader.size + VFIOUserMigData.fixedSize

    func run() throws -> [Row] {
        let stateSize = BenchDevice.migrationStateSize
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        let saved = UnsafeMutableRawBufferPointer.allocate(byteCount: stateSize + chunk, alignment: 64)
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: stateSize, alignment: 64)
        defer { buffer.deallocate(); saved.deallocate(); copy.deallocate() }
        memset(copy.baseAddress!, 1, stateSize)

        // Warm-up, and the stream kept for writing it back.
        let length = try save(into: buffer, capture: saved).bytes
        precondition(length > stateSize && length <= saved.count, "stream of \(length) bytes")
        let stream = UnsafeRawBufferPointer(rebasing: saved[0..<length])
        _ = try restore(stream)
        let pieces = Self.pieces(length, chunk)

        var floorRead: [Double] = [], subjectRead: [Double] = []
        var floorWrite: [Double] = [], subjectWrite: [Double] = []
        var copyTimes: [Double] = [], saveTimes: [Double] = [], loadTimes: [Double] = [], prepareTimes: [Double] = []
        for _ in 0..<rounds {
            // The floor moves the same bytes: answers walk through a state-sized buffer.
            var t = now()
            var walked = 0
            for n in pieces + [0] {
                echo.pingPong(size: fixed, answer: fixed + n, answerSource: walked)
                walked += n
            }
            floorRead.append(Double(length) / seconds(since: t))
            let s = try save(into: buffer, capture: nil)
            precondition(s.bytes == length, "the stream changed length")
            saveTimes.append(s.serialize)
            subjectRead.append(Double(length) / s.read)

            t = now()
            walked = 0
            for n in pieces {
                echo.pingPong(size: fixed + n, answer: VFIOUserHeader.size, source: walked)
                walked += n
            }
            floorWrite.append(Double(length) / seconds(since: t))
            let r = try restore(stream)
            subjectWrite.append(Double(length) / r.write)
            loadTimes.append(r.load)
            prepareTimes.append(r.prepare)

            t = now()
            memcpy(copy.baseAddress!, saved.baseAddress!, stateSize)
            copyTimes.append(seconds(since: t))
        }
        let mib = "\(stateSize >> 20) MiB"
        let label = "\(chunk >> 20) MiB"
        return [
            Row(group: "f", name: "MIG_DATA_READ \(label), stream", unit: "MB/s", subject: median(subjectRead) / 1e6,
                floorName: "socket \(fixed) B / \(fixed) B + \(label)", floor: median(floorRead) / 1e6, lowerIsBetter: false,
                target: ">= 0.8x"),
            Row(group: "f", name: "MIG_DATA_WRITE \(label), stream", unit: "MB/s", subject: median(subjectWrite) / 1e6,
                floorName: "socket \(fixed) B + \(label) / 16 B", floor: median(floorWrite) / 1e6, lowerIsBetter: false,
                target: ">= 0.8x"),
            Row(group: "f", name: "save \(mib) (-> STOP_COPY)", unit: "ms", subject: median(saveTimes) * 1e3,
                floorName: "memcpy \(mib)", floor: median(copyTimes) * 1e3, lowerIsBetter: true),
            Row(group: "f", name: "prepare \(mib) (-> RESUMING)", unit: "ms", subject: median(prepareTimes) * 1e3,
                floorName: "memcpy \(mib)", floor: median(copyTimes) * 1e3, lowerIsBetter: true),
            Row(group: "f", name: "load \(mib) (RESUMING -> STOP)", unit: "ms", subject: median(loadTimes) * 1e3,
                floorName: "memcpy \(mib)", floor: median(copyTimes) * 1e3, lowerIsBetter: true),
        ]
    }

    /// The data sizes of the messages that carry `length` bytes in `chunk`-byte pieces.
    static func pieces(_ length: Int, _ chunk: Int) -> [Int] {
        var sizes = [Int](repeating: chunk, count: length / chunk)
        if length % chunk > 0 { sizes.append(length % chunk) }
        return sizes
    }

    /// RUNNING -> STOP_COPY, the whole stream read (into `buffer`, one MIG_DATA_READ per
    /// call, and copied to `capture` when given), reset. Times in seconds.
    private func save(into target: UnsafeMutableRawBufferPointer,
                      capture: UnsafeMutableRawBufferPointer?) throws -> (bytes: Int, serialize: Double, read: Double) {
        var t = now()
        guard let stream = try client.setMigrationStateReturningStream(.stopCopy) else {
            fatalError("RUNNING -> STOP_COPY opened no stream")
        }
        let serialize = seconds(since: t)
        t = now()
        var total = 0
        while true {
            let n = try stream.read(into: target)
            if n == 0 { break }
            if let capture {
                precondition(total + n <= capture.count, "the stream is larger than expected")
                memcpy(capture.baseAddress! + total, target.baseAddress!, n)
            }
            total += n
        }
        let read = seconds(since: t)
        try client.reset()
        return (total, serialize, read)
    }

    /// RUNNING -> RESUMING, `stream` written, RESUMING -> STOP, reset. Times in seconds.
    private func restore(_ stream: UnsafeRawBufferPointer) throws -> (prepare: Double, write: Double, load: Double) {
        var t = now()
        guard let resuming = try client.setMigrationStateReturningStream(.resuming) else {
            fatalError("RUNNING -> RESUMING opened no stream")
        }
        let prepare = seconds(since: t)
        t = now()
        try resuming.write(from: stream)
        let write = seconds(since: t)
        t = now()
        _ = try client.setMigrationState(.stop)
        let load = seconds(since: t)
        try client.reset()
        return (prepare, write, load)
    }

    private func seconds(since start: UInt64) -> Double { Double(now() - start) / 1e9 }
}
