import Testing
@testable import VFIO
import TestSupport

/// Random bytes, eight per generator step (the generator's own byte helper is too slow
/// for a million buffers in a debug build).
private func randomBytes(_ rng: inout SplitMix64, _ count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var i = 0
    while i < count {
        var word = rng.next()
        var k = 0
        while k < 8 && i < count {
            out[i] = UInt8(truncatingIfNeeded: word)
            word >>= 8
            i += 1
            k += 1
        }
    }
    return out
}

private func putLE32(_ buffer: inout [UInt8], _ at: Int, _ value: UInt32) {
    buffer[at] = UInt8(truncatingIfNeeded: value)
    buffer[at + 1] = UInt8(truncatingIfNeeded: value >> 8)
    buffer[at + 2] = UInt8(truncatingIfNeeded: value >> 16)
    buffer[at + 3] = UInt8(truncatingIfNeeded: value >> 24)
}

/// A well-formed reply: `prefix` unrelated bytes, then an info struct with a `fixed`-byte
/// fixed part and a chain built by `CapabilityChain.build`.
private struct ChainTemplate {
    var buffer: [UInt8]
    var structStart: Int
    var fixedSize: Int
    var firstOffset: UInt32
    /// Offsets of each capability header from the struct start.
    var capOffsets: [Int]
    var length: Int { buffer.count - structStart }
}

private func makeTemplate(_ rng: inout SplitMix64) -> ChainTemplate {
    let prefix = [0, 0, 0, 8, 3][Int(rng.next() % 5)]
    let fixed = 4 * Int(1 + rng.next() % 16)
    let base = CapabilityChain.alignedStart(after: fixed)
    var caps: [InfoCapability] = []
    var offsets: [Int] = []
    var at = base
    for _ in 0..<Int(1 + rng.next() % 5) {
        let body = randomBytes(&rng, Int(rng.next() % 25))
        caps.append(InfoCapability(id: UInt16(truncatingIfNeeded: rng.next()), version: UInt16(truncatingIfNeeded: rng.next()), body: body))
        offsets.append(at)
        at += (8 + body.count + 7) & ~7
    }
    var buffer = randomBytes(&rng, prefix + fixed)
    buffer += [UInt8](repeating: 0, count: base - fixed)
    buffer += CapabilityChain.build(caps, baseOffset: base)
    return ChainTemplate(buffer: buffer, structStart: prefix, fixedSize: fixed, firstOffset: UInt32(base), capOffsets: offsets)
}

/// Walks the chain independently and checks that `caps` is what it holds: each header
/// inside the reply, offsets strictly increasing, bodies reaching the next header (or the
/// reply's end for the last). Returns a description of the first discrepancy.
private func checkAccepted(_ caps: [InfoCapability], _ buffer: [UInt8], structStart: Int, first: UInt32, fixed: Int, length: Int) -> String? {
    if first == 0 { return caps.isEmpty ? nil : "capabilities returned without a chain" }
    let limit = min(length, buffer.count - structStart)
    var offset = Int(first)
    var previous = -1
    if offset < fixed { return "first capability at \(offset) inside the \(fixed)-byte fixed part" }
    if caps.isEmpty { return "chain at \(offset) accepted with no capability" }
    for (k, cap) in caps.enumerated() {
        if offset <= previous { return "offset \(offset) not above \(previous)" }
        if offset + 8 > limit || structStart + offset + 8 > buffer.count { return "header at \(offset) outside the \(limit)-byte reply" }
        let at = structStart + offset
        if cap.id != UInt16(buffer[at]) | UInt16(buffer[at + 1]) << 8 { return "id mismatch at \(offset)" }
        if cap.version != UInt16(buffer[at + 2]) | UInt16(buffer[at + 3]) << 8 { return "version mismatch at \(offset)" }
        let next = Int(le32(buffer, at + 4))
        let isLast = k == caps.count - 1
        let end: Int
        if isLast {
            if next != 0 { return "last capability links on to \(next)" }
            end = limit
        } else {
            if next < offset + 8 { return "capability at \(offset) links to \(next), not after its header" }
            end = next
        }
        if end > limit { return "body of capability at \(offset) runs to \(end), past \(limit)" }
        if cap.body.count != end - offset - 8 { return "body length \(cap.body.count) at \(offset), expected \(end - offset - 8)" }
        var i = 0
        while i < cap.body.count {
            if cap.body[i] != buffer[at + 8 + i] { return "body byte \(i) differs at \(offset)" }
            i += 1
        }
        previous = offset
        offset = next
    }
    return nil
}

