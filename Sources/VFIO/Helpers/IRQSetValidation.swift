/// Validation of a `VFIO_DEVICE_SET_IRQS` request with the semantics of the kernel's
/// `vfio_set_irqs_validate_and_prepare()` (drivers/vfio/vfio_main.c), followed by the two
/// refusals a bus driver's ioctl handler (vfio-pci's `vfio_pci_ioctl_set_irqs()`) makes
/// after it: data bytes the caller did not supply, and an action that is not exactly one
/// of MASK/UNMASK/TRIGGER.
///
/// The rules run in the kernel's order, so the reason given is the one the kernel would
/// hit first:
///
/// 1. `argsz` below the 20-byte header (`EINVAL`);
/// 2. `index` not below the number of IRQ indexes (`EINVAL`);
/// 3. `count >= UInt32.max - start`: the kernel's overflow guard, which also refuses a
///    sum of exactly `0xffffffff` and any request with `start == 0xffffffff` (`EINVAL`);
/// 4. flag bits outside the data-type and action masks (`EINVAL`);
/// 5. `start >= irqCount` or `start + count > irqCount`: the first vector must exist even
///    when `count` is 0, so an index with no vectors refuses every request (`EINVAL`);
/// 6. not exactly one of DATA_NONE, DATA_BOOL, DATA_EVENTFD (`EINVAL`);
/// 7. `argsz - 20` smaller than `count` × the data element size (`EINVAL`);
/// 8. fewer data bytes present after the header than that (the kernel's copy of the
///    data faults: `EFAULT`); checked only when the caller says how many are present;
/// 9. not exactly one action (vfio-pci finds no handler: `ENOTTY`). The kernel helper
///    does not look at the action bits; this check is an addition, made last because
///    that is where the kernel makes it.
public enum IRQSetValidation {
    /// The rule a rejected request broke; the thrown error's text starts with `summary`.
    public enum Violation: Error, Sendable, Equatable, CaseIterable, CustomStringConvertible {
        case argszBelowHeader
        case indexOutOfRange
        case startCountOverflow
        case unknownFlags
        case vectorsOutOfRange
        case dataTypeNotExactlyOne
        case argszBelowData
        case dataMissing
        case actionNotExactlyOne

        /// A fixed phrase naming the cause; every error message begins with it.
        public var summary: String {
            switch self {
            case .argszBelowHeader: return "argsz below the header"
            case .indexOutOfRange: return "IRQ index out of range"
            case .startCountOverflow: return "start + count overflows"
            case .unknownFlags: return "unknown flag bits"
            case .vectorsOutOfRange: return "vectors out of range"
            case .dataTypeNotExactlyOne: return "not exactly one data type"
            case .argszBelowData: return "argsz too small for the data"
            case .dataMissing: return "data bytes missing"
            case .actionNotExactlyOne: return "not exactly one action"
            }
        }

        public var description: String { summary }
    }

    /// `offsetofend(struct vfio_irq_set, count)`.
    public static let headerSize = 20

    /// The bytes of `data[]` per vector for the single data type in `flags`, or `nil`
    /// unless exactly one data type is set: 0 for DATA_NONE, 1 for DATA_BOOL, 4 (an
    /// `__s32` eventfd) for DATA_EVENTFD.
    public static func elementSize(_ flags: IRQSetFlags) -> Int? {
        switch flags.intersection(.dataTypeMask) {
        case .dataNone: return 0
        case .dataBool: return 1
        case .dataEventfd: return 4
        default: return nil
        }
    }

    /// Validates `header` and returns the size of its `data[]` part in bytes: 0 for
    /// DATA_NONE, `count` for DATA_BOOL, `4 * count` for DATA_EVENTFD.
    ///
    /// - Parameters:
    ///   - header: the request's fixed part (argsz, flags, index, start, count).
    ///   - irqCount: the number of vectors the device has at `header.index` (the
    ///     kernel's `num_irqs`; 0 for an index it does not have).
    ///   - indexCount: the number of IRQ indexes (`max_irq_type`, e.g. 5 for vfio-pci).
    ///   - dataBytesPresent: how many bytes actually follow the header (for a buffer or a
    ///     vfio-user message); `nil` skips that check.
    /// - Throws: `VFIOError.invalidArgument("vfio_set_irqs_validate_and_prepare", …)`
    ///   whose text starts with the broken rule's `Violation.summary`.
    public static func validateAndPrepare(
        _ header: IRQSetHeader,
        irqCount: UInt32,
        indexCount: UInt32,
        dataBytesPresent: Int? = nil
    ) throws(VFIOError) -> Int {
        switch evaluate(header, irqCount: irqCount, indexCount: indexCount, dataBytesPresent: dataBytesPresent) {
        case .success(let size):
            return size
        case .failure(let violation):
            throw .invalidArgument("vfio_set_irqs_validate_and_prepare",
                message(violation, header, irqCount: irqCount, indexCount: indexCount, dataBytesPresent: dataBytesPresent))
        }
    }

