import VFIO

// The kit's migration stream: how a model's saved state travels between a source and a
// destination `MigrationDriver`, over the kernel's data_fd or vfio-user's MIG_DATA_READ /
// MIG_DATA_WRITE. The bytes are the kit's; a model only ever sees its own state.
//
// A stream is a sequence of records. Each record is a 64-byte header and a payload:
//
//   offset size field
//        0    4 magic 0x4d465653 ("SVFM" in memory)
//        4    2 format version of the framing (1)
//        6    1 kind: 1 = image (the model's whole state), 2 = delta (changes to the image)
//        7    1 flags: bit 0 = final (the last record; STOP_COPY's data)
//        8    4 sequence number, 0 for the first record, +1 per record
//       12    4 the model's state version (`MigrationIdentity.version`)
//       16   32 the model's name (`MigrationIdentity.name`), UTF-8, zero-padded
//       48    8 payload length in bytes
//       56    4 CRC-32 (IEEE) of the payload
//       60    4 CRC-32 (IEEE) of header bytes 0..<60
//
// All integers little-endian. A stream is one image record, then any number of delta
// records, the last record carrying the final flag, and nothing after it. Without
// pre-copy it is a single final image. With pre-copy: the image taken while running
// (initial data), deltas of what changed since (dirty data), and a final delta taken
// once stopped (STOP_COPY). A delta's payload is the new image length (u64), a run
// count (u32) and runs of (offset u64, length u32, bytes).

/// Who a saved state belongs to: written into every record of the stream. A destination
/// refuses a stream with another `name`, and one with a `version` newer than its own; an
/// older version reaches the model's `loadState(_:version:)`, which decides.
public struct MigrationIdentity: Sendable, Hashable, CustomStringConvertible {
    /// The model's name, 1...32 bytes of UTF-8, e.g. `"edu"`.
    public var name: String
    /// The layout version of the model's saved state.
    public var version: UInt32

    public init(name: String, version: UInt32) {
        precondition(!name.utf8.isEmpty && name.utf8.count <= MigrationStream.nameSize,
                     "a migration identity's name is 1...32 bytes of UTF-8")
        self.name = name
        self.version = version
    }

    /// For names decoded from a stream, which may be anything (they are only compared).
    init(decodedName name: String, version: UInt32) {
        self.name = name
        self.version = version
    }

    public var description: String { "\"\(name)\" version \(version)" }
}

/// The kit's framing of migration data (see the comment at the top of this file). Public
/// for tools and tests that want to look inside a saved stream; servers never need it.
public enum MigrationStream {
    public static let magic: UInt32 = 0x4d46_5653
    public static let formatVersion: UInt16 = 1
    public static let headerSize = 64
    public static let nameSize = 32
    /// The granule in which deltas compare images.
    static let deltaBlock = 64
    /// Named in the errors about a stream's bytes.
    public static let operation = "migration stream"

    /// A record's kind.
    public enum Kind: UInt8, Sendable {
        case image = 1
        case delta = 2
    }

    /// A decoded record header.
    public struct Header: Sendable, Equatable {
        public var kind: Kind
        public var isFinal: Bool
        public var sequence: UInt32
        public var identity: MigrationIdentity
        public var payloadLength: UInt64
        public var payloadCRC: UInt32
    }

    // MARK: Encoding

    /// One record as its two pieces: the 64-byte header, and the payload itself (not
    /// copied: a state of tens of MiB is framed without being copied again).
    static func recordPieces(kind: Kind, final: Bool, sequence: UInt32, identity: MigrationIdentity, payload: [UInt8]) -> [[UInt8]] {
        var w = ByteWriter(capacity: headerSize)
        w.u32(magic)
        w.u16(formatVersion)
        w.u8(kind.rawValue)
        w.u8(final ? 1 : 0)
        w.u32(sequence)
        w.u32(identity.version)
        w.fixedArray(Array(identity.name.utf8), size: nameSize)
        w.u64(UInt64(payload.count))
        w.u32(CRC32.checksum(payload))
        w.u32(CRC32.checksum(w.bytes))
        return [w.bytes, payload]
    }

