/// The whole `struct vfio_irq_set` (`VFIO_DEVICE_SET_IRQS`): the 20-byte header
/// (`IRQSetHeader`) and its `data[]`.
///
/// The action applies to vectors `start ..< start + count` of `index`. The data type
/// decides what follows the header: nothing, one byte per vector (act where non-zero), or
/// one eventfd per vector (-1 removes the eventfd, or skips a vector that has none).
/// `argsz` is computed on encode and covers the header and the data.
///
/// Kernel errors: `EINVAL` for an index the device does not have, a range past the index's
/// count, an action the index does not support (mask/unmask without `MASKABLE`), or an
/// `argsz` too small for the data; `EBADF` for an fd that is not an eventfd.
public struct IRQSet: ArgszStruct {
    public static let cName = "vfio_irq_set"
    /// `sizeof(struct vfio_irq_set)`, without `data[]`.
    public static let fixedSize = IRQSetHeader.fixedSize

    /// The action bit of the flags (exactly one is set).
    public enum Action: Sendable, Hashable, CaseIterable {
        /// `VFIO_IRQ_SET_ACTION_MASK`: mask the vectors (or, with eventfds, bind irqfds that mask).
        case mask
        /// `VFIO_IRQ_SET_ACTION_UNMASK`: unmask the vectors (or bind irqfds that unmask).
        case unmask
        /// `VFIO_IRQ_SET_ACTION_TRIGGER`: with eventfds, the kernel signals them on interrupt;
        /// without, trigger the vectors as if the device had (loopback testing).
        case trigger

        public var flag: IRQSetFlags {
            switch self {
            case .mask: return .actionMask
            case .unmask: return .actionUnmask
            case .trigger: return .actionTrigger
            }
        }
    }

    /// The data type and the data after the header.
    public enum Data: Sendable, Hashable {
        /// `VFIO_IRQ_SET_DATA_NONE`: no data; `count` vectors are acted on. Count 0 with
        /// TRIGGER disables the whole index.
        case none(count: UInt32)
        /// `VFIO_IRQ_SET_DATA_BOOL`: one byte per vector; act where true.
        case bools([Bool])
        /// `VFIO_IRQ_SET_DATA_EVENTFD`: one `__s32` per vector; -1 removes the binding.
        case eventfds([Int32])

        public var flag: IRQSetFlags {
            switch self {
            case .none: return .dataNone
            case .bools: return .dataBool
            case .eventfds: return .dataEventfd
            }
        }

        /// The number of vectors (`count` of the header).
        public var count: UInt32 {
            switch self {
            case .none(let count): return count
            case .bools(let values): return UInt32(values.count)
            case .eventfds(let fds): return UInt32(fds.count)
            }
        }

        /// The bytes per vector in `data[]`: 0, 1 or 4.
        public var elementSize: Int {
            switch self {
            case .none: return 0
            case .bools: return 1
            case .eventfds: return 4
            }
        }
    }

    /// The IRQ index (`PCIIRQIndex` for vfio-pci).
    public var index: UInt32
    /// The first vector acted on.
    public var start: UInt32
    public var action: Action
    public var data: Data

    public init(index: UInt32, start: UInt32 = 0, action: Action, data: Data) {
        self.index = index
        self.start = start
        self.action = action
        self.data = data
    }

    /// The vector count (from `data`).
    public var count: UInt32 { data.count }

    /// The flags word: the data type bit and the action bit.
    public var flags: IRQSetFlags { data.flag.union(action.flag) }

    /// The header as it is encoded, `argsz` included.
    public var header: IRQSetHeader {
        IRQSetHeader(
            argsz: UInt32(Self.fixedSize + Int(count) * data.elementSize),
            flags: flags, index: index, start: start, count: count)
    }

    // MARK: Common requests

    /// Binds `eventfds` to be signalled for vectors `start…` of `index` (TRIGGER with
    /// eventfds). For MSI/MSI-X, this enables the index with `eventfds.count` vectors.
    public static func enableEventfds(index: UInt32, start: UInt32 = 0, _ eventfds: [Int32]) -> IRQSet {
        IRQSet(index: index, start: start, action: .trigger, data: .eventfds(eventfds))
    }

    /// MSI-X with one eventfd per vector from vector 0 (-1 leaves a vector unbound).
    public static func enableMSIX(_ eventfds: [Int32]) -> IRQSet {
        enableEventfds(index: PCIIRQIndex.msix.rawValue, eventfds)
    }

    /// Disables a whole index: DATA_NONE | ACTION_TRIGGER with count 0.
    public static func disable(index: UInt32) -> IRQSet {
        IRQSet(index: index, start: 0, action: .trigger, data: .none(count: 0))
    }

