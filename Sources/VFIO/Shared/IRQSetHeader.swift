/// `flags` of `struct vfio_irq_set`: exactly one data type and exactly one action.
public struct IRQSetFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_IRQ_SET_DATA_NONE`: no data; the action applies to every IRQ in the range.
    public static let dataNone = IRQSetFlags(rawValue: 1 << 0)
    /// `VFIO_IRQ_SET_DATA_BOOL`: one byte per IRQ; the action applies where it is non-zero.
    public static let dataBool = IRQSetFlags(rawValue: 1 << 1)
    /// `VFIO_IRQ_SET_DATA_EVENTFD`: one `__s32` per IRQ; -1 removes the eventfd.
    public static let dataEventfd = IRQSetFlags(rawValue: 1 << 2)
    /// `VFIO_IRQ_SET_ACTION_MASK`
    public static let actionMask = IRQSetFlags(rawValue: 1 << 3)
    /// `VFIO_IRQ_SET_ACTION_UNMASK`
    public static let actionUnmask = IRQSetFlags(rawValue: 1 << 4)
    /// `VFIO_IRQ_SET_ACTION_TRIGGER`
    public static let actionTrigger = IRQSetFlags(rawValue: 1 << 5)

    /// `VFIO_IRQ_SET_DATA_TYPE_MASK`
    public static let dataTypeMask: IRQSetFlags = [.dataNone, .dataBool, .dataEventfd]
    /// `VFIO_IRQ_SET_ACTION_TYPE_MASK`
    public static let actionTypeMask: IRQSetFlags = [.actionMask, .actionUnmask, .actionTrigger]
}

/// The fixed part of `struct vfio_irq_set` (`VFIO_DEVICE_SET_IRQS`), without `data[]`.
public struct IRQSetHeader: ArgszStruct {
    public static let cName = "vfio_irq_set"
    /// `sizeof(struct vfio_irq_set)`
    public static let fixedSize = 20

    /// The buffer size the caller states, fixed part plus data.
    public var argsz: UInt32
    public var flags: IRQSetFlags
    /// The IRQ index (`VFIO_PCI_INTX_IRQ_INDEX` and so on).
    public var index: UInt32
    /// The first vector within the index.
    public var start: UInt32
    /// The number of vectors; 0 with DATA_NONE and ACTION_TRIGGER disables the index.
    public var count: UInt32

    public init(argsz: UInt32 = UInt32(IRQSetHeader.fixedSize), flags: IRQSetFlags, index: UInt32, start: UInt32, count: UInt32) {
        self.argsz = argsz
        self.flags = flags
        self.index = index
        self.start = start
        self.count = count
    }

    /// Writes the header as given, `argsz` included (it states the whole buffer's size).
    public func encode(into writer: inout ByteWriter) {
        writer.u32(argsz)
        writer.u32(flags.rawValue)
        writer.u32(index)
        writer.u32(start)
        writer.u32(count)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        argsz = try reader.u32()
        flags = IRQSetFlags(rawValue: try reader.u32())
        index = try reader.u32()
        start = try reader.u32()
        count = try reader.u32()
    }
}