    /// The delta payload turning `old` into `new`, or `nil` when they are equal.
    static func delta(from old: [UInt8], to new: [UInt8]) -> [UInt8]? {
        if old == new { return nil }
        var runs: [(offset: Int, length: Int)] = []
        var block = 0
        while block < new.count {
            let end = min(block + deltaBlock, new.count)
            let same = end <= old.count && old[block..<end].elementsEqual(new[block..<end])
            if !same {
                if let last = runs.last, last.offset + last.length == block {
                    runs[runs.count - 1].length += end - block
                } else {
                    runs.append((block, end - block))
                }
            }
            block = end
        }
        var w = ByteWriter(capacity: 12 + runs.reduce(0) { $0 + 12 + $1.length })
        w.u64(UInt64(new.count))
        w.u32(UInt32(runs.count))
        for run in runs {
            w.u64(UInt64(run.offset))
            w.u32(UInt32(run.length))
            w.append(contentsOf: new[run.offset..<(run.offset + run.length)])
        }
        return w.bytes
    }

    /// The size of the record that would carry the delta from `old` to `new`
    /// (0 when they are equal).
    static func deltaRecordSize(from old: [UInt8], to new: [UInt8]) -> Int {
        guard let payload = delta(from: old, to: new) else { return 0 }
        return headerSize + payload.count
    }

    /// The payload of a delta with no change (a final record when nothing changed).
    static func emptyDelta(length: Int) -> [UInt8] {
        var w = ByteWriter(capacity: 12)
        w.u64(UInt64(length))
        w.u32(0)
        return w.bytes
    }

    // MARK: Decoding

    private static func fail(_ why: String) -> VFIOError { .malformed(operation, why) }

    private static func hex(_ value: some BinaryInteger) -> String { "0x" + String(value, radix: 16) }

    /// Decodes and checks the header at `offset` of `bytes` (which must hold 64 bytes
    /// there): magic, header checksum, framing version, kind.
    public static func header(in bytes: [UInt8], at offset: Int, record index: Int) throws(VFIOError) -> Header {
        try withBytes(bytes) { (raw: UnsafeRawBufferPointer) throws(VFIOError) in try header(in: raw, at: offset, record: index) }
    }

