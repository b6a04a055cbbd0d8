// libFuzzer target: the capability-chain parser and the info structs that carry chains.
//
// The first byte picks what the rest of the input is fed to:
//   0  CapabilityChain.parse, with its parameters taken from the next 6 bytes
//      (struct start, fixed size, first offset, length) and the remainder as the buffer;
//   1  RegionInfo(decoding:)   2  DeviceInfo(decoding:)   3  Type1Info(decoding:)
//   4  one capability (id, version from the next 4 bytes, the remainder as its body)
//      through RegionInfoCapability, DeviceInfoCapability and Type1InfoCapability.
// Whatever decodes must survive a round trip: a parsed chain rebuilt and parsed again
// gives the same ids, versions and bodies (padded); a decoded struct re-encoded decodes,
// and after that first normalisation the encoding is a fixed point.
import VFIO

@inline(__always)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("round trip: \(message())") }
}

func le16(_ bytes: [UInt8], _ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }

func fuzzChain(_ input: [UInt8]) {
    guard input.count >= 6 else { return }
    let structStart = Int(input[0] & 15)
    let fixedSize = Int(input[1] & 63)
    let firstOffset = UInt32(le16(input, 2))
    let length = le16(input, 4)
    let buffer = Array(input[6...])
    guard let caps = try? CapabilityChain.parse(buffer, structStart: structStart, firstOffset: firstOffset,
                                               fixedSize: fixedSize, length: length, context: "fuzz") else { return }
    check(firstOffset == 0 || !caps.isEmpty, "a chain with an offset parsed to nothing")
    check(caps.reduce(0) { $0 + 8 + $1.body.count } <= buffer.count, "bodies larger than the buffer")
    // (Offset 0 means "no chain": a rebuilt chain starts at 8 at least.)
    let base = max(CapabilityChain.alignedStart(after: fixedSize), 8)
    let rebuilt = [UInt8](repeating: 0, count: base) + CapabilityChain.build(caps, baseOffset: base)
    let again: [InfoCapability]
    do {
        again = try CapabilityChain.parse(rebuilt, firstOffset: caps.isEmpty ? 0 : UInt32(base), fixedSize: fixedSize,
                                          length: rebuilt.count, context: "fuzz")
    } catch {
        fatalError("round trip: a rebuilt chain does not parse: \(error)")
    }
    check(again.count == caps.count, "\(caps.count) capabilities became \(again.count)")
    for (a, b) in zip(caps, again) {
        check(a.id == b.id && a.version == b.version, "id/version changed")
        check(b.body.count >= a.body.count && b.body.count - a.body.count < 8 && Array(b.body.prefix(a.body.count)) == a.body,
              "body of capability \(a.id) changed")
    }
}

func fuzzStruct<S: KernelStruct>(_ type: S.Type, _ input: [UInt8]) {
    guard let first = try? S(decoding: input) else { return }
    let second: S
    let third: S
    do {
        second = try S(decoding: first.encoded())
        third = try S(decoding: second.encoded())
    } catch {
        fatalError("round trip: \(S.cName) decoded from the input, re-encoded, does not decode: \(error)")
    }
    check(second == third, "\(S.cName) is not stable after a round trip: \(second) vs \(third)")
    check(second.encoded() == third.encoded(), "\(S.cName) encodings differ")
}

func fuzzCapability(_ input: [UInt8]) {
    guard input.count >= 4 else { return }
    let raw = InfoCapability(id: UInt16(le16(input, 0)), version: UInt16(le16(input, 2)), body: Array(input[4...]))
    if let a = try? RegionInfoCapability(raw) {
        guard let b = try? RegionInfoCapability(a.infoCapability) else { fatalError("round trip: region capability \(a)") }
        if case .unknown = a {} else { check(a == b, "region capability \(a) became \(b)") }
    }
    if let a = try? DeviceInfoCapability(raw) {
        guard let b = try? DeviceInfoCapability(a.infoCapability) else { fatalError("round trip: device capability \(a)") }
        if case .unknown = a {} else { check(a == b, "device capability \(a) became \(b)") }
    }
    if let a = try? Type1InfoCapability(raw) {
        guard let b = try? Type1InfoCapability(a.infoCapability) else { fatalError("round trip: type1 capability \(a)") }
        if case .unknown = a {} else { check(a == b, "type1 capability \(a) became \(b)") }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let rest = Array(input[1...])
    switch input[0] % 5 {
    case 0: fuzzChain(rest)
    case 1: fuzzStruct(RegionInfo.self, rest)
    case 2: fuzzStruct(DeviceInfo.self, rest)
    case 3: fuzzStruct(Type1Info.self, rest)
    default: fuzzCapability(rest)
    }
    return 0
}
