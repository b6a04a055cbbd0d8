import VFIO
import VFIOSystem

/// The capabilities one side states in `VFIO_USER_VERSION` (the `"capabilities"` object
/// of the JSON that follows the version numbers). Absent keys take the specification's
/// defaults; unknown keys are ignored.
public struct VFIOUserCapabilities: Sendable, Equatable {
    /// `max_msg_fds`: the most descriptors the sender accepts in one message (default 1).
    public var maxMessageFDs: UInt32
    /// `max_data_xfer_size`: the largest `count` of a REGION/DMA read or write the sender
    /// accepts (default 1 MiB).
    public var maxDataTransferSize: UInt32
    /// `max_dma_maps`: the most DMA mappings valid at once (default 65535).
    public var maxDMAMaps: UInt32
    /// `pgsizes`: DMA page sizes or'ed together (default 4096).
    public var pageSizes: UInt64
    /// `migration`: dirty-tracking parameters, when migration is offered.
    public var migration: Migration?
    /// `twin_socket.supported`: server-to-client commands on a second socket. This
    /// implementation never enables it; the field records what the peer said.
    public var twinSocketSupported: Bool
    /// `twin_socket.fd_index` (replies only).
    public var twinSocketFDIndex: UInt32?
    /// `write_multiple`: `VFIO_USER_REGION_WRITE_MULTI` is accepted.
    public var writeMultiple: Bool

    /// `migration` { `pgsize`, `max_bitmap_size` }.
    public struct Migration: Sendable, Equatable {
        public var pageSize: UInt64
        public var maxBitmapSize: UInt64
        public init(pageSize: UInt64 = 4096, maxBitmapSize: UInt64 = 256 << 20) {
            self.pageSize = pageSize
            self.maxBitmapSize = maxBitmapSize
        }
    }

    public static let defaultMaxMessageFDs: UInt32 = 1
    public static let defaultMaxDataTransferSize: UInt32 = 1 << 20
    public static let defaultMaxDMAMaps: UInt32 = 65535
    public static let defaultPageSizes: UInt64 = 4096

    /// The values a peer that states nothing is assumed to have.
    public static let defaults = VFIOUserCapabilities()

    public init(maxMessageFDs: UInt32 = defaultMaxMessageFDs,
                maxDataTransferSize: UInt32 = defaultMaxDataTransferSize,
                maxDMAMaps: UInt32 = defaultMaxDMAMaps,
                pageSizes: UInt64 = defaultPageSizes,
                migration: Migration? = nil,
                twinSocketSupported: Bool = false,
                twinSocketFDIndex: UInt32? = nil,
                writeMultiple: Bool = false) {
        self.maxMessageFDs = maxMessageFDs
        self.maxDataTransferSize = maxDataTransferSize
        self.maxDMAMaps = maxDMAMaps
        self.pageSizes = pageSizes
        self.migration = migration
        self.twinSocketSupported = twinSocketSupported
        self.twinSocketFDIndex = twinSocketFDIndex
        self.writeMultiple = writeMultiple
    }

