/// `flags` of `struct vfio_irq_info`.
public struct IRQInfoFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_IRQ_INFO_EVENTFD`: the index can signal through eventfds.
    public static let eventfd = IRQInfoFlags(rawValue: 1 << 0)
    /// `VFIO_IRQ_INFO_MASKABLE`: the MASK and UNMASK actions are supported.
    public static let maskable = IRQInfoFlags(rawValue: 1 << 1)
    /// `VFIO_IRQ_INFO_AUTOMASKED`: after each signal the line is masked until the user
    /// unmasks it (level-triggered, e.g. INTx).
    public static let automasked = IRQInfoFlags(rawValue: 1 << 2)
    /// `VFIO_IRQ_INFO_NORESIZE`: vectors are enabled as a set; adding vectors means
    /// disabling the whole index first (MSI, and MSI-X without dynamic allocation).
    public static let noResize = IRQInfoFlags(rawValue: 1 << 3)
}

/// `struct vfio_irq_info`, the reply of `VFIO_DEVICE_GET_IRQ_INFO`. An index with count 0
/// is unimplemented.
public struct IRQInfo: ArgszStruct {
    public static let cName = "vfio_irq_info"
    /// `sizeof(struct vfio_irq_info)`
    public static let fixedSize = 16

    public var flags: IRQInfoFlags
    /// The IRQ index asked about (`PCIIRQIndex` for vfio-pci).
    public var index: UInt32
    /// The number of vectors in the index.
    public var count: UInt32

    public init(flags: IRQInfoFlags, index: UInt32, count: UInt32) {
        self.flags = flags
        self.index = index
        self.count = count
    }

    /// The request for `VFIO_DEVICE_GET_IRQ_INFO`: only `index` set.
    public static func query(index: UInt32) -> [UInt8] {
        IRQInfo(flags: [], index: index, count: 0).encoded()
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(flags.rawValue)
        writer.u32(index)
        writer.u32(count)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        flags = IRQInfoFlags(rawValue: try reader.u32())
        index = try reader.u32()
        count = try reader.u32()
        InfoChainCodec.finish(&reader, start: start, argsz: argsz)
    }
}
