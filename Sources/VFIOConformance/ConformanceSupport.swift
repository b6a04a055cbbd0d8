import Glibc
import VFIO
import VFIOSystem

/// Fails the check unless `actual == expected`.
func expectEqual<T: Equatable>(_ actual: T, _ expected: T, _ what: @autoclosure () -> String) throws(CheckFailed) {
    guard actual == expected else { throw CheckFailed("\(what()): got \(actual), expected \(expected)") }
}

/// Fails the check unless `actual == expected`, printing both in hex.
func expectHex<T: BinaryInteger>(_ actual: T, _ expected: T, _ what: @autoclosure () -> String) throws(CheckFailed) {
    guard actual == expected else { throw CheckFailed("\(what()): got \(hex(actual)), expected \(hex(expected))") }
}

func require(_ condition: Bool, _ why: @autoclosure () -> String) throws(CheckFailed) {
    guard condition else { throw CheckFailed(why()) }
}

/// True when the transport said it has no such operation: `.unsupported`, or `ENOTTY`
/// (an ioctl the kernel does not know).
func isUnsupported(_ error: any Error) -> Bool {
    guard let error = error as? VFIOError else { return false }
    if case .unsupported = error.reason { return true }
    return error.errnoValue == ENOTTY
}

/// The errno a `VFIOError` carries, else nil.
func errnoValue(_ error: any Error) -> Int32? {
    (error as? VFIOError)?.errnoValue
}

/// Polls `condition` until it holds, failing the check after `timeout`.
func waitUntil(_ what: @autoclosure () -> String, timeout: Duration, _ condition: () throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var pause = Duration.microseconds(100)
    while true {
        if try condition() { return }
        if clock.now >= deadline { throw CheckFailed("\(what()) did not happen within \(timeout)") }
        try await Task.sleep(for: pause)
        pause = min(pause * 2, .milliseconds(10))
    }
}

/// Waits for `eventfd` to be signalled, failing the check after `timeout`.
func awaitInterrupt(_ eventfd: EventFD, _ what: @autoclosure () -> String, timeout: Duration) async throws {
    do {
        _ = try await eventfd.wait(timeout: timeout)
    } catch let error as VFIOError where error.errnoValue == ETIMEDOUT {
        throw CheckFailed("no \(what()) interrupt within \(timeout)")
    }
}

/// Page-aligned IOVAs for `count` mappings of `size` bytes each, inside the device's valid
/// IOVA ranges and below edu's 256 MiB limit, from 1 MiB up with a free page between them.
func pickIOVAs(_ device: any VFIODevice, count: Int, size: Int) throws -> [UInt64] {
    let page = UInt64(SystemCall.pageSize)
    let span = (UInt64(size) + page - 1) / page * page
    let ranges = try device.validIOVARanges().sorted { $0.start < $1.start }
    var result: [UInt64] = []
    var next: UInt64 = 1 << 20
    for range in ranges where result.count < count && range.start < Edu.iovaLimit {
        var candidate = max(next, (range.start + page - 1) / page * page)
        while result.count < count, candidate + span <= Edu.iovaLimit,
              candidate + span - 1 <= range.last, candidate >= range.start {
            result.append(candidate)
            candidate += span + page
        }
        next = candidate
    }
    guard result.count == count else {
        throw CheckFailed("the valid IOVA ranges \(ranges) leave no room for \(count) mapping(s) of \(size) bytes below 256 MiB")
    }
    return result
}

/// DMA mappings made during a check, unmapped when it ends, whatever way it ends; the
/// buffers stay alive until then.
final class DMAScope {
    let device: any VFIODevice
    private var mappings: [(buffer: DMABuffer, iova: UInt64)] = []

    init(_ device: any VFIODevice) { self.device = device }

    /// A zeroed shared-memory buffer of `size` bytes (rounded up to pages), mapped at `iova`.
    @discardableResult
    func map(size: Int, iova: UInt64, access: DMAAccess, fill: UInt8 = 0) throws -> DMABuffer {
        let buffer = try DMABuffer(size: size)
        buffer.bytes.initializeMemory(as: UInt8.self, repeating: fill)
        try device.mapDMA(buffer, offset: 0, size: buffer.size, iova: iova, access: access)
        mappings.append((buffer, iova))
        return buffer
    }

    /// Unmaps the buffer mapped at `iova` (it stays allocated until the scope ends).
    func unmap(iova: UInt64) throws {
        guard let index = mappings.firstIndex(where: { $0.iova == iova }) else { return }
        let entry = mappings.remove(at: index)
        retained.append(entry.buffer)
        try device.unmapDMA(iova: iova, size: UInt64(entry.buffer.size))
    }

    /// Maps `buffer` again at `iova`.
    func remap(_ buffer: DMABuffer, iova: UInt64, access: DMAAccess) throws {
        try device.mapDMA(buffer, offset: 0, size: buffer.size, iova: iova, access: access)
        mappings.append((buffer, iova))
    }

    private var retained: [DMABuffer] = []

    deinit {
        for entry in mappings {
            try? device.unmapDMA(iova: entry.iova, size: UInt64(entry.buffer.size))
        }
    }
}

/// The PCI address `name` stands for, where it can be told: the name itself
/// (`0000:00:04.0`, `00:04.0`) or, for a device cdev (`/dev/vfio/devices/vfioN`), the
/// device sysfs links it to.
func pciAddress(forDeviceName name: String) -> String? {
    if let address = normalizedPCIAddress(name) { return address }
    let prefix = "/dev/vfio/devices/"
    if name.hasPrefix(prefix) {
        let node = String(name.dropFirst(prefix.count))
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/sys/class/vfio-dev/\(node)/device", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        let target = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return target.split(separator: "/").last.flatMap { normalizedPCIAddress(String($0)) }
    }
    return nil
}

/// `dddd:bb:dd.f` in lowercase, or nil when `text` is not a PCI address.
func normalizedPCIAddress(_ text: String) -> String? {
    let parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false)
    let domain: Substring, bus: Substring, slotFunction: Substring
    switch parts.count {
    case 2: (domain, bus, slotFunction) = ("0000", parts[0], parts[1])
    case 3: (domain, bus, slotFunction) = (parts[0], parts[1], parts[2])
    default: return nil
    }
    let sf = slotFunction.split(separator: ".", omittingEmptySubsequences: false)
    guard sf.count == 2, domain.count <= 4, bus.count <= 2, sf[0].count <= 2, sf[1].count == 1,
          let d = UInt32(domain, radix: 16), let b = UInt32(bus, radix: 16),
          let s = UInt32(sf[0], radix: 16), s < 32, let f = UInt32(sf[1], radix: 16), f < 8
    else { return nil }
    func digits(_ value: UInt32, _ width: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return "\(digits(d, 4)):\(digits(b, 2)):\(digits(s, 2)).\(f)"
}
