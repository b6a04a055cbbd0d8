import Testing
@testable import VFIO
import TestSupport

// MARK: - Reference: the kernel's C, transcribed line by line

/// Why the reference refused a request: one case per condition in the kernel's code, in
/// the order the C evaluates them.
private enum KernelIRQSetCause: Error, Equatable {
    case argszLessThanMinsz        // hdr->argsz < minsz
    case indexAtLeastMax           // hdr->index >= max_irq_type
    case countAtLeastMaxMinusStart // hdr->count >= (U32_MAX - hdr->start)
    case flagsOutsideMasks         // hdr->flags & ~(DATA_TYPE_MASK | ACTION_TYPE_MASK)
    case startOrEndPastNumIrqs     // hdr->start >= num_irqs || hdr->start + hdr->count > num_irqs
    case dataTypeSwitchDefault     // switch (flags & DATA_TYPE_MASK) default:
    case argszMinusMinszTooSmall   // hdr->argsz - minsz < hdr->count * size
    case memdupFaults              // memdup_user(&arg->data, data_size) -> -EFAULT
    case noActionHandler           // vfio_pci_set_irqs_ioctl: func == NULL -> -ENOTTY
}

/// `vfio_set_irqs_validate_and_prepare()` (drivers/vfio/vfio_main.c), then what
/// `vfio_pci_ioctl_set_irqs()` does with its result (copy `data_size` bytes of data) and
/// the action switch of `vfio_pci_set_irqs_ioctl()`. C integer conversions are spelled
/// out: `int` operands compared with `u32` ones convert to `unsigned int`; u32 sums wrap.
private func kernelSetIRQs(
    argsz: UInt32, flags: UInt32, index: UInt32, start: UInt32, count: UInt32,
    numIrqs: Int32, maxIrqType: Int32, bytesPresent: Int?
) -> Result<Int, KernelIRQSetCause> {
    let VFIO_IRQ_SET_DATA_NONE: UInt32 = 1 << 0
    let VFIO_IRQ_SET_DATA_BOOL: UInt32 = 1 << 1
    let VFIO_IRQ_SET_DATA_EVENTFD: UInt32 = 1 << 2
    let VFIO_IRQ_SET_ACTION_MASK: UInt32 = 1 << 3
    let VFIO_IRQ_SET_ACTION_UNMASK: UInt32 = 1 << 4
    let VFIO_IRQ_SET_ACTION_TRIGGER: UInt32 = 1 << 5
    let VFIO_IRQ_SET_DATA_TYPE_MASK = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD
    let VFIO_IRQ_SET_ACTION_TYPE_MASK = VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER
    let U32_MAX = UInt32.max

    // unsigned long minsz = offsetofend(struct vfio_irq_set, count);
    let minsz: UInt64 = 20
    var size: UInt64 // size_t
    var dataSize: UInt64 = 0

    // if ((hdr->argsz < minsz) || (hdr->index >= max_irq_type) ||
    //     (hdr->count >= (U32_MAX - hdr->start)) ||
    //     (hdr->flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)))
    //         return -EINVAL;
    if UInt64(argsz) < minsz { return .failure(.argszLessThanMinsz) }
    if index >= UInt32(bitPattern: maxIrqType) { return .failure(.indexAtLeastMax) }
    if count >= (U32_MAX &- start) { return .failure(.countAtLeastMaxMinusStart) }
    if flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK) != 0 { return .failure(.flagsOutsideMasks) }

    // if (hdr->start >= num_irqs || hdr->start + hdr->count > num_irqs) return -EINVAL;
    if start >= UInt32(bitPattern: numIrqs) || start &+ count > UInt32(bitPattern: numIrqs) {
        return .failure(.startOrEndPastNumIrqs)
    }

    // switch (hdr->flags & VFIO_IRQ_SET_DATA_TYPE_MASK)
    switch flags & VFIO_IRQ_SET_DATA_TYPE_MASK {
    case VFIO_IRQ_SET_DATA_NONE: size = 0
    case VFIO_IRQ_SET_DATA_BOOL: size = 1     // sizeof(uint8_t)
    case VFIO_IRQ_SET_DATA_EVENTFD: size = 4  // sizeof(int32_t)
    default: return .failure(.dataTypeSwitchDefault)
    }

    // if (size) { if (hdr->argsz - minsz < hdr->count * size) return -EINVAL; *data_size = hdr->count * size; }
    if size != 0 {
        if UInt64(argsz) &- minsz < UInt64(count) &* size { return .failure(.argszMinusMinszTooSmall) }
        dataSize = UInt64(count) * size
    }

    // vfio_pci_ioctl_set_irqs: if (data_size) { data = memdup_user(&arg->data, data_size); ... }
    if dataSize != 0, let present = bytesPresent, UInt64(present) < dataSize {
        return .failure(.memdupFaults)
    }

    // vfio_pci_set_irqs_ioctl: switch (flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) { case MASK/UNMASK/TRIGGER } ; if (!func) return -ENOTTY;
    switch flags & VFIO_IRQ_SET_ACTION_TYPE_MASK {
    case VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_ACTION_TRIGGER: break
    default: return .failure(.noActionHandler)
    }
    return .success(Int(dataSize))
}

