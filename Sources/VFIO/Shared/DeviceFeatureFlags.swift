/// `flags` of `struct vfio_device_feature`: the feature number in the low 16 bits
/// (`VFIO_DEVICE_FEATURE_MASK`) and the operation in the bits above.
public struct DeviceFeatureFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_DEVICE_FEATURE_MASK`: the bits that hold the feature number.
    public static let featureMask: UInt32 = 0xffff
    /// `VFIO_DEVICE_FEATURE_GET`: read the feature's data.
    public static let get = DeviceFeatureFlags(rawValue: 1 << 16)
    /// `VFIO_DEVICE_FEATURE_SET`: write the feature's data.
    public static let set = DeviceFeatureFlags(rawValue: 1 << 17)
    /// `VFIO_DEVICE_FEATURE_PROBE`: ask whether GET and/or SET are supported, doing neither.
    public static let probe = DeviceFeatureFlags(rawValue: 1 << 18)

    /// Flags for `feature` with the operations `ops`.
    public init(feature: UInt32, _ ops: DeviceFeatureFlags) {
        self.rawValue = (feature & DeviceFeatureFlags.featureMask) | ops.rawValue
    }

    /// The feature number (`flags & VFIO_DEVICE_FEATURE_MASK`).
    public var feature: UInt32 { rawValue & DeviceFeatureFlags.featureMask }

    /// The operation bits (GET, SET, PROBE and any unknown bits above the mask).
    public var operations: DeviceFeatureFlags { DeviceFeatureFlags(rawValue: rawValue & ~DeviceFeatureFlags.featureMask) }
}
