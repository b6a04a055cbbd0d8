import Testing
import VFIO
import VFIODeviceKit

/// Bad streams make RESUMING -> STOP fail with an error naming what was wrong; the device
/// is then in ERROR until reset.
@Suite struct KitMigrationStreamTests {
    static let image = (0..<1000).map { UInt8(($0 * 13 + 5) & 0xFF) }

    /// Resumes a fresh recorder from `stream`; returns the error and checks ERROR, reset,
    /// and that a good stream then loads.
    static func refuse(_ stream: [UInt8], name: String = "recorder", version: UInt32 = 2) throws -> String {
        let model = RecordingModel(name: name, version: version)
        let driver = try MigrationDriver(device: model)
        try driver.setState(.resuming)
        try driver.writeData(stream)
        let error = #expect(throws: VFIOError.self) { try driver.setState(.running) }
        #expect(error?.operation == "RESUMING -> STOP [migration stream]", "\(text(error))")
        if case .malformed? = error?.reason {} else { Issue.record("expected .malformed, got \(text(error))") }
        #expect(driver.currentState == .error)
        #expect(driver.openStream == nil)
        #expect(model.log.withLock { $0.loads.isEmpty })
        #expect(throws: VFIOError.self) { try driver.setState(.stop) }
        try driver.reset()
        #expect(driver.currentState == .running)
        // The device works again: a good stream resumes.
        try driver.setState(.resuming)
        try driver.writeData(try savedStream(name: name, version: version, data: [4, 5, 6]))
        try driver.setState(.running)
        #expect(model.data == [4, 5, 6])
        return text(error)
    }

    @Test func goodStreamRoundTrips() throws {
        let stream = try savedStream(data: Self.image)
        #expect(stream.count == MigrationStream.headerSize + Self.image.count)
        let model = RecordingModel()
        let driver = try MigrationDriver(device: model)
        #expect(try driver.setState(.resuming))
        // Written in odd pieces.
        var at = 0
        while at < stream.count {
            let n = min(333, stream.count - at)
            #expect(try driver.writeData(Array(stream[at..<(at + n)])) == n)
            at += n
        }
        #expect(try driver.setState(.running) == false)
        #expect(model.data == Self.image)
        #expect(model.log.withLock { $0.loads.first?.version } == 2)
        // An older version of the same model is passed on to the model.
        let old = try savedStream(version: 1, data: [7])
        try driver.setState(.resuming)
        try driver.writeData(old)
        try driver.setState(.stop)
        #expect(model.log.withLock { $0.loads.last?.version } == 1)
    }

    @Test func corruptPayload() throws {
        var stream = try savedStream(data: Self.image)
        stream[MigrationStream.headerSize + 500] ^= 0x40
        let message = try Self.refuse(stream)
        #expect(message.contains("payload checksum mismatch"), "\(message)")
        #expect(message.contains("record 0"))
    }

    @Test func corruptHeader() throws {
        var stream = try savedStream(data: Self.image)
        stream[50] ^= 0x01  // inside the payload length
        let message = try Self.refuse(stream)
        #expect(message.contains("header checksum mismatch"), "\(message)")
    }

    @Test func badMagic() throws {
        let message = try Self.refuse((0..<200).map { UInt8($0) })
        #expect(message.contains("bad magic"), "\(message)")
        #expect(message.contains("not a swift-vfio migration stream"))
    }

    @Test func truncatedPayload() throws {
        let stream = try savedStream(data: Self.image)
        let message = try Self.refuse(Array(stream.dropLast(10)))
        #expect(message.contains("truncated"), "\(message)")
        #expect(message.contains("announces 1000 payload bytes, only 990 follow"), "\(message)")
    }

    @Test func truncatedHeader() throws {
        let stream = try savedStream(data: Self.image)
        let message = try Self.refuse(Array(stream.prefix(30)))
        #expect(message.contains("truncated") && message.contains("30 of its 64 header bytes"), "\(message)")
    }

    @Test func emptyStream() throws {
        let message = try Self.refuse([])
        #expect(message.contains("empty"), "\(message)")
    }

    @Test func missingFinalRecord() throws {
        // Pre-copy data only: the source never reached STOP_COPY.
        let model = RecordingModel(data: Self.image)
        let source = try MigrationDriver(device: model)
        try source.setState(.preCopy)
        let initial = try drain(source)
        let message = try Self.refuse(initial)
        #expect(message.contains("without its final record"), "\(message)")
    }