    /// Masks the INTx line (DATA_NONE | ACTION_MASK, vector 0).
    public static func maskINTx() -> IRQSet {
        IRQSet(index: PCIIRQIndex.intx.rawValue, start: 0, action: .mask, data: .none(count: 1))
    }

    /// Unmasks the INTx line (DATA_NONE | ACTION_UNMASK, vector 0), as a user does after
    /// each automasked interrupt.
    public static func unmaskINTx() -> IRQSet {
        IRQSet(index: PCIIRQIndex.intx.rawValue, start: 0, action: .unmask, data: .none(count: 1))
    }

    /// Triggers `count` vectors from `start` from software (DATA_NONE | ACTION_TRIGGER).
    /// - Precondition: `count > 0` (count 0 would disable the index; use `disable(index:)`).
    public static func trigger(index: UInt32, start: UInt32 = 0, count: UInt32 = 1) -> IRQSet {
        precondition(count > 0, "count 0 with DATA_NONE|TRIGGER disables the index; use IRQSet.disable(index:)")
        return IRQSet(index: index, start: start, action: .trigger, data: .none(count: count))
    }

    // MARK: Encoding

    public func encode(into writer: inout ByteWriter) {
        header.encode(into: &writer)
        switch data {
        case .none:
            break
        case .bools(let values):
            for value in values { writer.u8(value ? 1 : 0) }
        case .eventfds(let fds):
            for fd in fds { writer.i32(fd) }
        }
    }

    /// Decodes and checks the shape the kernel checks in
    /// `vfio_set_irqs_validate_and_prepare`: `argsz` at least the header, no flag bits
    /// outside the data-type and action masks, exactly one of each, `start + count` not
    /// reaching `U32_MAX`, and `argsz` and the buffer both holding `count` elements of data.
    /// Whether the index and range exist on a device is not known here.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let header = try IRQSetHeader(from: &reader)
        if Int(header.argsz) < Self.fixedSize {
            throw .malformed(Self.cName, "argsz \(header.argsz) is smaller than the \(Self.fixedSize)-byte header")
        }
        let known = IRQSetFlags.dataTypeMask.union(.actionTypeMask)
        let unknown = header.flags.subtracting(known)
        if !unknown.isEmpty {
            throw .malformed(Self.cName, "flags 0x\(String(header.flags.rawValue, radix: 16)) have unknown bits 0x\(String(unknown.rawValue, radix: 16))")
        }
        let dataBits = header.flags.intersection(.dataTypeMask)
        if dataBits.rawValue.nonzeroBitCount != 1 {
            throw .malformed(Self.cName, "flags 0x\(String(header.flags.rawValue, radix: 16)) must have exactly one DATA_ bit, not \(dataBits.rawValue.nonzeroBitCount)")
        }
        let actionBits = header.flags.intersection(.actionTypeMask)
        if actionBits.rawValue.nonzeroBitCount != 1 {
            throw .malformed(Self.cName, "flags 0x\(String(header.flags.rawValue, radix: 16)) must have exactly one ACTION_ bit, not \(actionBits.rawValue.nonzeroBitCount)")
        }
        if UInt64(header.start) + UInt64(header.count) >= UInt64(UInt32.max) {
            throw .malformed(Self.cName, "start \(header.start) + count \(header.count) reaches U32_MAX")
        }
        let elementSize = dataBits == .dataBool ? 1 : dataBits == .dataEventfd ? 4 : 0
        let dataSize = UInt64(header.count) * UInt64(elementSize)
        if UInt64(header.argsz) - UInt64(Self.fixedSize) < dataSize {
            throw .malformed(Self.cName, "argsz \(header.argsz) leaves \(header.argsz - UInt32(Self.fixedSize)) byte(s) for data, count \(header.count) needs \(dataSize)")
        }
        if UInt64(reader.remaining) < dataSize {
            throw .malformed(Self.cName, "count \(header.count) needs \(dataSize) byte(s) of data, the buffer has \(reader.remaining)")
        }
        index = header.index
        self.start = header.start
        action = actionBits == .actionMask ? .mask : actionBits == .actionUnmask ? .unmask : .trigger
        switch dataBits {
        case .dataBool:
            data = .bools(try reader.bytes(Int(header.count)).map { $0 != 0 })
        case .dataEventfd:
            var fds: [Int32] = []
            fds.reserveCapacity(Int(header.count))
            for _ in 0..<header.count { fds.append(try reader.i32()) }
            data = .eventfds(fds)
        default:
            data = .none(count: header.count)
        }
        InfoChainCodec.finish(&reader, start: start, argsz: header.argsz)
    }
}