private func expectedViolation(_ cause: KernelIRQSetCause) -> IRQSetValidation.Violation {
    switch cause {
    case .argszLessThanMinsz: return .argszBelowHeader
    case .indexAtLeastMax: return .indexOutOfRange
    case .countAtLeastMaxMinusStart: return .startCountOverflow
    case .flagsOutsideMasks: return .unknownFlags
    case .startOrEndPastNumIrqs: return .vectorsOutOfRange
    case .dataTypeSwitchDefault: return .dataTypeNotExactlyOne
    case .argszMinusMinszTooSmall: return .argszBelowData
    case .memdupFaults: return .dataMissing
    case .noActionHandler: return .actionNotExactlyOne
    }
}

// MARK: - Tests

@Suite struct HelperIRQSetTests {
    typealias F = IRQSetFlags

    private func validate(_ flags: F, index: UInt32 = 0, start: UInt32, count: UInt32, argsz: UInt32? = nil,
                          irqs: UInt32, indexes: UInt32 = 5, present: Int? = nil) -> Result<Int, VFIOError> {
        let size = IRQSetValidation.elementSize(flags) ?? 0
        let header = IRQSetHeader(argsz: argsz ?? UInt32(20 + Int(count) * size), flags: flags, index: index, start: start, count: count)
        do {
            return .success(try IRQSetValidation.validateAndPrepare(header, irqCount: irqs, indexCount: indexes, dataBytesPresent: present))
        } catch {
            return .failure(error)
        }
    }

    struct Row: Sendable, CustomStringConvertible {
        var name: String
        var flags: IRQSetFlags
        var index: UInt32 = 0
        var start: UInt32
        var count: UInt32
        var argsz: UInt32? = nil
        var irqs: UInt32
        var indexes: UInt32 = 5
        var present: Int? = nil
        /// The data size on success, else the rule broken.
        var expected: Result<Int, IRQSetValidation.Violation>
        var description: String { name }
    }

