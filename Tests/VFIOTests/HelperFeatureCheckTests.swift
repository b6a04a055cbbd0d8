import Testing
@testable import VFIO

/// `vfio_ioctl_device_feature()`'s checks on the header, then `vfio_check_feature()`
/// (include/linux/vfio.h), transcribed. Returns the C return value: -EINVAL (as -22), 0
/// (probe answered) or 1 (do the GET or SET), with the index of the check that refused.
private func kernelFeatureCheck(flags: UInt32, argsz: UInt32, supportedOps: UInt32, minsz: Int) -> (ret: Int, rule: Int) {
    let VFIO_DEVICE_FEATURE_MASK: UInt32 = 0xffff
    let VFIO_DEVICE_FEATURE_GET: UInt32 = 1 << 16
    let VFIO_DEVICE_FEATURE_SET: UInt32 = 1 << 17
    let VFIO_DEVICE_FEATURE_PROBE: UInt32 = 1 << 18
    let EINVAL = 22
    // size_t minsz = offsetofend(struct vfio_device_feature, flags);
    let headerMinsz: UInt32 = 8
    // if (feature.argsz < minsz) return -EINVAL;
    if argsz < headerMinsz { return (-EINVAL, 1) }
    // if (feature.flags & ~(MASK | SET | GET | PROBE)) return -EINVAL;
    if flags & ~(VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE) != 0 { return (-EINVAL, 2) }
    // if (!(flags & PROBE) && (flags & SET) && (flags & GET)) return -EINVAL;
    if flags & VFIO_DEVICE_FEATURE_PROBE == 0 && flags & VFIO_DEVICE_FEATURE_SET != 0 && flags & VFIO_DEVICE_FEATURE_GET != 0 { return (-EINVAL, 3) }
    // handler(device, feature.flags, arg->data, feature.argsz - minsz)
    let payload = Int(argsz - headerMinsz)
    // vfio_check_feature(flags, argsz, supported_ops, minsz):
    if (flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) & ~supportedOps != 0 { return (-EINVAL, 4) }
    if flags & VFIO_DEVICE_FEATURE_PROBE != 0 { return (0, 0) }
    if flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET) == 0 { return (-EINVAL, 5) }
    if payload < minsz { return (-EINVAL, 6) }
    return (1, 0)
}

@Suite struct HelperFeatureCheckTests {
    typealias Flags = DeviceFeatureFlags

    struct Row: Sendable, CustomStringConvertible {
        var name: String
        var ops: DeviceFeatureFlags
        var argsz: UInt32
        var supported: DeviceFeatureFlags
        var minimum: Int
        /// The decision, or a phrase the error must contain.
        var expected: Result<DeviceFeatureCheck.Decision, Phrase>
        var description: String { name }
    }
    struct Phrase: Error, Equatable, Sendable { var text: String; init(_ text: String) { self.text = text } }

    static let rows: [Row] = [
        // DMA_LOGGING_REPORT: GET only, 32-byte payload.
        Row(name: "GET supported", ops: .get, argsz: 40, supported: .get, minimum: 32, expected: .success(.get)),
        Row(name: "GET with a larger buffer", ops: .get, argsz: 4096, supported: .get, minimum: 32, expected: .success(.get)),
        Row(name: "GET payload one byte short", ops: .get, argsz: 39, supported: .get, minimum: 32, expected: .failure(Phrase("31-byte payload, below the 32 bytes"))),
        Row(name: "SET on a GET-only feature", ops: .set, argsz: 40, supported: .get, minimum: 32, expected: .failure(Phrase("SET not supported"))),
        Row(name: "PROBE|SET on a GET-only feature", ops: [.probe, .set], argsz: 8, supported: .get, minimum: 32, expected: .failure(Phrase("SET not supported"))),
        Row(name: "PROBE|GET answers without payload", ops: [.probe, .get], argsz: 8, supported: .get, minimum: 32, expected: .success(.probeAnswered)),
        Row(name: "bare PROBE answers", ops: .probe, argsz: 8, supported: .get, minimum: 32, expected: .success(.probeAnswered)),
        Row(name: "nothing requested", ops: [], argsz: 40, supported: .get, minimum: 32, expected: .failure(Phrase("neither GET, SET nor PROBE"))),
        // MIG_DEVICE_STATE: GET and SET, 8-byte payload.
        Row(name: "SET supported", ops: .set, argsz: 16, supported: [.get, .set], minimum: 8, expected: .success(.set)),
        Row(name: "GET and SET without PROBE", ops: [.get, .set], argsz: 16, supported: [.get, .set], minimum: 8, expected: .failure(Phrase("GET and SET requested together without PROBE"))),
        Row(name: "GET|SET|PROBE answers", ops: [.get, .set, .probe], argsz: 8, supported: [.get, .set], minimum: 8, expected: .success(.probeAnswered)),
        Row(name: "GET|SET|PROBE on a SET-only feature", ops: [.get, .set, .probe], argsz: 8, supported: .set, minimum: 0, expected: .failure(Phrase("GET not supported"))),
        Row(name: "GET|SET|PROBE on a feature with neither", ops: [.get, .set, .probe], argsz: 8, supported: [], minimum: 0, expected: .failure(Phrase("GET and SET not supported"))),
        // DMA_LOGGING_STOP: SET, no payload.
        Row(name: "SET with no payload needed", ops: .set, argsz: 8, supported: .set, minimum: 0, expected: .success(.set)),
        Row(name: "argsz below the header", ops: .set, argsz: 7, supported: .set, minimum: 0, expected: .failure(Phrase("argsz 7 is below the 8-byte"))),
        Row(name: "unknown operation bit", ops: [.set, Flags(rawValue: 1 << 19)], argsz: 8, supported: .set, minimum: 0, expected: .failure(Phrase("unknown flag bits 0x80000"))),
        Row(name: "unknown bit beats GET|SET", ops: [.get, .set, Flags(rawValue: 1 << 31)], argsz: 8, supported: .set, minimum: 0, expected: .failure(Phrase("unknown flag bits 0x80000000"))),
        Row(name: "argsz beats unknown bits", ops: [Flags(rawValue: 1 << 31)], argsz: 0, supported: .set, minimum: 0, expected: .failure(Phrase("argsz 0"))),
        Row(name: "unsupported beats missing payload", ops: .get, argsz: 8, supported: .set, minimum: 64, expected: .failure(Phrase("GET not supported"))),
    ]