    /// `header(in:at:record:)` for bytes in memory.
    public static func header(in bytes: UnsafeRawBufferPointer, at offset: Int, record index: Int) throws(VFIOError) -> Header {
        let raw = Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + headerSize)]))
        var r = ByteReader(raw, context: operation)
        let where_ = "record \(index) (stream byte \(offset))"
        let m = try r.u32()
        guard m == magic else {
            throw fail("\(where_): bad magic \(hex(m)), expected \(hex(magic)): not a swift-vfio migration stream, or the data is out of step")
        }
        let stored = try ByteReader(raw).peekU32(at: 60)
        let computed = CRC32.checksum(raw[0..<60])
        guard stored == computed else {
            throw fail("\(where_): header checksum mismatch (stored \(hex(stored)), computed \(hex(computed))): the header is corrupt")
        }
        let format = try r.u16()
        guard format == formatVersion else {
            throw fail("\(where_): framing version \(format) is not supported (this kit reads version \(formatVersion))")
        }
        let rawKind = try r.u8()
        guard let kind = Kind(rawValue: rawKind) else {
            throw fail("\(where_): unknown record kind \(rawKind)")
        }
        let flags = try r.u8()
        let sequence = try r.u32()
        let version = try r.u32()
        let nameBytes = try r.bytes(nameSize)
        let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
        let length = try r.u64()
        let crc = try r.u32()
        guard !name.isEmpty else { throw fail("\(where_): the model name is empty") }
        return Header(kind: kind, isFinal: flags & 1 != 0, sequence: sequence,
                      identity: MigrationIdentity(decodedName: name, version: version), payloadLength: length, payloadCRC: crc)
    }

    /// The size (header and payload) of the record at the start of `bytes` as its header
    /// announces it, when `bytes` starts with a record header (magic and header checksum
    /// right); `nil` otherwise. Only a hint: nothing else is checked.
    static func announcedRecordSize(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard bytes.count >= headerSize,
              UInt32(littleEndian: bytes.loadUnaligned(as: UInt32.self)) == magic,
              UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 60, as: UInt32.self))
                == CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<60])) else { return nil }
        let length = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 48, as: UInt64.self))
        guard length <= UInt64(Int.max - headerSize) else { return nil }
        return headerSize + Int(length)
    }

    /// Checks a whole stream written to a RESUMING device and rebuilds the final image.
    /// - Returns: the model's state and the version it was saved with.
    /// - Throws: `VFIOError.malformed("migration stream", …)` naming the first thing wrong:
    ///   an empty stream, a bad magic, a corrupt header, an unknown framing version or
    ///   kind, a stream for another model or a newer version, records out of sequence, a
    ///   delta before any image, a payload cut short (truncated) or corrupt (checksum), a
    ///   delta that does not fit its image, no final record (truncated), bytes after it.
    public static func decode(_ bytes: [UInt8], expecting identity: MigrationIdentity) throws(VFIOError) -> (state: [UInt8], version: UInt32) {
        try withBytes(bytes) { (raw: UnsafeRawBufferPointer) throws(VFIOError) in try decode(raw, expecting: identity) }
    }

    /// `decode(_:expecting:)` for a stream in memory (read in place, not copied).
    public static func decode(_ bytes: UnsafeRawBufferPointer, expecting identity: MigrationIdentity) throws(VFIOError) -> (state: [UInt8], version: UInt32) {
        let (image, version) = try decodeRecords(bytes, expecting: identity)
        switch image {
        case .inStream(let range): return (Array(UnsafeRawBufferPointer(rebasing: bytes[range])), version)
        case .built(let state): return (state, version)
        }
    }

    /// Checks a whole stream as `decode(_:expecting:)` does and calls `body` with the final
    /// image and its version: the image record's payload where it lies in `bytes` when no
    /// delta changed it (a stream saved without pre-copy, or whose deltas are empty), no
    /// copy made; the rebuilt image otherwise. The buffer is valid only during the call.
    static func withDecoded<R>(_ bytes: UnsafeRawBufferPointer, expecting identity: MigrationIdentity,
                               _ body: (UnsafeRawBufferPointer, UInt32) throws(VFIOError) -> R) throws(VFIOError) -> R {
        let (image, version) = try decodeRecords(bytes, expecting: identity)
        switch image {
        case .inStream(let range):
            return try body(UnsafeRawBufferPointer(rebasing: bytes[range]), version)
        case .built(let state):
            return try withBytes(state) { (raw: UnsafeRawBufferPointer) throws(VFIOError) in try body(raw, version) }
        }
    }

    /// Where the final image of a decoded stream is.
    private enum DecodedImage {
        /// The image record's payload, unchanged by any delta.
        case inStream(Range<Int>)
        /// Rebuilt from the image and the deltas that changed it.
        case built([UInt8])
    }

    private static func decodeRecords(_ bytes: UnsafeRawBufferPointer, expecting identity: MigrationIdentity) throws(VFIOError) -> (DecodedImage, UInt32) {
        guard !bytes.isEmpty else {
            throw fail("empty: no data was written while RESUMING")
        }
        var offset = 0
        var index = 0
        var image: DecodedImage?
        var version: UInt32 = 0
        while offset < bytes.count {
            let remaining = bytes.count - offset
            guard remaining >= headerSize else {
                throw fail("truncated: record \(index) (stream byte \(offset)) has \(remaining) of its \(headerSize) header bytes")
            }
            let h = try header(in: bytes, at: offset, record: index)
            let where_ = "record \(index) (stream byte \(offset))"
            guard h.identity.name == identity.name else {
                throw fail("the stream is for model \"\(h.identity.name)\", this device is \"\(identity.name)\"")
            }
            guard h.identity.version <= identity.version else {
                throw fail("the stream holds \(h.identity) state, newer than this model's version \(identity.version)")
            }
            if index > 0 && h.identity.version != version {
                throw fail("\(where_): state version \(h.identity.version) differs from the stream's first record (\(version))")
            }
            guard h.sequence == UInt32(truncatingIfNeeded: index) else {
                throw fail("\(where_): sequence number \(h.sequence) where \(index) was expected: records are missing or out of order")
            }
            let available = UInt64(remaining - headerSize)
            guard h.payloadLength <= available else {
                throw fail("truncated: \(where_) announces \(h.payloadLength) payload bytes, only \(available) follow")
            }
            let start = offset + headerSize
            let end = start + Int(h.payloadLength)
            let payload = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            let crc = CRC32.checksum(payload)
            guard crc == h.payloadCRC else {
                throw fail("\(where_): payload checksum mismatch (stored \(hex(h.payloadCRC)), computed \(hex(crc))): the data is corrupt")
            }
            switch h.kind {
            case .image:
                guard index == 0 else { throw fail("\(where_): an image record after the first record") }
                image = .inStream(start..<end)
                version = h.identity.version
            case .delta:
                switch image {
                case nil:
                    throw fail("\(where_): a delta record before any image")
                case .inStream(let range) where isEmptyDelta(payload, imageLength: range.count):
                    break
                case .inStream(let range):
                    var current = Array(UnsafeRawBufferPointer(rebasing: bytes[range]))
                    try apply(payload, to: &current, record: where_)
                    image = .built(current)
                case .built(var current):
                    image = nil   // the array stays uniquely referenced while it changes
                    try apply(payload, to: &current, record: where_)
                    image = .built(current)
                }
            }
            offset = end
            index += 1
            if h.isFinal {
                guard offset == bytes.count else {
                    throw fail("\(bytes.count - offset) byte(s) follow the final record (\(where_))")
                }
                return (image!, version)
            }
        }
        throw fail("truncated: the stream ends after record \(index - 1) (\(bytes.count) bytes) without its final record: the STOP_COPY data is missing")
    }

    /// A delta that changes nothing in an image of `imageLength` bytes: no runs, same length.
    private static func isEmptyDelta(_ payload: UnsafeRawBufferPointer, imageLength: Int) -> Bool {
        payload.count == 12
            && UInt64(littleEndian: payload.loadUnaligned(as: UInt64.self)) == UInt64(imageLength)
            && UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) == 0
    }

    private static func apply(_ payload: UnsafeRawBufferPointer, to image: inout [UInt8], record: String) throws(VFIOError) {
        var r = ByteReader(Array(payload), context: operation)
        let length = try r.u64()
        guard length <= UInt64(Int32.max) else { throw fail("\(record): delta image length \(length) is too large") }
        let count = try r.u32()
        if Int(length) < image.count {
            image.removeLast(image.count - Int(length))
        } else if Int(length) > image.count {
            image.append(contentsOf: repeatElement(0, count: Int(length) - image.count))
        }
        for run in 0..<Int(count) {
            let at = try r.u64()
            let n = try r.u32()
            guard at <= length, UInt64(n) <= length - at else {
                throw fail("\(record): delta run \(run) at offset \(at) of \(n) bytes leaves the \(length)-byte image")
            }
            try r.require(Int(n), "delta run \(run)")
            let data = try r.bytes(Int(n))
            image.replaceSubrange(Int(at)..<(Int(at) + Int(n)), with: data)
        }
        guard r.remaining == 0 else {
            throw fail("\(record): \(r.remaining) byte(s) after the delta's \(count) runs")
        }
    }
}

/// Calls `body` with the bytes of `array` (`withUnsafeBytes` keeping the typed throw).
func withBytes<R>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(VFIOError) -> R) throws(VFIOError) -> R {
    let result = array.withUnsafeBytes { raw -> Result<R, VFIOError> in
        do throws(VFIOError) { return .success(try body(raw)) } catch { return .failure(error) }
    }
    return try result.get()
}
