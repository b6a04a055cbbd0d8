/// Checking a `VFIO_DEVICE_FEATURE` request against what one feature supports, with the
/// kernel's rules: the ioctl core's checks in `vfio_ioctl_device_feature()` followed by
/// the driver-side helper `vfio_check_feature()` (include/linux/vfio.h).
///
/// A device model (or a vfio-user server) calls this first in its handler for a feature
/// and then does what the returned decision says. Every refusal is one the kernel answers
/// with `EINVAL`; the error's text names which rule was broken.
public enum DeviceFeatureCheck {
    /// What the feature handler does next when the request passes.
    public enum Decision: Sendable, Equatable, CustomStringConvertible {
        /// `VFIO_DEVICE_FEATURE_PROBE` was set and the operations asked about are
        /// supported: answer success without touching the payload (the kernel returns 0).
        case probeAnswered
        /// Perform `VFIO_DEVICE_FEATURE_GET`: fill the payload.
        case get
        /// Perform `VFIO_DEVICE_FEATURE_SET`: act on the payload.
        case set

        public var description: String {
            switch self {
            case .probeAnswered: return "probe answered"
            case .get: return "GET"
            case .set: return "SET"
            }
        }
    }

    /// `offsetofend(struct vfio_device_feature, flags)`: argsz and flags, before `data[]`.
    public static let headerSize = 8

    /// Checks one request.
    ///
    /// - Parameters:
    ///   - flags: the request's `flags` (feature number in the low 16 bits, operation above).
    ///   - argsz: the request's `argsz`: the whole `struct vfio_device_feature`, its 8-byte
    ///     header included. The payload the handler may use is `argsz - 8` bytes.
    ///   - supported: the operations this feature implements, `.get` and/or `.set`
    ///     (other bits are ignored).
    ///   - payloadMinimum: the smallest payload (`data[]`) the feature accepts, in bytes;
    ///     `sizeof` of its payload struct, or 0 for a feature without one.
    /// - Returns: `.probeAnswered` for a probe, else the single operation to perform.
    /// - Throws: `VFIOError.invalidArgument("vfio_check_feature", …)`, in the kernel's
    ///   order: argsz below the 8-byte header; flag bits that are neither the feature
    ///   number nor GET/SET/PROBE; GET and SET together without PROBE (these three are
    ///   the ioctl core's checks); GET or SET asked for but not supported by this feature
    ///   (even with PROBE); neither GET, SET nor PROBE; a payload smaller than
    ///   `payloadMinimum`.
    public static func check(
        flags: DeviceFeatureFlags,
        argsz: UInt32,
        supported: DeviceFeatureFlags,
        payloadMinimum: Int
    ) throws(VFIOError) -> Decision {
        let operation = "vfio_check_feature"
        let getSet: DeviceFeatureFlags = [.get, .set]
        if Int(argsz) < headerSize {
            throw .invalidArgument(operation, "argsz \(argsz) is below the \(headerSize)-byte vfio_device_feature header")
        }
        let known = DeviceFeatureFlags(rawValue: DeviceFeatureFlags.featureMask).union([.get, .set, .probe])
        let unknown = flags.subtracting(known)
        if !unknown.isEmpty {
            throw .invalidArgument(operation, "unknown flag bits 0x\(String(unknown.rawValue, radix: 16)) (only the feature number, GET, SET and PROBE are defined)")
        }
        if !flags.contains(.probe) && flags.isSuperset(of: getSet) {
            throw .invalidArgument(operation, "GET and SET requested together without PROBE")
        }
        let unsupported = flags.intersection(getSet).subtracting(supported.intersection(getSet))
        if !unsupported.isEmpty {
            let names = [unsupported.contains(.get) ? "GET" : nil, unsupported.contains(.set) ? "SET" : nil]
                .compactMap { $0 }.joined(separator: " and ")
            throw .invalidArgument(operation, "\(names) not supported by feature \(flags.feature)")
        }
        if flags.contains(.probe) { return .probeAnswered }
        if flags.isDisjoint(with: getSet) {
            throw .invalidArgument(operation, "neither GET, SET nor PROBE requested for feature \(flags.feature)")
        }
        let payload = Int(argsz) - headerSize
        if payload < payloadMinimum {
            throw .invalidArgument(operation, "argsz \(argsz) leaves a \(payload)-byte payload, below the \(payloadMinimum) bytes feature \(flags.feature) needs")
        }
        return flags.contains(.get) ? .get : .set
    }
}
