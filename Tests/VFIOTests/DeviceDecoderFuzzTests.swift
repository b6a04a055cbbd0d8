import Testing
@testable import VFIO
import TestSupport

/// Random and mutated buffers through every decoder of this area: each must either throw
/// `VFIOError` or return a value whose encoding decodes again and re-encodes to the same
/// bytes. A crash (an out-of-bounds read or an arithmetic trap) fails the whole run.
@Suite struct DeviceDecoderFuzzTests {
    static let seeds: [[UInt8]] = [
        DeviceInfoTests.sample.encoded(),
        RegionInfoTests.sample.encoded(),
        IRQSet.enableMSIX([3, 4, -1]).encoded(),
        IRQSet(index: 0, action: .mask, data: .bools([true, false])).encoded(),
        DeviceHotResetTests.cdevInfo.encoded(),
        PCIHotReset(fds: [1, 2]).encoded(),
        IOEventfd(width: .bits32, offset: 64, data: 1, fd: 5).encoded(),
        DeviceGFXTests.plane.encoded(),
    ]

    func check<T: KernelStruct>(_ type: T.Type, _ bytes: [UInt8]) {
        guard let value = try? T(decoding: bytes) else { return }
        // A raw capability's body may gain zero padding to 8 bytes on its first re-encoding;
        // from then on the encoding must be stable.
        let once = value.encoded()
        let again = try? T(decoding: once)
        #expect(again?.encoded() == once, "\(T.cName) re-encoding of a fuzzed value is not stable: \(value) from \(bytes)")
    }

    func checkAll(_ bytes: [UInt8]) {
        check(DeviceInfo.self, bytes)
        check(RegionInfo.self, bytes)
        check(IRQInfo.self, bytes)
        check(IRQSet.self, bytes)
        check(PCIHotResetInfo.self, bytes)
        check(PCIHotReset.self, bytes)
        check(GFXPlaneInfo.self, bytes)
        check(IOEventfd.self, bytes)
        check(GroupStatus.self, bytes)
        _ = try? PCIHotResetInfo.reply(bytes)
    }

    @Test func mutatedEncodingsNeverTrap() {
        var rng = SplitMix64(seed: 0x5EED_DE71CE)
        for _ in 0..<3000 {
            var bytes = Self.seeds.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[at] = UInt8.random(in: 0...255, using: &rng)
            }
            if Bool.random(using: &rng) {
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            }
            checkAll(bytes)
        }
    }

    @Test func randomBuffersNeverTrap() {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<2000 {
            var bytes = rng.bytes(Int.random(in: 0...96, using: &rng))
            // Keep argsz plausible half of the time so the decoders get past the first check.
            if bytes.count >= 4, Bool.random(using: &rng) {
                let argsz = UInt32(Int.random(in: 0...bytes.count + 16, using: &rng))
                for i in 0..<4 { bytes[i] = UInt8(truncatingIfNeeded: argsz >> (8 * UInt32(i))) }
            }
            checkAll(bytes)
        }
    }
}