    static let rows: [Row] = [
        Row(name: "NONE|TRIGGER count 0 disables (start 0, 1 vector)", flags: [.dataNone, .actionTrigger], start: 0, count: 0, irqs: 1, expected: .success(0)),
        Row(name: "NONE|MASK one vector", flags: [.dataNone, .actionMask], start: 0, count: 1, irqs: 1, expected: .success(0)),
        Row(name: "BOOL|UNMASK three vectors", flags: [.dataBool, .actionUnmask], start: 1, count: 3, irqs: 4, expected: .success(3)),
        Row(name: "EVENTFD|TRIGGER two vectors", flags: [.dataEventfd, .actionTrigger], index: 2, start: 0, count: 2, irqs: 2, expected: .success(8)),
        Row(name: "EVENTFD extra argsz is fine", flags: [.dataEventfd, .actionTrigger], start: 0, count: 2, argsz: 100, irqs: 2, expected: .success(8)),
        Row(name: "NONE ignores argsz beyond header", flags: [.dataNone, .actionTrigger], start: 0, count: 4, argsz: 20, irqs: 4, expected: .success(0)),
        Row(name: "exact data present", flags: [.dataBool, .actionMask], start: 0, count: 5, irqs: 8, present: 5, expected: .success(5)),
        Row(name: "argsz 19", flags: [.dataNone, .actionTrigger], start: 0, count: 0, argsz: 19, irqs: 1, expected: .failure(.argszBelowHeader)),
        Row(name: "argsz 0 beats every later rule", flags: F(rawValue: 0xffff_ffff), index: 99, start: .max, count: .max, argsz: 0, irqs: 0, expected: .failure(.argszBelowHeader)),
        Row(name: "index == max", flags: [.dataNone, .actionTrigger], index: 5, start: 0, count: 0, irqs: 1, expected: .failure(.indexOutOfRange)),
        Row(name: "index beats overflow", flags: [.dataNone, .actionTrigger], index: 7, start: .max, count: 1, irqs: 1, expected: .failure(.indexOutOfRange)),
        Row(name: "start + count == U32_MAX is refused", flags: [.dataNone, .actionTrigger], start: 1, count: .max - 1, argsz: 20, irqs: .max, expected: .failure(.startCountOverflow)),
        Row(name: "start U32_MAX count 0 is refused", flags: [.dataNone, .actionTrigger], start: .max, count: 0, irqs: .max, expected: .failure(.startCountOverflow)),
        Row(name: "start + count == U32_MAX - 1 passes the guard", flags: [.dataNone, .actionTrigger], start: 2, count: .max - 3, argsz: 20, irqs: .max, expected: .success(0)),
        Row(name: "overflow beats unknown flags", flags: F(rawValue: 1 << 6), start: 10, count: .max - 10, irqs: 1, expected: .failure(.startCountOverflow)),
        Row(name: "unknown flag bit 6", flags: F(rawValue: 1 << 6 | 1 | 1 << 5), start: 0, count: 0, irqs: 1, expected: .failure(.unknownFlags)),
        Row(name: "unknown flags beat range", flags: F(rawValue: 1 << 31 | 1 | 1 << 5), start: 9, count: 0, irqs: 1, expected: .failure(.unknownFlags)),
        Row(name: "count 0 still needs start < num_irqs", flags: [.dataNone, .actionTrigger], start: 1, count: 0, irqs: 1, expected: .failure(.vectorsOutOfRange)),
        Row(name: "index with no vectors refuses count 0", flags: [.dataNone, .actionTrigger], start: 0, count: 0, irqs: 0, expected: .failure(.vectorsOutOfRange)),
        Row(name: "start + count past the vectors", flags: [.dataBool, .actionTrigger], start: 2, count: 3, irqs: 4, expected: .failure(.vectorsOutOfRange)),
        Row(name: "range beats data type", flags: [.actionTrigger], start: 4, count: 0, irqs: 4, expected: .failure(.vectorsOutOfRange)),
        Row(name: "no data type", flags: [.actionTrigger], start: 0, count: 1, irqs: 4, expected: .failure(.dataTypeNotExactlyOne)),
        Row(name: "two data types", flags: [.dataBool, .dataEventfd, .actionTrigger], start: 0, count: 1, argsz: 100, irqs: 4, expected: .failure(.dataTypeNotExactlyOne)),
        Row(name: "data type beats missing action", flags: [.dataNone, .dataBool], start: 0, count: 1, irqs: 4, expected: .failure(.dataTypeNotExactlyOne)),
        Row(name: "eventfd argsz one byte short", flags: [.dataEventfd, .actionTrigger], start: 0, count: 2, argsz: 27, irqs: 2, expected: .failure(.argszBelowData)),
        Row(name: "bool argsz exactly the header", flags: [.dataBool, .actionMask], start: 0, count: 1, argsz: 20, irqs: 2, expected: .failure(.argszBelowData)),
        Row(name: "argsz beats missing action", flags: [.dataBool], start: 0, count: 1, argsz: 20, irqs: 2, expected: .failure(.argszBelowData)),
        Row(name: "data bytes missing", flags: [.dataEventfd, .actionTrigger], start: 0, count: 2, irqs: 2, present: 7, expected: .failure(.dataMissing)),
        Row(name: "DATA_NONE needs no bytes present", flags: [.dataNone, .actionTrigger], start: 0, count: 2, irqs: 2, present: 0, expected: .success(0)),
        Row(name: "missing data beats missing action", flags: [.dataBool, .actionMask, .actionUnmask], start: 0, count: 2, irqs: 2, present: 1, expected: .failure(.dataMissing)),
        Row(name: "no action", flags: [.dataNone], start: 0, count: 1, irqs: 2, expected: .failure(.actionNotExactlyOne)),
        Row(name: "two actions", flags: [.dataNone, .actionMask, .actionTrigger], start: 0, count: 1, irqs: 2, expected: .failure(.actionNotExactlyOne)),
        Row(name: "three actions", flags: [.dataEventfd, .actionMask, .actionUnmask, .actionTrigger], start: 0, count: 1, irqs: 2, expected: .failure(.actionNotExactlyOne)),
    ]

