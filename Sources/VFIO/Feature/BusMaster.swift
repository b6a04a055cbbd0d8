/// `struct vfio_device_feature_bus_master`: the data of a SET of
/// `VFIO_DEVICE_FEATURE_BUS_MASTER`.
///
/// For buses without in-band bus-master control (CDX in 6.14); PCI devices control bus
/// mastering through their config space instead and do not offer this feature.
public struct BusMaster: KernelStruct {
    public static let cName = "vfio_device_feature_bus_master"
    /// `sizeof(struct vfio_device_feature_bus_master)`
    public static let fixedSize = 4

    /// The `op` values of 6.14.
    public enum Operation: UInt32, Sendable, CaseIterable {
        /// `VFIO_DEVICE_FEATURE_CLEAR_MASTER`: block the device's DMA.
        case clearMaster = 0
        /// `VFIO_DEVICE_FEATURE_SET_MASTER`: let the device do DMA.
        case setMaster = 1
    }

    /// `op`
    public var operation: Operation

    public init(_ operation: Operation) {
        self.operation = operation
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(operation.rawValue)
    }

    /// - Throws: `.malformed` when `op` is neither CLEAR_MASTER (0) nor SET_MASTER (1).
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let raw = try reader.u32()
        guard let op = Operation(rawValue: raw) else {
            throw .malformed(Self.cName, "op \(raw) is neither VFIO_DEVICE_FEATURE_CLEAR_MASTER (0) nor SET_MASTER (1)")
        }
        operation = op
    }
}
