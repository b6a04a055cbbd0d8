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

    /// Checks a header; returns the byte count it states.
    /// - Throws: `.malformed("snapshot", …)` naming what is wrong.
    public static func parseHeader(_ bytes: [UInt8]) throws(VFIOError) -> UInt64 {
        guard bytes.count >= headerSize else {
            throw .malformed("snapshot", "\(bytes.count) byte(s), shorter than the \(headerSize)-byte header")
        }
        guard Array(bytes[0..<8]) == magic else { throw .malformed("snapshot", "not a swift-vfio snapshot (bad magic)") }
        var reader = ByteReader(Array(bytes[8..<headerSize]), context: "snapshot")
        let v = try reader.u32()
        guard v == version else { throw .malformed("snapshot", "format version \(v), this tool reads version \(version)") }
        _ = try reader.u32()
        return try reader.u64()
    }

    /// Saves `device`: it goes to STOP_COPY (through STOP), its stream is written to
    /// `path` (created or truncated, mode 0600) after the header, and it goes back to
    /// RUNNING. Returns the stream's byte count.
    /// - Throws: a `MigrationFailure` naming the device and the step; the device is put
    ///   back to RUNNING when it was moved.
    public static func save(_ device: any VFIODevice, to path: String,
                            progress: (MigrationProgress) -> Void = { _ in }) throws(MigrationFailure) -> UInt64 {
        let clock = ContinuousClock()
        let start = clock.now
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MigrationFailure(step: "save to \(path)", error: .errno("open(\(path))", errno)) }
        defer { Glibc.close(fd) }
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
        do { try writeAll(fd, header(count: 0), path) } catch { throw fail("save to \(path)", error) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var count: UInt64 = 0
        while true {
            let got: Int
            do { got = try stream.read(into: buffer) } catch { throw fail("\(device.name): STOP_COPY: migration data read", error) }
            if got == 0 { break }
            do { try writeAll(fd, Array(UnsafeRawBufferPointer(rebasing: buffer[0..<got])), path) } catch { throw fail("save to \(path)", error) }
            count += UInt64(got)
            progress(MigrationProgress(phase: .save, round: 0, bytes: count, remainingEstimate: nil, elapsed: clock.now - start))
        }
        let finalHeader = header(count: count)
        let written = finalHeader.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == finalHeader.count, fsync(fd) == 0 || errno == EINVAL else {
            throw fail("save to \(path)", .errno("write(\(path))", errno))
        }
        do { _ = try device.setMigrationState(.running) } catch { throw fail("\(device.name): STOP_COPY -> RUNNING", error) }
        return count
    }

    /// Restores `path` into `device`: the file's header is checked first (a file that is
    /// not a snapshot, or shorter or longer than its header says, is refused before the
    /// device is touched); then RESUMING, the stream written, STOP (the device checks and
    /// loads it), RUNNING. Returns the stream's byte count.
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

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ path: String) throws(VFIOError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .errno("write(\(path))", n < 0 ? errno : EIO) }
            done += n
        }
    }
}