    @Test(arguments: rows) func kernelRule(_ row: Row) throws {
        let result = validate(row.flags, index: row.index, start: row.start, count: row.count, argsz: row.argsz,
                              irqs: row.irqs, indexes: row.indexes, present: row.present)
        switch (result, row.expected) {
        case (.success(let size), .success(let want)):
            #expect(size == want)
        case (.failure(let error), .failure(let violation)):
            #expect(error.operation == "vfio_set_irqs_validate_and_prepare")
            guard case .invalidArgument(let message) = error.reason else {
                Issue.record("expected invalidArgument, got \(error)")
                return
            }
            #expect(message.hasPrefix(violation.summary + ": "), "\(message)")
            #expect(message.count > violation.summary.count + 10, "\(message)")
        default:
            Issue.record("\(row.name): got \(result), expected \(row.expected)")
        }
        // The reference transcription agrees with every row.
        let reference = kernelSetIRQs(argsz: row.argsz ?? UInt32(20 + Int(row.count) * (IRQSetValidation.elementSize(row.flags) ?? 0)),
                                      flags: row.flags.rawValue, index: row.index, start: row.start, count: row.count,
                                      numIrqs: Int32(bitPattern: row.irqs), maxIrqType: Int32(bitPattern: row.indexes), bytesPresent: row.present)
        #expect(reference.mapError(expectedViolation) == row.expected)
    }

    @Test func summariesAreDistinctAndNoneIsAPrefixOfAnother() {
        let all = IRQSetValidation.Violation.allCases.map(\.summary)
        #expect(Set(all).count == all.count)
        for a in all { for b in all where a != b { #expect(!b.hasPrefix(a)) } }
    }

    @Test func firstViolationAgreesWithValidate() {
        let header = IRQSetHeader(argsz: 20, flags: [.dataBool, .actionMask], index: 0, start: 0, count: 1)
        #expect(IRQSetValidation.firstViolation(header, irqCount: 1, indexCount: 1) == .argszBelowData)
        #expect(IRQSetValidation.firstViolation(IRQSetHeader(argsz: 21, flags: [.dataBool, .actionMask], index: 0, start: 0, count: 1),
                                                irqCount: 1, indexCount: 1) == nil)
    }