    /// The first rule `header` breaks, or `nil` when it passes. Same rules and order as
    /// `validateAndPrepare`, without building an error.
    public static func firstViolation(
        _ header: IRQSetHeader,
        irqCount: UInt32,
        indexCount: UInt32,
        dataBytesPresent: Int? = nil
    ) -> Violation? {
        if case .failure(let violation) = evaluate(header, irqCount: irqCount, indexCount: indexCount, dataBytesPresent: dataBytesPresent) {
            return violation
        }
        return nil
    }

    private static func evaluate(
        _ header: IRQSetHeader,
        irqCount: UInt32,
        indexCount: UInt32,
        dataBytesPresent: Int?
    ) -> Result<Int, Violation> {
        if Int(header.argsz) < headerSize { return .failure(.argszBelowHeader) }
        if header.index >= indexCount { return .failure(.indexOutOfRange) }
        if header.count >= UInt32.max - header.start { return .failure(.startCountOverflow) }
        if !header.flags.subtracting(IRQSetFlags.dataTypeMask.union(.actionTypeMask)).isEmpty {
            return .failure(.unknownFlags)
        }
        // Rule 3 guarantees start + count does not wrap.
        if header.start >= irqCount || header.start + header.count > irqCount {
            return .failure(.vectorsOutOfRange)
        }
        guard let element = elementSize(header.flags) else { return .failure(.dataTypeNotExactlyOne) }
        let dataSize = Int(header.count) * element
        if Int(header.argsz) - headerSize < dataSize { return .failure(.argszBelowData) }
        if let present = dataBytesPresent, present < dataSize { return .failure(.dataMissing) }
        switch header.flags.intersection(.actionTypeMask) {
        case .actionMask, .actionUnmask, .actionTrigger: break
        default: return .failure(.actionNotExactlyOne)
        }
        return .success(dataSize)
    }

    private static func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }

    private static func message(
        _ violation: Violation,
        _ h: IRQSetHeader,
        irqCount: UInt32,
        indexCount: UInt32,
        dataBytesPresent: Int?
    ) -> String {
        let detail: String
        switch violation {
        case .argszBelowHeader:
            detail = "argsz \(h.argsz) is smaller than the \(headerSize)-byte vfio_irq_set header"
        case .indexOutOfRange:
            detail = "index \(h.index) is not below the \(indexCount) IRQ indexes"
        case .startCountOverflow:
            detail = "count \(h.count) is not below 0xffffffff - start \(h.start)"
        case .unknownFlags:
            let unknown = h.flags.subtracting(IRQSetFlags.dataTypeMask.union(.actionTypeMask))
            detail = "flags \(hex(h.flags.rawValue)) has undefined bits \(hex(unknown.rawValue))"
        case .vectorsOutOfRange:
            if h.start >= irqCount {
                detail = "start \(h.start) is not below the \(irqCount) vector(s) of index \(h.index)"
            } else {
                detail = "start \(h.start) + count \(h.count) exceeds the \(irqCount) vector(s) of index \(h.index)"
            }
        case .dataTypeNotExactlyOne:
            detail = "flags \(hex(h.flags.rawValue)) must set exactly one of DATA_NONE, DATA_BOOL, DATA_EVENTFD"
        case .argszBelowData:
            let need = Int(h.count) * (elementSize(h.flags) ?? 0)
            detail = "argsz \(h.argsz) leaves \(Int(h.argsz) - headerSize) byte(s) after the header, \(need) needed for \(h.count) vector(s)"
        case .dataMissing:
            let need = Int(h.count) * (elementSize(h.flags) ?? 0)
            detail = "only \(dataBytesPresent ?? 0) data byte(s) follow the header, \(need) needed for \(h.count) vector(s)"
        case .actionNotExactlyOne:
            detail = "flags \(hex(h.flags.rawValue)) must set exactly one of ACTION_MASK, ACTION_UNMASK, ACTION_TRIGGER"
        }
        return violation.summary + ": " + detail
    }
}
