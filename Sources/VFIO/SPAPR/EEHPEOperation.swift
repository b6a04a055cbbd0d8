/// The error to inject with `VFIO_EEH_PE_INJECT_ERR` (`struct vfio_eeh_pe_err`, 24 bytes):
/// `type` at 0, `func` at 4, `addr` at 8, `mask` at 16.
///
/// `type` and `function` take the platform's EEH error type and function codes
/// (`EEH_ERR_TYPE_*`, `EEH_ERR_FUNC_*` of the powerpc kernel), which `<linux/vfio.h>`
/// does not define; they are passed through unchanged.
public struct EEHPEError: KernelStruct, Hashable {
    public static let cName = "vfio_eeh_pe_err"
    /// `sizeof(struct vfio_eeh_pe_err)`
    public static let fixedSize = 24

    public var type: UInt32
    /// C field `func`.
    public var function: UInt32
    /// The address the error is reported at.
    public var address: UInt64
    /// The address mask.
    public var mask: UInt64

    public init(type: UInt32, function: UInt32, address: UInt64, mask: UInt64) {
        self.type = type
        self.function = function
        self.address = address
        self.mask = mask
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(type)
        writer.u32(function)
        writer.u64(address)
        writer.u64(mask)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        type = try reader.u32()
        function = try reader.u32()
        address = try reader.u64()
        mask = try reader.u64()
    }
}

/// The PE states `VFIO_EEH_PE_GET_STATE` returns as the ioctl's (non-negative) result.
public enum EEHPEState: UInt32, Sendable, CaseIterable {
    /// `VFIO_EEH_PE_STATE_NORMAL`: the PE works.
    case normal = 0
    /// `VFIO_EEH_PE_STATE_RESET`: a reset is in progress.
    case reset = 1
    /// `VFIO_EEH_PE_STATE_STOPPED`: MMIO and DMA are stopped.
    case stopped = 2
    /// `VFIO_EEH_PE_STATE_STOPPED_DMA`: DMA only is stopped.
    case stoppedDMA = 4
    /// `VFIO_EEH_PE_STATE_UNAVAIL`: the state cannot be read.
    case unavailable = 5
}

/// `VFIO_EEH_PE_OP` (`struct vfio_eeh_pe_op`, 40 bytes): an EEH operation on the
/// partitionable endpoint of an sPAPR container.
///
/// Layout: `argsz` at 0, `flags` at 4 (must be 0), `op` at 8, 4 bytes of padding, then the
/// union whose only member, `err` (`struct vfio_eeh_pe_err`), sits at 16. The kernel reads
/// the union only for `VFIO_EEH_PE_INJECT_ERR`, which needs `argsz` >= 40; other operations
/// need 12. This encoder always writes the full 40 bytes, zeroing the union when unused.
public struct EEHPEOperation: ArgszStruct {
    public static let cName = "vfio_eeh_pe_op"
    /// `sizeof(struct vfio_eeh_pe_op)`
    public static let fixedSize = 40
    /// The smallest `argsz` the kernel accepts: up to `op`.
    public static let minimumArgsz = 12

    /// The operation (`op`), with the injected error for `VFIO_EEH_PE_INJECT_ERR`.
    public enum Operation: Sendable, Hashable {
        /// `VFIO_EEH_PE_DISABLE` (0)
        case disable
        /// `VFIO_EEH_PE_ENABLE` (1)
        case enable
        /// `VFIO_EEH_PE_UNFREEZE_IO` (2): re-enable MMIO of a frozen PE.
        case unfreezeIO
        /// `VFIO_EEH_PE_UNFREEZE_DMA` (3): re-enable DMA of a frozen PE.
        case unfreezeDMA
        /// `VFIO_EEH_PE_GET_STATE` (4): the ioctl returns an `EEHPEState`.
        case getState
        /// `VFIO_EEH_PE_RESET_DEACTIVATE` (5): deassert the PE reset.
        case resetDeactivate
        /// `VFIO_EEH_PE_RESET_HOT` (6)
        case resetHot
        /// `VFIO_EEH_PE_RESET_FUNDAMENTAL` (7)
        case resetFundamental
        /// `VFIO_EEH_PE_CONFIGURE` (8): reconfigure the PE after a reset.
        case configure
        /// `VFIO_EEH_PE_INJECT_ERR` (9)
        case injectError(EEHPEError)

        /// The C `op` value.
        public var rawValue: UInt32 {
            switch self {
            case .disable: return 0
            case .enable: return 1
            case .unfreezeIO: return 2
            case .unfreezeDMA: return 3
            case .getState: return 4
            case .resetDeactivate: return 5
            case .resetHot: return 6
            case .resetFundamental: return 7
            case .configure: return 8
            case .injectError: return 9
            }
        }
    }

    public var operation: Operation

    public init(_ operation: Operation) {
        self.operation = operation
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(0) // flags
        writer.u32(operation.rawValue)
        writer.zeros(4)
        if case .injectError(let error) = operation {
            error.encode(into: &writer)
        } else {
            writer.zeros(EEHPEError.fixedSize)
        }
        writer.finishArgsz(at: start)
    }

    /// - Throws: `.malformed` when `argsz` is below 12, `flags` is not 0, `op` is not one
    ///   of 0...9 (the kernel's `EINVAL`), INJECT_ERR comes with an `argsz` below 40, or
    ///   the buffer is shorter than the part `argsz` covers.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        let argsz = try reader.argsz(fixedSize: Self.minimumArgsz)
        let flags = try reader.u32()
        if flags != 0 { throw .malformed(Self.cName, "flags 0x\(String(flags, radix: 16)) must be 0") }
        let op = try reader.u32()
        var error: EEHPEError?
        if argsz >= UInt32(Self.fixedSize) {
            try reader.skip(4)
            error = try EEHPEError(from: &reader)
        }
        switch op {
        case 0: operation = .disable
        case 1: operation = .enable
        case 2: operation = .unfreezeIO
        case 3: operation = .unfreezeDMA
        case 4: operation = .getState
        case 5: operation = .resetDeactivate
        case 6: operation = .resetHot
        case 7: operation = .resetFundamental
        case 8: operation = .configure
        case 9:
            guard let error else {
                throw .malformed(Self.cName, "VFIO_EEH_PE_INJECT_ERR needs argsz >= \(Self.fixedSize) for the error, got \(argsz)")
            }
            operation = .injectError(error)
        default:
            throw .malformed(Self.cName, "op \(op) is not a VFIO_EEH_PE_* operation")
        }
    }
}