    /// One million random headers, each checked against the transcription of the kernel.
    @Test func millionRandomHeadersMatchTheKernel() {
        var rng = SplitMix64(seed: 0x1_2345_6789)
        let validData: [UInt32] = [1, 2, 4]
        let validAction: [UInt32] = [8, 16, 32]
        var mismatches: [String] = []
        var seen: [IRQSetValidation.Violation: Int] = [:]
        var successes = 0

        @inline(__always) func pick(_ n: UInt64) -> UInt64 { rng.next() % n }

        for _ in 0..<1_000_000 {
            // Flags: mostly one data type and one action, sometimes any mix of the six
            // defined bits, sometimes an undefined bit on top.
            var flags: UInt32
            switch pick(10) {
            case 0..<6: flags = validData[Int(pick(3))] | validAction[Int(pick(3))]
            case 6..<9: flags = UInt32(pick(64))
            default: flags = validData[Int(pick(3))] | validAction[Int(pick(3))] | (1 << UInt32(6 + pick(26)))
            }
            let maxIrqType: UInt32 = pick(16) == 0 ? UInt32(truncatingIfNeeded: rng.next()) : UInt32(pick(9))
            let index: UInt32 = pick(8) == 0 ? UInt32(truncatingIfNeeded: rng.next()) : UInt32(pick(UInt64(maxIrqType) &+ 2 == 0 ? 1 : min(UInt64(maxIrqType) + 2, 16)))
            let numIrqs: UInt32
            switch pick(8) {
            case 0: numIrqs = 0
            case 1: numIrqs = UInt32.max - UInt32(pick(4))
            case 2: numIrqs = UInt32(truncatingIfNeeded: rng.next())
            case 3: numIrqs = UInt32(Int32.max) + UInt32(pick(3)) - 1
            default: numIrqs = UInt32(1 + pick(2048))
            }
            let start: UInt32
            switch pick(10) {
            case 0: start = 0
            case 1: start = UInt32.max - UInt32(pick(4))
            case 2: start = numIrqs &- UInt32(pick(3))
            case 3: start = UInt32(truncatingIfNeeded: rng.next())
            default: start = numIrqs == 0 ? UInt32(pick(3)) : UInt32(pick(UInt64(numIrqs) + 1))
            }
            let count: UInt32
            switch pick(12) {
            case 0: count = 0
            case 1: count = 1
            case 2: count = UInt32.max &- start &- UInt32(pick(3))   // the guard's boundary
            case 3: count = UInt32.max - UInt32(pick(3))
            case 4: count = UInt32(truncatingIfNeeded: rng.next())
            case 5, 6: count = numIrqs &- start &+ UInt32(pick(3)) &- 1 // around the last vector
            default: count = UInt32(pick(64))
            }
            let element: UInt64 = { switch pick(3) { case 0: return 0; case 1: return 1; default: return 4 } }()
            let needed = 20 + UInt64(count) * element
            let argsz: UInt32
            switch pick(10) {
            case 0: argsz = UInt32(pick(21))
            case 1: argsz = UInt32(truncatingIfNeeded: rng.next())
            default: argsz = UInt32(truncatingIfNeeded: min(needed + pick(3), UInt64(UInt32.max)) &- pick(2))
            }
            let present: Int?
            switch pick(3) {
            case 0: present = nil
            case 1: present = Int(max(0, Int64(UInt64(argsz)) - 20 - Int64(pick(3))))
            default: present = Int(pick(256))
            }

            let reference = kernelSetIRQs(argsz: argsz, flags: flags, index: index, start: start, count: count,
                                          numIrqs: Int32(bitPattern: numIrqs), maxIrqType: Int32(bitPattern: maxIrqType), bytesPresent: present)
            let header = IRQSetHeader(argsz: argsz, flags: IRQSetFlags(rawValue: flags), index: index, start: start, count: count)
            do {
                let size = try IRQSetValidation.validateAndPrepare(header, irqCount: numIrqs, indexCount: maxIrqType, dataBytesPresent: present)
                successes += 1
                if case .success(let want) = reference, want == size { continue }
                if mismatches.count < 10 { mismatches.append("\(header) irqs \(numIrqs) max \(maxIrqType) present \(String(describing: present)): got \(size), kernel \(reference)") }
            } catch {
                guard case .failure(let cause) = reference else {
                    if mismatches.count < 10 { mismatches.append("\(header) irqs \(numIrqs) max \(maxIrqType): threw \(error), kernel accepts \(reference)") }
                    continue
                }
                let violation = expectedViolation(cause)
                seen[violation, default: 0] += 1
                if error.operation != "vfio_set_irqs_validate_and_prepare" { mismatches.append("operation \(error.operation)") }
                guard case .invalidArgument(let message) = error.reason,
                      message.hasPrefix(violation.summary),
                      message.count > violation.summary.count + 2 else {
                    if mismatches.count < 10 { mismatches.append("\(header) irqs \(numIrqs) max \(maxIrqType): \(error), kernel cause \(cause)") }
                    continue
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
        // The generator reaches every rule and the success path often.
        for violation in IRQSetValidation.Violation.allCases {
            #expect(seen[violation, default: 0] >= 1000, "\(violation) hit \(seen[violation, default: 0]) times")
        }
        #expect(successes >= 50_000, "only \(successes) accepted headers")
    }
}
