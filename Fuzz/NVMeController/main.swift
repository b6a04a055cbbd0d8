// libFuzzer target: the NVMe controller model (`NVMeDevice`) against a hostile guest.
//
// One input is a script of guest actions against a fresh controller (one RAM namespace
// of 128 KiB in 512-byte blocks, 4 I/O queue pairs) attached to an `InMemoryDeviceContext`
// whose DMA space is 64 KiB of guest memory at IOVA 0 (anything else the guest names,
// a queue base, a PRP, a PRP list entry, a doorbell buffer, is outside memory and fails
// with EFAULT). After every action the target waits until the controller's worker has
// gone to sleep with nothing it can do (`waitUntilQuiescent`; not after reads, guest
// memory writes and refused writes, which cannot wake it), so that each input runs
// the same way every time; a worker that does not settle within 5 s aborts. The device
// is released at the end of the input (its worker joined; LeakSanitizer checks memory).
// At most 256 actions of an input run.
//
// Actions, each an opcode byte (modulo 12) and little-endian operands; an action cut
// short by the end of the input ends the script:
//   0  BAR0 write, 4 bytes        offset u16, value u32
//   1  BAR0 write, 8 bytes        offset u16, value u64
//   2  BAR0 read                  offset u16, width u8 (1...8)
//   3  BAR0 write, any width      offset u16, width u8 (1...8), that many bytes
//   4  guest memory write         address u32 (modulo the memory), count u8, bytes
//   5  command (64-byte entry)    address u32 (modulo the memory), 64 bytes
//   6  doorbell                   queue u8, which u8 (bit 0: completion head), value u32
//   7  config space write         offset u16 (modulo 4 KiB), width u8 (1...8), bytes
//   8  config space read          offset u16, width u8
//   9  function level reset
//   10 client IRQ configuration   index u8, enabled vectors u8
//   11 client IRQ mask change     index u8, vector u8, masked u8
// Register and config offsets are not limited to the BAR or the space: half of the u16
// range lies outside them, which the model must refuse.
import Glibc
import NVMeController
import VFIO
import VFIODeviceKit

let memoryBytes = 64 << 10
let settleSeconds: UInt64 = 5
/// Actions run of one input (the rest is ignored): a bring-up with I/O takes about 40.
let maximumActions = 256

struct Script {
    let bytes: UnsafeRawBufferPointer
    var at = 0

    mutating func u8() -> UInt8? {
        guard at < bytes.count else { return nil }
        defer { at += 1 }
        return bytes[at]
    }

    mutating func le(_ count: Int) -> UInt64? {
        guard bytes.count - at >= count else { return nil }
        var value: UInt64 = 0
        for k in 0..<count { value |= UInt64(bytes[at + k]) << (8 * UInt64(k)) }
        at += count
        return value
    }

    mutating func take(_ count: Int) -> UnsafeRawBufferPointer? {
        guard bytes.count - at >= count else { return nil }
        defer { at += count }
        return UnsafeRawBufferPointer(rebasing: bytes[at..<at + count])
    }

    mutating func width() -> Int? { u8().map { Int($0 % 8) + 1 } }
}

func withValue(_ value: UInt64, width: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
    withUnsafeBytes(of: value.littleEndian) { body(UnsafeRawBufferPointer(rebasing: $0[0..<width])) }
}

enum Step { case end, changed, unchanged }

/// A write of `value`'s low `width` bytes through `write`: `.unchanged` when the model
/// refused it (it refuses before it changes anything).
func written(_ value: UInt64, width: Int, _ write: (UnsafeRawBufferPointer) throws -> Void) -> Step {
    var step = Step.changed
    withValue(value, width: width) { bytes in
        do { try write(bytes) } catch { step = .unchanged }
    }
    return step
}