    @Test(arguments: rows) func kernelRule(_ row: Row) {
        let flags = Flags(feature: 8, row.ops)
        let result: Result<DeviceFeatureCheck.Decision, VFIOError>
        do { result = .success(try DeviceFeatureCheck.check(flags: flags, argsz: row.argsz, supported: row.supported, payloadMinimum: row.minimum)) }
        catch { result = .failure(error) }
        switch (result, row.expected) {
        case (.success(let got), .success(let want)):
            #expect(got == want)
        case (.failure(let error), .failure(let phrase)):
            #expect(error.operation == "vfio_check_feature")
            if case .invalidArgument(let why) = error.reason {
                #expect(why.contains(phrase.text), "\(why)")
            } else {
                Issue.record("wrong reason: \(error)")
            }
        default:
            Issue.record("got \(result), expected \(row.expected)")
        }
    }

    /// Every combination of operation bits (plus an undefined bit), supported set, argsz
    /// near the boundaries and payload minimum, against the transcription of the kernel.
    @Test func exhaustiveAgainstTheKernel() {
        let opBits: [UInt32] = [1 << 16, 1 << 17, 1 << 18, 1 << 20]
        var checked = 0
        for opMask in 0..<16 {
            var ops: UInt32 = 0
            for (i, bit) in opBits.enumerated() where opMask & (1 << i) != 0 { ops |= bit }
            for supportedMask in 0..<4 {
                let supported = UInt32(supportedMask) << 16
                for minimum in [0, 1, 8, 32] {
                    for argsz in Set<UInt32>([0, 7, 8, 9, UInt32(8 + minimum) - 1, UInt32(8 + minimum), UInt32(8 + minimum + 1), 4096, .max]) {
                        for feature: UInt32 in [0, 8, 0xffff] {
                            let flags = feature | ops
                            let kernel = kernelFeatureCheck(flags: flags, argsz: argsz, supportedOps: supported, minsz: minimum)
                            let ours: Result<DeviceFeatureCheck.Decision, VFIOError>
                            do {
                                ours = .success(try DeviceFeatureCheck.check(flags: Flags(rawValue: flags), argsz: argsz,
                                                                             supported: Flags(rawValue: supported), payloadMinimum: minimum))
                            } catch { ours = .failure(error) }
                            switch (kernel.ret, ours) {
                            case (0, .success(.probeAnswered)): break
                            case (1, .success(.get)): #expect(flags & (1 << 16) != 0)
                            case (1, .success(.set)): #expect(flags & (1 << 17) != 0 && flags & (1 << 16) == 0)
                            case (-22, .failure(let error)):
                                guard case .invalidArgument(let why) = error.reason, !why.isEmpty else {
                                    Issue.record("flags \(flags) argsz \(argsz): \(error)")
                                    break
                                }
                                let phrase = [1: "argsz", 2: "unknown flag bits", 3: "together without PROBE",
                                              4: "not supported", 5: "neither GET, SET nor PROBE", 6: "payload"][kernel.rule]!
                                #expect(why.contains(phrase), "rule \(kernel.rule): \(why)")
                            default:
                                Issue.record("flags 0x\(String(flags, radix: 16)) argsz \(argsz) supported 0x\(String(supported, radix: 16)) min \(minimum): kernel \(kernel), ours \(ours)")
                            }
                            checked += 1
                        }
                    }
                }
            }
        }
        #expect(checked > 5000)
    }
}
