import Glibc
import VFIO

/// Snapshots of a device's migration data in a file: `vfio save` and `vfio restore`.
///
/// The file is a 24-byte header, then the device's STOP_COPY stream as read:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `SVFIOSNP` |
/// | 8 | 4 | format version (1), little-endian |
/// | 12 | 4 | reserved (0) |
/// | 16 | 8 | byte count of the stream that follows, little-endian |
/// | 24 | count | the stream |
///
/// The stream itself is the device's own (the kit's carries its checksums); the header
/// catches a file that is not a snapshot, or one cut short, before the device is touched.
public enum Snapshot {
    public static let magic: [UInt8] = Array("SVFIOSNP".utf8)
    public static let version: UInt32 = 1
    public static let headerSize = 24

    /// The header for `count` bytes of stream.
    public static func header(count: UInt64) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(contentsOf: magic)
        writer.u32(version)
        writer.u32(0)
        writer.u64(count)
        return writer.bytes
    }

    /// The default for `save`'s `maxBytes`: 4 GiB of device state.
    public static let defaultMaxBytes: UInt64 = 4 << 30

    /// The `operation` of the error `save` fails with when the device's stream passes its
    /// `maxBytes`.
    public static let sizeCapOperation = "snapshot size cap"

    /// Checks a header; returns the byte count it states.
    /// - Throws: `.malformed("snapshot", …)` naming what is wrong, also when the header
    ///   states no device state at all (0 bytes: no device's STOP_COPY stream is empty).
    public static func parseHeader(_ bytes: [UInt8]) throws(VFIOError) -> UInt64 {
        guard bytes.count >= headerSize else {
            throw .malformed("snapshot", "\(bytes.count) byte(s), shorter than the \(headerSize)-byte header")
        }
        guard Array(bytes[0..<8]) == magic else { throw .malformed("snapshot", "not a swift-vfio snapshot (bad magic)") }
        var reader = ByteReader(Array(bytes[8..<headerSize]), context: "snapshot")
        let v = try reader.u32()
        guard v == version else { throw .malformed("snapshot", "format version \(v), this tool reads version \(version)") }
        _ = try reader.u32()
        let count = try reader.u64()
        guard count > 0 else {
            throw .malformed("snapshot", "the header states 0 bytes of device state: the file holds no state to restore")
        }
        return count
    }

    /// Saves `device`: it goes to STOP_COPY (through STOP), its stream is written after the
    /// header to a new file beside `path`, it goes back to RUNNING, and the new file
    /// (synced) is renamed over `path`. Returns the stream's byte count.
    ///
    /// On any failure `path` is left as it was (a good snapshot there survives) and the
    /// new file is removed. A stream longer than `maxBytes` fails (`sizeCapOperation`) once
    /// it passes the cap, so an endless stream cannot fill the disk; an empty one fails too
    /// (`restore` would refuse it).
    /// - Throws: a `MigrationFailure` naming the device and the step; the device is put
    ///   back to RUNNING when it was moved.
    public static func save(_ device: any VFIODevice, to path: String, maxBytes: UInt64 = defaultMaxBytes,
                            progress: (MigrationProgress) -> Void = { _ in }) throws(MigrationFailure) -> UInt64 {
        let clock = ContinuousClock()
        let start = clock.now
        let file: ReplacingFile
        do { file = try ReplacingFile(replacing: path) } catch { throw MigrationFailure(step: "save to \(path)", error: error) }
        var moved = false
        func fail(_ step: String, _ error: VFIOError) -> MigrationFailure {
            MigrationFailure(step: step, error: error, recovery: moved ? LiveMigration.recoverSource(device) : nil)
        }
        let state: MigrationState
        do { state = try device.migrationState() } catch { throw fail("\(device.name): VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE GET", error) }
        guard state == .running || state == .stop else {
            throw MigrationFailure(step: device.name, error: .invalidArgument("save", "the device is in \(state), not RUNNING or STOP"))
        }
        moved = true
        let stream: (any MigrationDataStream)?
        do { stream = try device.setMigrationState(.stopCopy) } catch { throw fail("\(device.name): \(state) -> STOP_COPY", error) }
        guard let stream else { throw fail("\(device.name): \(state) -> STOP_COPY", .malformed("save", "the move opened no data stream")) }
        defer { stream.close() }
        do { try file.write(header(count: 0), at: 0) } catch { throw fail("save to \(path)", error) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var count: UInt64 = 0
        while true {
            let got: Int
            do { got = try stream.read(into: buffer) } catch { throw fail("\(device.name): STOP_COPY: migration data read", error) }
            if got == 0 { break }
            guard UInt64(got) <= maxBytes - count else {
                throw fail("save to \(path)", VFIOError(sizeCapOperation, .invalidArgument(
                    "the device's state is larger than the cap of \(maxBytes) bytes; \(path) was left as it was")))
            }
            do { try file.write(UnsafeRawBufferPointer(rebasing: buffer[0..<got]), at: headerSize + Int(count)) } catch {
                throw fail("save to \(path)", error)
            }
            count += UInt64(got)
            progress(MigrationProgress(phase: .save, round: 0, bytes: count, remainingEstimate: nil, elapsed: clock.now - start))
        }
        guard count > 0 else {
            throw fail("\(device.name): STOP_COPY", .malformed("save", "the device's stream ended before any state; \(path) was left as it was"))
        }
        do { try file.write(header(count: count), at: 0) } catch { throw fail("save to \(path)", error) }
        do { _ = try device.setMigrationState(.running) } catch { throw fail("\(device.name): STOP_COPY -> RUNNING", error) }
        do { try file.commit() } catch { throw MigrationFailure(step: "save to \(path)", error: error, recovery: "the device runs") }
        return count
    }

    /// Restores `path` into `device`: the file's header is checked first (a file that is
    /// not a snapshot, states no device state, or is shorter or longer than its header
    /// says, is refused before the device is touched); then RESUMING, the stream written,
    /// STOP (the device checks and loads it), RUNNING. Returns the stream's byte count.
    /// - Throws: a `MigrationFailure`; when the device refuses the data (RESUMING -> STOP
    ///   fails and leaves it in ERROR) it is reset back to RUNNING and the failure says so.
    public static func restore(_ path: String, into device: any VFIODevice,
                               progress: (MigrationProgress) -> Void = { _ in }) throws(MigrationFailure) -> UInt64 {
        let clock = ContinuousClock()
        let start = clock.now
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MigrationFailure(step: "restore from \(path)", error: .errno("open(\(path))", errno)) }
        defer { Glibc.close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw MigrationFailure(step: "restore from \(path)", error: .errno("fstat(\(path))", errno)) }
        var head = [UInt8](repeating: 0, count: headerSize)
        let got = head.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        let count: UInt64
        do { count = try parseHeader(Array(head.prefix(max(got, 0)))) } catch {
            throw MigrationFailure(step: "restore from \(path)", error: error)
        }
        let present = UInt64(max(Int64(info.st_size) - Int64(headerSize), 0))
        guard present == count else {
            let what = present < count ? "truncated" : "longer than its header says"
            throw MigrationFailure(step: "restore from \(path)",
                                   error: .malformed("snapshot", "\(path) is \(what): the header states \(count) byte(s) of device state, \(present) follow"))
        }
        var moved = false
        func fail(_ step: String, _ error: VFIOError) -> MigrationFailure {
            MigrationFailure(step: step, error: error, recovery: moved ? LiveMigration.recoverSource(device) : nil)
        }
        let state: MigrationState
        do { state = try device.migrationState() } catch { throw fail("\(device.name): VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE GET", error) }
        moved = true
        let sink: (any MigrationDataStream)?
        do { sink = try device.setMigrationState(.resuming) } catch { throw fail("\(device.name): \(state) -> RESUMING", error) }
        guard let sink else { throw fail("\(device.name): \(state) -> RESUMING", .malformed("restore", "the move opened no data stream")) }
        defer { sink.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var done: UInt64 = 0
        while done < count {
            let n = read(fd, buffer.baseAddress, min(buffer.count, Int(clamping: count - done)))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw fail("restore from \(path)", .malformed("snapshot", "\(path) ended after \(done) of \(count) bytes"))
            }
            do { try sink.write(from: UnsafeRawBufferPointer(rebasing: buffer[0..<n])) } catch {
                throw fail("\(device.name): RESUMING: migration data write", error)
            }
            done += UInt64(n)
            progress(MigrationProgress(phase: .restore, round: 0, bytes: done, remainingEstimate: count - done, elapsed: clock.now - start))
        }
        do { _ = try device.setMigrationState(.stop) } catch { throw fail("\(device.name): RESUMING -> STOP (loading \(path))", error) }
        do { _ = try device.setMigrationState(.running) } catch { throw fail("\(device.name): STOP -> RUNNING", error) }
        return count
    }
}
