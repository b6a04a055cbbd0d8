import Testing
import VFIO
import VFIODeviceKit

/// The driver's in-place reads and writes (what a server's MIG_DATA_READ / WRITE use)
/// give the same stream as the copying ones, consume nothing when the caller fails, and
/// load what was written.
@Suite struct KitMigrationInPlaceTests {
    static let image: [UInt8] = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
    static let oddSizes = [1, 63, 64, 65, 777, 4095, 4096, 4097, 20_000]

    /// The saving stream read with `readData(max:_:)` in `sizes` (cycled) until empty.
    static func readInPlace(_ driver: MigrationDriver, sizes: [Int] = oddSizes) throws -> [UInt8] {
        var all: [UInt8] = []
        for i in 0... {
            var got: [UInt8] = []
            let size = sizes[i % sizes.count]
            let n = try driver.readData(max: size) { (bytes: UnsafeRawBufferPointer) throws(VFIOError) in got = Array(bytes) }
            #expect(n == got.count && n <= size)
            if got.isEmpty { return all }
            all += got
        }
        return all
    }

    @Test func stopCopyStreamInOddPiecesIsTheSavedState() throws {
        let reference = try savedStream(data: Self.image)
        let driver = try MigrationDriver(device: RecordingModel(data: Self.image))
        try driver.setState(.stopCopy)
        let stream = try Self.readInPlace(driver)
        #expect(stream == reference)
        #expect(stream.count == MigrationStream.headerSize + Self.image.count)
        #expect(try MigrationStream.decode(stream, expecting: RecordingModel().migrationIdentity).state == Self.image)
        // The end of the stream stays the end.
        #expect(try driver.readData(max: 100) { (_: UnsafeRawBufferPointer) throws(VFIOError) in } == 0)
    }

    @Test func aFailingReaderConsumesNothing() throws {
        let reference = try savedStream(data: Self.image)
        let driver = try MigrationDriver(device: RecordingModel(data: Self.image))
        try driver.setState(.stopCopy)
        var stream = try driver.readData(max: 100)
        let failure = #expect(throws: VFIOError.self) {
            try driver.readData(max: 5000) { (_: UnsafeRawBufferPointer) throws(VFIOError) in throw .errno("send", DeviceErrno.EIO) }
        }
        #expect(failure?.operation == "send")
        stream += try Self.readInPlace(driver)
        #expect(stream == reference)
    }

    /// In PRE_COPY one in-place read takes the rest of a record and a fresh delta, as the
    /// copying reads do when repeated.
    @Test func preCopyReadsCrossIntoAFreshDelta() throws {
        let inPlace = RecordingModel(data: Self.image)
        let copying = RecordingModel(data: Self.image)
        let a = try MigrationDriver(device: inPlace)
        let b = try MigrationDriver(device: copying)
        try a.setState(.preCopy)
        try b.setState(.preCopy)
        let initial = MigrationStream.headerSize + Self.image.count
        var streamA = try a.readData(max: initial - 10)
        var streamB = try b.readData(max: initial - 10)
        #expect(streamA == streamB)
        var changed = Self.image
        for i in stride(from: 1000, to: 3000, by: 7) { changed[i] ^= 0x5A }
        inPlace.data = changed
        copying.data = changed
        // One in-place read of 5000: the last 10 bytes of the image record and the delta.
        var piece: [UInt8] = []
        try a.readData(max: 5000) { (bytes: UnsafeRawBufferPointer) throws(VFIOError) in piece = Array(bytes) }
        #expect(piece.count > 10 + MigrationStream.headerSize)
        streamA += piece
        // The copying reads stop at the record's end; the next one takes the delta.
        let tail = try b.readData(max: 5000)
        #expect(tail.count == 10)
        streamB += tail
        streamB += try b.readData(max: 5000 - 10)
        #expect(streamA == streamB)
        // Nothing changed since: the temporary end.
        #expect(try a.readData(max: 100) { (_: UnsafeRawBufferPointer) throws(VFIOError) in } == 0)
        try a.setState(.stopCopy)
        streamA += try Self.readInPlace(a)
        // The whole stream resumes to the final state.
        let target = RecordingModel(data: [])
        let destination = try MigrationDriver(device: target)
        try destination.setState(.resuming)
        try destination.writeData(streamA)
        try destination.setState(.running)
        #expect(target.data == changed)
    }

    @Test func inPlaceWritesLoadAndAFailedOneAppendsNothing() throws {
        let stream = try savedStream(data: Self.image)
        let model = RecordingModel(data: [])
        let driver = try MigrationDriver(device: model)
        try driver.setState(.resuming)
        for piece in pieces(of: stream.count, sizes: Self.oddSizes) {
            let n = piece.count
            // A fill that fails after writing counts for nothing.
            #expect(throws: VFIOError.self) {
                try driver.writeData(count: n) { (target: UnsafeMutableRawBufferPointer) throws(VFIOError) in
                    for k in 0..<target.count { target[k] = 0xEE }
                    throw .errno("recvmsg", DeviceErrno.EIO)
                }
            }
            try driver.writeData(count: n) { (target: UnsafeMutableRawBufferPointer) throws(VFIOError) in
                stream.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[piece])) }
            }
        }
        try driver.writeData(count: 0) { (target: UnsafeMutableRawBufferPointer) throws(VFIOError) in #expect(target.isEmpty) }
        try driver.setState(.running)
        #expect(model.data == Self.image)
    }

    @Test func writesPastTheLimitAreRefusedBeforeTheFill() throws {
        let driver = try MigrationDriver(device: RecordingModel(), maximumStreamSize: 100)
        #expect(throws: VFIOError.self) {
            try driver.writeData(count: 1) { (_: UnsafeMutableRawBufferPointer) throws(VFIOError) in Issue.record("filled while not RESUMING") }
        }
        try driver.setState(.resuming)
        try driver.writeData(count: 60) { (_: UnsafeMutableRawBufferPointer) throws(VFIOError) in }
        let full = #expect(throws: VFIOError.self) {
            try driver.writeData(count: 41) { (_: UnsafeMutableRawBufferPointer) throws(VFIOError) in Issue.record("filled past the limit") }
        }
        #expect(full?.errnoValue == DeviceErrno.ENOSPC)
        try driver.writeData(count: 40) { (_: UnsafeMutableRawBufferPointer) throws(VFIOError) in }
    }

    /// A stream of several MiB in small pieces: the storage grows (from the first record's
    /// announced size, and by doubling past it) without losing a byte.
    @Test func largeStreamsGrowIntact() throws {
        let big = (0..<(3 << 20) + 123).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 12) }
        let stream = try savedStream(data: big)
        for sizes in [[33, 4099], [1 << 20]] {
            let model = RecordingModel(data: [])
            let driver = try MigrationDriver(device: model)
            try driver.setState(.resuming)
            for piece in pieces(of: stream.count, sizes: sizes) {
                _ = try stream.withUnsafeBytes { try driver.writeData(UnsafeRawBufferPointer(rebasing: $0[piece])) }
            }
            try driver.setState(.stop)
            #expect(model.data == big)
        }
        // A stream whose first header lies about its length still fails where it should.
        var lying = stream
        lying[48] ^= 0x01
        let driver = try MigrationDriver(device: RecordingModel(data: []))
        try driver.setState(.resuming)
        try driver.writeData(lying)
        let error = #expect(throws: VFIOError.self) { try driver.setState(.stop) }
        #expect(text(error).contains("header checksum mismatch"))
    }
}
