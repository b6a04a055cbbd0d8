/// A `VFIO_DEVICE_FEATURE` request or reply: `struct vfio_device_feature` with its
/// `data[]` typed by feature.
///
/// - `.get(payload)`: `VFIO_DEVICE_FEATURE_GET`. On the kernel transport the payload is
///   both the room for the answer and, for DMA_LOGGING_REPORT, the input; the kernel
///   rewrites it in place. Send a zero value of the payload to read a feature.
/// - `.set(payload)`: `VFIO_DEVICE_FEATURE_SET` with the feature's data.
/// - `.probe(feature:get:set:)`: `VFIO_DEVICE_FEATURE_PROBE`, no data. Succeeds when the
///   device has the feature and every operation also named (GET, SET) is supported.
///
/// A vfio-user GET request carries no data (its `argsz` only states the reply room), so
/// it does not decode as `.get`; read it with `DeviceFeatureHeader` instead.
///
/// `argsz` is computed on encode: 8 plus the payload's size. Errors the device reports
/// are errno values of the ioctl: `ENOTTY` for a feature the device lacks, `EINVAL` for
/// an operation the feature does not support or data too short.
public enum DeviceFeature: ArgszStruct {
    case get(DeviceFeaturePayload)
    case set(DeviceFeaturePayload)
    case probe(feature: UInt32, get: Bool = false, set: Bool = false)

    public static let cName = "vfio_device_feature"
    /// `sizeof(struct vfio_device_feature)` (the header; `data[]` follows).
    public static let fixedSize = 8

    /// A probe of a known feature.
    public static func probe(_ feature: DeviceFeatureID, get: Bool = false, set: Bool = false) -> DeviceFeature {
        .probe(feature: feature.rawValue, get: get, set: set)
    }

    /// The feature number (the low 16 bits of `flags`).
    public var feature: UInt32 {
        switch self {
        case .get(let payload), .set(let payload): return payload.feature
        case .probe(let feature, _, _): return feature & DeviceFeatureFlags.featureMask
        }
    }

    /// The `flags` word: the feature number with the operation bits.
    public var flags: DeviceFeatureFlags {
        switch self {
        case .get(let payload): return DeviceFeatureFlags(feature: payload.feature, .get)
        case .set(let payload): return DeviceFeatureFlags(feature: payload.feature, .set)
        case .probe(let feature, let get, let set):
            var ops: DeviceFeatureFlags = .probe
            if get { ops.insert(.get) }
            if set { ops.insert(.set) }
            return DeviceFeatureFlags(feature: feature, ops)
        }
    }

    /// The payload of a GET or SET, `nil` for a probe.
    public var payload: DeviceFeaturePayload? {
        switch self {
        case .get(let payload), .set(let payload): return payload
        case .probe: return nil
        }
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        payload?.encode(into: &writer)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        try self.init(from: &reader, layout: .kernel)
    }

    /// Decodes a request or reply whose DMA-logging data follows `layout`.
    public init(decoding bytes: [UInt8], layout: FeatureDataLayout) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        try self.init(from: &reader, layout: layout)
    }

    /// Decodes the header, checks its flags (see `DeviceFeatureHeader`), then the data.
    ///
    /// The data are the bytes after the header up to `argsz` or the end of the buffer,
    /// whichever comes first (a vfio-user request may state a larger `argsz` for its
    /// reply than it sends). A probe's data are ignored. The reader ends after them.
    ///
    /// - Throws: `.malformed` for a bad header (see `DeviceFeatureHeader.init(from:)`),
    ///   or from `DeviceFeaturePayload.decode` for data too short or invalid.
    public init(from reader: inout ByteReader, layout: FeatureDataLayout) throws(VFIOError) {
        let start = reader.offset
        let header = try DeviceFeatureHeader(from: &reader)
        let end = min(start + Int(header.argsz), reader.bytes.count)
        let data = end > reader.offset ? try reader.bytes(end - reader.offset) : []
        let ops = header.flags.operations
        if ops.contains(.probe) {
            self = .probe(feature: header.flags.feature, get: ops.contains(.get), set: ops.contains(.set))
            return
        }
        let payload: DeviceFeaturePayload
        do throws(VFIOError) {
            payload = try DeviceFeaturePayload.decode(feature: header.flags.feature, data: data, layout: layout)
        } catch {
            let name = DeviceFeatureID(rawValue: header.flags.feature)?.cName ?? "feature \(header.flags.feature)"
            throw .malformed(Self.cName, "data of \(name): \(error.description)")
        }
        self = ops.contains(.get) ? .get(payload) : .set(payload)
    }
}