@Suite struct HelperCapabilityChainFuzzTests {
    @Test func millionInputsNeverCrashAndAreAcceptedOrRejectedCleanly() {
        var rng = SplitMix64(seed: 0xCAB_C4A1)
        let templates = (0..<256).map { _ in makeTemplate(&rng) }
        var failures: [String] = []
        var accepted = 0, rejected = 0, acceptedNonEmpty = 0

        for iteration in 0..<1_000_000 {
            var buffer: [UInt8]
            var structStart = 0
            var first: UInt32
            var fixed: Int
            var length: Int
            let mode = rng.next() % 16
            if mode < 3 {
                // Unstructured bytes.
                buffer = randomBytes(&rng, Int(rng.next() % 160))
                structStart = rng.next() % 4 == 0 ? Int(rng.next() % UInt64(buffer.count + 5)) : 0
                fixed = Int(rng.next() % 64)
                switch rng.next() % 4 {
                case 0: first = 0
                case 1: first = UInt32(truncatingIfNeeded: rng.next())
                default: first = UInt32(rng.next() % 168)
                }
                switch rng.next() % 3 {
                case 0: length = buffer.count - structStart
                case 1: length = Int(rng.next() % 200)
                default: length = Int(truncatingIfNeeded: rng.next() % (1 << 33)) - (1 << 16)
                }
            } else {
                let template = templates[Int(rng.next() % UInt64(templates.count))]
                buffer = template.buffer
                structStart = template.structStart
                first = template.firstOffset
                fixed = template.fixedSize
                length = template.length
                let caps = template.capOffsets
                let k = Int(rng.next() % UInt64(caps.count))
                let nextField = structStart + caps[k] + 4
                let limit = length
                switch mode {
                case 3: break // untouched
                case 4: putLE32(&buffer, nextField, UInt32(rng.next() % UInt64(caps[k])))               // backwards (or 0: ends early)
                case 5: putLE32(&buffer, nextField, UInt32(caps[k]))                                     // to itself
                case 6: putLE32(&buffer, nextField, UInt32(limit - 7 + Int(rng.next() % 64)))           // past the end
                case 7: putLE32(&buffer, nextField, UInt32.max - UInt32(rng.next() % 16))               // far past the end
                case 8: putLE32(&buffer, nextField, UInt32(rng.next() % UInt64(fixed)))                 // into the fixed part
                case 9:                                                                                  // into some header
                    let j = Int(rng.next() % UInt64(caps.count))
                    putLE32(&buffer, nextField, UInt32(caps[j] + 1 + Int(rng.next() % 7)))
                case 10: putLE32(&buffer, nextField, UInt32(caps[k] + 1 + Int(rng.next() % 7)))         // into its own header
                case 11:                                                                                 // bad first offset
                    switch rng.next() % 3 {
                    case 0: first = UInt32(rng.next() % UInt64(fixed))
                    case 1: first = UInt32(limit - 7 + Int(rng.next() % 16))
                    default: first = UInt32(truncatingIfNeeded: rng.next())
                    }
                case 12: length = Int(rng.next() % UInt64(length + 1))                                  // argsz cut short
                case 13: length += Int(rng.next() % 64)                                                 // argsz past the buffer (clipped)
                default:                                                                                 // flip a few bytes anywhere
                    for _ in 0..<Int(1 + rng.next() % 4) where !buffer.isEmpty {
                        buffer[Int(rng.next() % UInt64(buffer.count))] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
                    }
                }
            }

            do {
                let caps = try CapabilityChain.parse(buffer, structStart: structStart, firstOffset: first, fixedSize: fixed, length: length, context: "fuzz")
                accepted += 1
                if !caps.isEmpty { acceptedNonEmpty += 1 }
                if let problem = checkAccepted(caps, buffer, structStart: structStart, first: first, fixed: fixed, length: length), failures.count < 10 {
                    failures.append("#\(iteration) accepted: \(problem)")
                }
            } catch {
                rejected += 1
                guard error.operation == "fuzz", case .malformed(let why) = error.reason, !why.isEmpty, why.contains("offset") else {
                    if failures.count < 10 { failures.append("#\(iteration) rejected with \(error)") }
                    continue
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        #expect(acceptedNonEmpty >= 100_000, "only \(acceptedNonEmpty) non-empty chains accepted")
        #expect(rejected >= 300_000, "only \(rejected) inputs rejected")
    }

    // MARK: directed rejections

    /// A 16-byte fixed part and two capabilities at 16 (8-byte body) and 32 (8-byte body).
    private func reply() -> [UInt8] {
        var buffer = [UInt8](repeating: 0xEE, count: 16)
        buffer += CapabilityChain.build([
            InfoCapability(id: 1, version: 1, body: [1, 2, 3, 4, 5, 6, 7, 8]),
            InfoCapability(id: 2, version: 1, body: [9, 9, 9, 9, 9, 9, 9, 9]),
        ], baseOffset: 16)
        return buffer
    }

    private func rejection(_ buffer: [UInt8], first: UInt32 = 16, length: Int? = nil) -> String? {
        do {
            _ = try CapabilityChain.parse(buffer, firstOffset: first, fixedSize: 16, length: length ?? buffer.count, context: "vfio_region_info")
            return nil
        } catch {
            #expect(error.operation == "vfio_region_info")
            if case .malformed(let why) = error.reason { return why }
            return "wrong reason \(error.reason)"
        }
    }

    @Test func wellFormedReplyParses() throws {
        let caps = try CapabilityChain.parse(reply(), firstOffset: 16, fixedSize: 16, length: 48, context: "t")
        #expect(caps.map(\.id) == [1, 2])
        #expect(try CapabilityChain.parse(reply(), firstOffset: 0, fixedSize: 16, length: 48, context: "t").isEmpty)
    }

    @Test func firstOffsetInsideTheFixedPart() {
        let why = rejection(reply(), first: 8)
        #expect(why == "capability offset 8 points into the 16-byte fixed part")
    }

    @Test func firstCapabilityPastTheEnd() {
        #expect(rejection(reply(), first: 44) == "capability at offset 44 runs past the end of the 48-byte reply")
        #expect(rejection(reply(), first: 16, length: 20) == "capability at offset 16 runs past the end of the 20-byte reply")
    }

    @Test func linkToItself() {
        var buffer = reply()
        putLE32(&buffer, 16 + 4, 16)
        #expect(rejection(buffer) == "capability 1 at offset 16 links to itself (a loop)")
    }

    @Test func linkBackwards() {
        var buffer = reply()
        putLE32(&buffer, 32 + 4, 16)
        #expect(rejection(buffer) == "capability 2 at offset 32 links backwards to offset 16 (a loop)")
        putLE32(&buffer, 32 + 4, 4) // into the fixed part, from a later capability
        #expect(rejection(buffer) == "capability 2 at offset 32 links backwards to offset 4 (a loop)")
    }

    @Test func linkIntoItsOwnHeader() {
        var buffer = reply()
        putLE32(&buffer, 16 + 4, 20)
        #expect(rejection(buffer) == "capability 1 at offset 16 links to offset 20, inside its own header")
    }

    @Test func linkPastTheEnd() {
        var buffer = reply()
        putLE32(&buffer, 16 + 4, 44)
        #expect(rejection(buffer) == "capability 1 at offset 16 links to offset 44, past the end of the 48-byte reply")
        putLE32(&buffer, 16 + 4, .max)
        #expect(rejection(buffer) == "capability 1 at offset 16 links to offset 4294967295, past the end of the 48-byte reply")
    }

    @Test func lengthClippedToTheBuffer() throws {
        // argsz says 4096 but only 48 bytes arrived: the last body ends at the buffer's end.
        let caps = try CapabilityChain.parse(reply(), firstOffset: 16, fixedSize: 16, length: 4096, context: "t")
        #expect(caps.last?.body.count == 8)
    }
}