    @Test func bytesAfterTheEnd() throws {
        let stream = try savedStream(data: Self.image)
        let message = try Self.refuse(stream + [0, 0, 0])
        #expect(message.contains("3 byte(s) follow the final record"), "\(message)")
    }

    @Test func wrongModel() throws {
        let stream = try savedStream(name: "edu", data: Self.image)
        let message = try Self.refuse(stream)
        #expect(message.contains("the stream is for model \"edu\", this device is \"recorder\""), "\(message)")
    }

    @Test func newerVersion() throws {
        let stream = try savedStream(version: 3, data: Self.image)
        let message = try Self.refuse(stream)
        #expect(message.contains("newer than this model's version 2"), "\(message)")
    }

    @Test func recordsOutOfOrder() throws {
        // A pre-copy stream with its middle (a delta) removed.
        let model = RecordingModel(data: Self.image)
        let source = try MigrationDriver(device: model)
        try source.setState(.preCopy)
        let initial = try drain(source)
        model.data[3] = 0xEE
        let delta = try drain(source)
        #expect(!delta.isEmpty)
        try source.setState(.stopCopy)
        let final = try drain(source)
        let full = initial + delta + final
        let decoded = try MigrationStream.decode(full, expecting: model.migrationIdentity)
        #expect(decoded.state == model.data)
        let message = try Self.refuse(initial + final)
        #expect(message.contains("sequence number 2 where 1 was expected"), "\(message)")
        let swapped = try Self.refuse(delta + initial + final)
        #expect(swapped.contains("delta record before any image") || swapped.contains("sequence"), "\(swapped)")
    }

    /// Every cut of a pre-copy stream short of its end is refused; random corruption is
    /// refused without a crash.
    @Test func everyTruncationAndRandomCorruption() throws {
        let model = RecordingModel(data: Array(Self.image.prefix(300)))
        let source = try MigrationDriver(device: model)
        try source.setState(.preCopy)
        var stream = try drain(source)
        model.data[7] = 1
        model.data.append(contentsOf: [1, 2, 3])
        stream += try drain(source)
        try source.setState(.stopCopy)
        stream += try drain(source)
        let identity = model.migrationIdentity
        #expect(try MigrationStream.decode(stream, expecting: identity).state == model.data)
        for cut in 0..<stream.count {
            #expect(throws: VFIOError.self) { try MigrationStream.decode(Array(stream.prefix(cut)), expecting: identity) }
        }
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: seed >> 33)
        }
        for _ in 0..<2000 {
            var bad = stream
            for _ in 0..<(1 + next() % 3) { bad[next() % bad.count] ^= UInt8(1 + next() % 255) }
            #expect(throws: VFIOError.self) { try MigrationStream.decode(bad, expecting: identity) }
        }
    }

    @Test func modelChecksTooEduWithAnotherMask() throws {
        let source = EduDevice()
        let sourceDriver = try MigrationDriver(device: source)
        try sourceDriver.setState(.stopCopy)
        let stream = try drain(sourceDriver)
        let destination = EduDevice(dmaMask: (1 << 32) - 1)
        let driver = try MigrationDriver(device: destination)
        try driver.setState(.resuming)
        try driver.writeData(stream)
        let e = #expect(throws: VFIOError.self) { try driver.setState(.running) }
        #expect(e?.operation == "RESUMING -> STOP [edu state]")
        #expect(text(e).contains("DMA mask"), "\(text(e))")
        #expect(driver.currentState == .error)
        try driver.reset()
        #expect(driver.currentState == .running)
    }

    @Test func eduStreamRefusedByMemoryBackedDevice() throws {
        let sourceDriver = try MigrationDriver(device: EduDevice())
        try sourceDriver.setState(.stopCopy)
        let stream = try drain(sourceDriver)
        let model = MemoryBackedDevice()
        let driver = try MigrationDriver(device: model)
        try driver.setState(.resuming)
        try driver.writeData(stream)
        let e = #expect(throws: VFIOError.self) { try driver.setState(.stop) }
        #expect(text(e).contains("the stream is for model \"edu\", this device is \"memory-backed\""), "\(text(e))")
        #expect(driver.currentState == .error)
    }
}