    /// The JSON document: `{"capabilities": {...}}`, every field written.
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("max_msg_fds", .unsignedInteger(UInt64(maxMessageFDs))),
            ("max_data_xfer_size", .unsignedInteger(UInt64(maxDataTransferSize))),
            ("max_dma_maps", .unsignedInteger(UInt64(maxDMAMaps))),
            ("pgsizes", .unsignedInteger(pageSizes)),
        ]
        if let migration {
            members.append(("migration", .object([
                ("pgsize", .unsignedInteger(migration.pageSize)),
                ("max_bitmap_size", .unsignedInteger(migration.maxBitmapSize)),
            ])))
        }
        if twinSocketSupported || twinSocketFDIndex != nil {
            var twin: [(String, JSONValue)] = [("supported", .bool(twinSocketSupported))]
            if let index = twinSocketFDIndex { twin.append(("fd_index", .unsignedInteger(UInt64(index)))) }
            members.append(("twin_socket", .object(twin)))
        }
        members.append(("write_multiple", .bool(writeMultiple)))
        return .object([("capabilities", .object(members))])
    }

    /// Reads the capabilities from a version message's JSON document. A missing
    /// `capabilities` object, or missing members, give the defaults; unknown members are
    /// ignored.
    /// - Throws: `.malformed` when the document is not an object or a known member has the
    ///   wrong type or an impossible value (0 fds is allowed, 0 bytes of transfer is not).
    public init(json document: JSONValue) throws(VFIOError) {
        self.init()
        let context = "vfio_user_version capabilities"
        guard document.isObject else { throw .malformed(context, "the version data is not a JSON object") }
        guard let caps = document["capabilities"] else { return }
        guard caps.isObject else { throw .malformed(context, "\"capabilities\" is not an object") }
        func number(_ key: String, max: UInt64) throws(VFIOError) -> UInt64? {
            guard let value = caps[key] else { return nil }
            guard let n = value.uint64, n <= max else {
                throw .malformed(context, "\"\(key)\" is \(value), not an integer in 0...\(max)")
            }
            return n
        }
        if let n = try number("max_msg_fds", max: UInt64(UInt32.max)) { maxMessageFDs = UInt32(n) }
        if let n = try number("max_data_xfer_size", max: UInt64(UInt32.max)) {
            guard n > 0 else { throw .malformed(context, "\"max_data_xfer_size\" is 0") }
            maxDataTransferSize = UInt32(n)
        }
        if let n = try number("max_dma_maps", max: UInt64(UInt32.max)) { maxDMAMaps = UInt32(n) }
        if let n = try number("pgsizes", max: UInt64.max) { pageSizes = n }
        if let value = caps["migration"] {
            guard value.isObject else { throw .malformed(context, "\"migration\" is not an object") }
            var migration = Migration()
            if let v = value["pgsize"] {
                guard let n = v.uint64 else { throw .malformed(context, "\"migration.pgsize\" is \(v), not an integer") }
                migration.pageSize = n
            }
            if let v = value["max_bitmap_size"] {
                guard let n = v.uint64 else { throw .malformed(context, "\"migration.max_bitmap_size\" is \(v), not an integer") }
                migration.maxBitmapSize = n
            }
            self.migration = migration
        }
        if let value = caps["twin_socket"] {
            guard value.isObject else { throw .malformed(context, "\"twin_socket\" is not an object") }
            if let v = value["supported"] {
                guard let b = v.bool else { throw .malformed(context, "\"twin_socket.supported\" is not a boolean") }
                twinSocketSupported = b
            }
            if let v = value["fd_index"] {
                guard let n = v.uint64, n <= UInt64(UInt32.max) else { throw .malformed(context, "\"twin_socket.fd_index\" is not an integer") }
                twinSocketFDIndex = UInt32(n)
            }
        }
        if let value = caps["write_multiple"] {
            guard let b = value.bool else { throw .malformed(context, "\"write_multiple\" is \(value), not a boolean") }
            writeMultiple = b
        }
    }
}

/// The payload of `VFIO_USER_VERSION`, request and reply alike: major and minor version,
/// then optional NUL-terminated UTF-8 JSON.
public struct VFIOUserVersion: Sendable, Equatable {
    /// The protocol version this implementation speaks: 0.0, as QEMU does. A peer that
    /// proposes 0.x is answered with minor min(x, 0).
    public static let major: UInt16 = 0
    public static let minor: UInt16 = 0

    public var major: UInt16
    public var minor: UInt16
    public var capabilities: VFIOUserCapabilities

    public init(major: UInt16 = VFIOUserVersion.major, minor: UInt16 = VFIOUserVersion.minor, capabilities: VFIOUserCapabilities) {
        self.major = major
        self.minor = minor
        self.capabilities = capabilities
    }

    /// Major, minor, the JSON text and its terminating NUL (QEMU requires the NUL).
    public var encoded: [UInt8] {
        var writer = ByteWriter(capacity: 256)
        writer.u16(major)
        writer.u16(minor)
        writer.append(contentsOf: capabilities.json.description.utf8)
        writer.u8(0)
        return writer.bytes
    }

    /// Decodes a version payload. The JSON may be absent (defaults apply), and may or may
    /// not end with NUL bytes.
    /// - Throws: `.malformed` for fewer than 4 bytes, text that is not JSON, or a bad
    ///   capability (see `VFIOUserCapabilities.init(json:)`).
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: "vfio_user_version")
        major = try reader.u16()
        minor = try reader.u16()
        var text = Array(bytes[4...])
        while text.last == 0 { text.removeLast() }
        if text.isEmpty {
            capabilities = VFIOUserCapabilities()
            return
        }
        if text.contains(0) { throw .malformed("vfio_user_version", "the version data has a NUL byte inside the JSON") }
        let document: JSONValue
        do { document = try JSONValue.parse(text) } catch {
            throw .malformed("vfio_user_version", "the version data is not JSON: \(error)")
        }
        capabilities = try VFIOUserCapabilities(json: document)
    }
}