/// Runs the script's next action: `.unchanged` when it cannot have changed the
/// controller's state (reads, guest memory: the worker sleeps meanwhile; refused
/// writes), `.end` when the
/// input is used up.
func step(_ script: inout Script, _ device: NVMeDevice, _ context: InMemoryDeviceContext) -> Step {
    let bar0 = PCIRegionIndex.bar0.rawValue, config = PCIRegionIndex.config.rawValue
    var scratch: UInt64 = 0
    guard let action = script.u8() else { return .end }
    switch action % 12 {
    case 0:
        guard let offset = script.le(2), let value = script.le(4) else { return .end }
        return written(value, width: 4) { try device.write(region: bar0, offset: offset, from: $0) }
    case 1:
        guard let offset = script.le(2), let value = script.le(8) else { return .end }
        return written(value, width: 8) { try device.write(region: bar0, offset: offset, from: $0) }
    case 2:
        guard let offset = script.le(2), let width = script.width() else { return .end }
        withUnsafeMutableBytes(of: &scratch) { try? device.read(region: bar0, offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<width])) }
        return .unchanged
    case 3:
        guard let offset = script.le(2), let width = script.width(), let bytes = script.take(width) else { return .end }
        return (try? device.write(region: bar0, offset: offset, from: bytes)) == nil ? .unchanged : .changed
    case 4:
        guard let address = script.le(4), let count = script.u8(), let bytes = script.take(Int(count)) else { return .end }
        poke(context, address, bytes)
        return .unchanged
    case 5:
        guard let address = script.le(4), let bytes = script.take(64) else { return .end }
        poke(context, address, bytes)
        return .unchanged
    case 6:
        guard let queue = script.u8(), let which = script.u8(), let value = script.le(4) else { return .end }
        // The doorbells start at 0x1000 with a stride of 4 bytes (CAP.DSTRD 0).
        let offset = 0x1000 + (UInt64(queue) * 2 + UInt64(which & 1)) * 4
        return written(value, width: 4) { try device.write(region: bar0, offset: offset, from: $0) }
    case 7:
        guard let offset = script.le(2), let width = script.width(), let bytes = script.take(width) else { return .end }
        return (try? device.write(region: config, offset: offset % 4096, from: bytes)) == nil ? .unchanged : .changed
    case 8:
        guard let offset = script.le(2), let width = script.width() else { return .end }
        withUnsafeMutableBytes(of: &scratch) { try? device.read(region: config, offset: offset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<width])) }
        return .unchanged
    case 9:
        try? device.reset()
    case 10:
        guard let index = script.u8(), let vectors = script.u8() else { return .end }
        device.irqsConfigured(index: UInt32(index % 5), enabledVectors: UInt32(vectors))
    default:
        guard let index = script.u8(), let vector = script.u8(), let masked = script.u8() else { return .end }
        device.irqMaskChanged(index: UInt32(index % 5), vector: UInt32(vector), masked: masked & 1 != 0)
    }
    return .changed
}

/// Writes `bytes` into guest memory at `address` modulo its size, cut at its end.
func poke(_ context: InMemoryDeviceContext, _ address: UInt64, _ bytes: UnsafeRawBufferPointer) {
    let start = Int(address % UInt64(memoryBytes))
    let count = min(bytes.count, memoryBytes - start)
    guard count > 0 else { return }
    do { try context.poke(iova: UInt64(start), Array(bytes[0..<count])) } catch { fatalError("poke: \(error)") }
}

func run(_ input: UnsafeRawBufferPointer) {
    let context = InMemoryDeviceContext(strictReplyRule: false)
    do { try context.map(iova: 0, size: memoryBytes) } catch { fatalError("map: \(error)") }
    let device: NVMeDevice
    do { device = try NVMeDevice(ramBytes: 128 << 10, blockSize: 512, ioQueues: 4) } catch { fatalError("device: \(error)") }
    device.attach(context)
    var script = Script(bytes: input)
    var actions = 0
    while actions < maximumActions {
        let outcome = step(&script, device, context)
        if outcome == .end { break }
        actions += 1
        if outcome == .unchanged { continue }
        if !device.waitUntilQuiescent(seconds: settleSeconds) {
            fatalError("the controller's worker did not settle within \(settleSeconds) s after action at byte \(script.at)")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
