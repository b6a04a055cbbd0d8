/// The fixed part of `struct vfio_device_feature` (`VFIO_DEVICE_FEATURE`): `argsz` and
/// `flags`, without `data[]`.
///
/// For transports that must look at a request before its data: a vfio-user GET request
/// carries no data and states in `argsz` the reply size it accepts. The typed request
/// with its payload is `DeviceFeature`.
public struct DeviceFeatureHeader: ArgszStruct {
    public static let cName = "vfio_device_feature"
    /// `sizeof(struct vfio_device_feature)` (the header; `data[]` follows).
    public static let fixedSize = 8

    /// The size of the whole buffer (header plus data), or in a vfio-user request the
    /// largest reply accepted. Kept as given, since it is not the header's own size.
    public var argsz: UInt32
    /// The feature number and the GET / SET / PROBE bits.
    public var flags: DeviceFeatureFlags

    public init(argsz: UInt32 = UInt32(DeviceFeatureHeader.fixedSize), flags: DeviceFeatureFlags) {
        self.argsz = argsz
        self.flags = flags
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(argsz)
        writer.u32(flags.rawValue)
    }

    /// Reads the header and checks the flags the way `VFIO_DEVICE_FEATURE` does before
    /// looking at the feature.
    ///
    /// - Throws: `.malformed` when `argsz` is below 8, `flags` has bits other than the
    ///   feature number, GET, SET and PROBE, names none of GET, SET and PROBE, or has GET
    ///   and SET together without PROBE.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        argsz = try reader.argsz(fixedSize: Self.fixedSize)
        flags = DeviceFeatureFlags(rawValue: try reader.u32())
        try DeviceFeatureHeader.validate(flags)
    }

    /// The operation bits every valid request uses.
    static let knownOperations: DeviceFeatureFlags = [.get, .set, .probe]

    /// The kernel's checks of `flags` (unknown bits, GET with SET), plus its later rule
    /// that without PROBE one of GET or SET must be asked for.
    static func validate(_ flags: DeviceFeatureFlags) throws(VFIOError) {
        let ops = flags.operations
        let unknown = ops.subtracting(knownOperations)
        if !unknown.isEmpty {
            throw .malformed(cName, "flags 0x\(String(flags.rawValue, radix: 16)) has bits 0x\(String(unknown.rawValue, radix: 16)) other than the feature number, GET, SET and PROBE")
        }
        if ops.isEmpty {
            throw .malformed(cName, "flags 0x\(String(flags.rawValue, radix: 16)) names none of VFIO_DEVICE_FEATURE_GET, SET or PROBE")
        }
        if !ops.contains(.probe) && ops.contains([.get, .set]) {
            throw .malformed(cName, "flags 0x\(String(flags.rawValue, radix: 16)) asks for GET and SET together without PROBE")
        }
    }
}
