import VFIO

/// A `VFIO_DEVICE_FEATURE` the model itself implements (declared in
/// `DeviceModel.deviceFeatures`). The server answers PROBE from this declaration and
/// routes GET to `DeviceModel.getFeature(_:room:)` and SET to `setFeature(_:data:)`, after
/// the kernel's checks (`DeviceFeatureCheck`: an operation not in `operations`, a payload
/// smaller than `payloadSize`: `EINVAL`).
///
/// The features the kit serves itself cannot be declared: MIGRATION, MIG_DEVICE_STATE,
/// MIG_DATA_SIZE (through `DeviceModel.migration`) and DMA_LOGGING_START / STOP / REPORT
/// (the kit's dirty tracking).
public struct ModelFeature: Sendable, Hashable {
    /// The feature number (`flags & VFIO_DEVICE_FEATURE_MASK`), below 0x10000.
    public var id: UInt32
    /// `.get` and/or `.set`.
    public var operations: DeviceFeatureFlags
    /// The smallest payload (`data[]`) a GET's room or a SET's data may have, in bytes
    /// (`sizeof` the feature's struct; 0 for none).
    public var payloadSize: Int

    public init(id: UInt32, operations: DeviceFeatureFlags, payloadSize: Int) {
        self.id = id
        self.operations = operations
        self.payloadSize = payloadSize
    }

    /// The feature numbers the kit serves for every model (see the type's comment).
    public static let servedByKit: Set<UInt32> = Set([DeviceFeatureID.migration, .migrationDeviceState, .migrationDataSize,
                                                      .dmaLoggingStart, .dmaLoggingStop, .dmaLoggingReport].map(\.rawValue))

    /// Checks a model's declarations: numbers below 0x10000, none twice, none the kit
    /// serves, operations only GET/SET and at least one, a payload size of 0...64 KiB.
    /// - Throws: `.invalidArgument` naming the feature.
    public static func validate(_ features: [ModelFeature]) throws(VFIOError) {
        var seen = Set<UInt32>()
        for feature in features {
            let name = "deviceFeatures"
            guard feature.id <= DeviceFeatureFlags.featureMask else { throw .invalidArgument(name, "feature \(feature.id) is above 0xffff") }
            guard seen.insert(feature.id).inserted else { throw .invalidArgument(name, "feature \(feature.id) is declared twice") }
            guard !servedByKit.contains(feature.id) else {
                throw .invalidArgument(name, "feature \(feature.id) is served by the kit (migration, DMA logging)")
            }
            guard !feature.operations.intersection([.get, .set]).isEmpty, feature.operations.isSubset(of: [.get, .set]) else {
                throw .invalidArgument(name, "feature \(feature.id): operations must be GET and/or SET")
            }
            guard (0...65536).contains(feature.payloadSize) else { throw .invalidArgument(name, "feature \(feature.id): payload size \(feature.payloadSize)") }
        }
    }
}

extension DeviceInfoFlags {
    /// The IRQ index through which the host asks the user to release the device: PCI's,
    /// CCW's or AP's REQ index; `nil` for other buses.
    public var requestIRQIndex: UInt32? {
        if contains(.pci) { return PCIIRQIndex.req.rawValue }
        if contains(.ccw) { return CCWIRQIndex.req.rawValue }
        if contains(.ap) { return APIRQIndex.req.rawValue }
        return nil
    }
}
