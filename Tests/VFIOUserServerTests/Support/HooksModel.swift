import Glibc
import VFIO
import VFIODeviceKit
import VFIOSystem
import TestSupport

/// A PCI model that logs every hook the kit calls (ioeventfds, IRQ masks, sessions,
/// features) and signals `changed` after each entry, so that a test waits for the entry
/// it means. Region 0: 4 KiB of callbacks with two ioeventfd areas (0x100 any value,
/// 0x200 width 4 matching 7); region 1: 4 KiB without areas. INTx, one MSI, REQ.
final class HooksModel: DeviceModel {
    struct State {
        var log: [String] = []
        var context: (any DeviceContext)?
        var feature: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        /// GET of feature 0x101 returns more than the room it was given.
        var oversizedGet = false
    }

    static let areas = [IOEventArea(offset: 0x100, width: 4), IOEventArea(offset: 0x200, width: 4, dataMatch: 7)]
    /// A `Monitor` (pthread mutex) rather than a `Mutex`: ThreadSanitizer sees its
    /// hand-over between the server's threads and the test.
    let state = Monitor(State())
    let changed: EventFD
    let deviceFlags: DeviceInfoFlags = [.pci, .reset]
    let regions: [RegionDescriptor]
    let irqs = IRQDescriptor.pci(intx: true, msiVectors: 1, msixVectors: 0, req: 1)
    let deviceFeatures: [ModelFeature]

    init(regions: [RegionDescriptor]? = nil, features: [ModelFeature]? = nil) throws {
        changed = try EventFD()
        self.regions = regions ?? [
            RegionDescriptor(index: 0, size: 0x1000, flags: [.read, .write], ioEventAreas: HooksModel.areas),
            RegionDescriptor(index: 1, size: 0x1000, flags: [.read, .write]),
        ]
        deviceFeatures = features ?? [ModelFeature(id: 0x100, operations: [.get, .set], payloadSize: 8),
                                      ModelFeature(id: 0x101, operations: .get, payloadSize: 4)]
    }

    var log: [String] { state.withLock { $0.log } }
    var context: (any DeviceContext)? { state.withLock { $0.context } }

    private func record(_ entry: String) {
        state.withLock { $0.log.append(entry) }
        try? changed.signal()
    }

    /// Waits until `predicate` holds for the log (each wait ends at the next entry, or
    /// fails after 2 s without one).
    func waitFor(_ predicate: ([String]) -> Bool) throws -> Bool {
        while true {
            if predicate(log) { return true }
            guard try waitSignalled(changed) != nil else { return predicate(log) }
        }
    }

    func attach(_ context: any DeviceContext) { state.withLock { $0.context = context } }

    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        for i in buffer.indices { buffer[i] = 0 }
    }

    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        var value: UInt64 = 0
        for (i, byte) in buffer.enumerated() { value |= UInt64(byte) << (8 * UInt64(i)) }
        record("write \(region) 0x\(String(offset, radix: 16)) = \(value)")
    }

    func reset() throws(VFIOError) {}

    func irqsConfigured(index: UInt32, enabledVectors: UInt32) { record("irqs \(index) \(enabledVectors)") }
    func irqMaskChanged(index: UInt32, vector: UInt32, masked: Bool) { record("\(masked ? "mask" : "unmask") \(index).\(vector)") }
    func sessionOpened() { record("opened") }
    func sessionClosed() { record("closed") }

    func ioEventSignalled(region: UInt32, area: IOEventArea, count: UInt64) throws(VFIOError) {
        record("ioevent \(region) 0x\(String(area.offset, radix: 16)) count \(count)")
    }

    func getFeature(_ id: UInt32, room: Int) throws(VFIOError) -> [UInt8] {
        let (value, oversized) = state.withLock { ($0.feature, $0.oversizedGet) }
        switch id {
        case 0x100: return value
        case 0x101: return [UInt8](repeating: 0xAB, count: oversized ? room + 1 : 4)
        default: throw .errno("get feature \(id)", ENOTTY)
        }
    }

    func setFeature(_ id: UInt32, data: [UInt8]) throws(VFIOError) {
        state.withLock { $0.feature = Array(data.prefix(8)) }
        record("set 0x\(String(id, radix: 16)) \(data)")
    }
}
