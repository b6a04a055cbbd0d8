import CVFIO
import NVMe
import Synchronization
import VFIO

/// The doorbell registers of BAR0 (from `ControllerRegister.doorbellBase`, stride
/// `4 << CAP.DSTRD`): written through a mapping of the doorbell pages when the region
/// allows mmap (a store, no system call), through region writes otherwise.
final class Doorbells: Sendable {
    let device: any VFIODevice
    let stride: UInt64
    /// The mapping covering every doorbell this driver uses, if BAR0 could be mapped.
    let mapping: (any MappedRegion)?

    /// Maps the doorbells of queues 0...`lastQueue` when region 0 offers mmap there
    /// (`preferMapping`); falls back to region writes when it does not.
    init(device: any VFIODevice, dstrd: UInt8, lastQueue: UInt16, pageSize: Int, preferMapping: Bool) {
        self.device = device
        stride = UInt64(4) << UInt64(dstrd)
        let start = ControllerRegister.doorbellBase
        let end = ControllerRegister.completionHeadDoorbell(queue: lastQueue, dstrd: dstrd) + 4
        mapping = preferMapping ? Self.map(device, start: start, end: end, pageSize: UInt64(pageSize)) : nil
    }

    private static func map(_ device: any VFIODevice, start: UInt64, end: UInt64, pageSize: UInt64) -> (any MappedRegion)? {
        guard let info = try? device.regionInfo(PCIRegionIndex.bar0.rawValue), info.flags.contains(.mmap) else { return nil }
        let first = start / pageSize * pageSize
        let last = (end + pageSize - 1) / pageSize * pageSize
        guard last <= info.size else { return nil }
        if let areas = info.sparseMmapAreas {
            guard areas.contains(where: { $0.offset <= first && $0.offset + $0.size >= last }) else { return nil }
        }
        return try? device.mapRegion(PCIRegionIndex.bar0.rawValue, offset: first, size: Int(last - first))
    }

    /// True when doorbell writes are stores to the mapped BAR.
    var isMapped: Bool { mapping != nil }

    func submissionTail(queue: UInt16) -> UInt64 { ControllerRegister.doorbellBase + UInt64(2 * UInt32(queue)) * stride }
    func completionHead(queue: UInt16) -> UInt64 { ControllerRegister.doorbellBase + UInt64(2 * UInt32(queue) + 1) * stride }

    /// Writes `value` to the doorbell at BAR0 offset `offset`. Stores to queue memory
    /// made before are visible to the device first (a full fence precedes a mapped store;
    /// a region write is a system call or a message).
    func ring(_ offset: UInt64, _ value: UInt32) throws(VFIOError) {
        if let mapping {
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            cvfio_mmio_write32(mapping.baseAddress + Int(offset - mapping.regionOffset), value)
        } else {
            try device.write(value, region: PCIRegionIndex.bar0.rawValue, offset: offset)
        }
    }
}

/// Doorbell Buffer Config's two pages: the shadow doorbells the host writes and the
/// EventIdx values the controller writes, both laid out as the doorbell registers (one
/// 4-byte entry per doorbell, stride `4 << DSTRD`). Used for I/O queues only.
struct ShadowDoorbells: @unchecked Sendable {
    let shadow: NVMeBuffer
    let eventIndex: NVMeBuffer
    let strideDwords: Int

    /// The dword index of queue `queue`'s SQ tail (completion: CQ head) entry.
    func index(queue: UInt16, completion: Bool) -> Int { (2 * Int(queue) + (completion ? 1 : 0)) * strideDwords }

    /// Stores `value` as the shadow entry `index` and says whether the controller asked
    /// for a doorbell write: the EventIdx lies in [old, new) (modulo 2^16), the rule of
    /// the specification's Doorbell Buffer Config (Linux's `nvme_dbbuf_need_event`).
    func update(index: Int, old: UInt16, new: UInt16) -> Bool {
        let shadowEntry = shadow.memory.baseAddress + 4 * index
        cvfio_mmio_write32(shadowEntry, UInt32(new))
        // The shadow store must be visible before the EventIdx is read.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        let event = UInt16(truncatingIfNeeded: cvfio_mmio_read32(eventIndex.memory.baseAddress + 4 * index))
        return new &- event &- 1 < new &- old
    }

    /// Sets both entries of a new queue to 0.
    func resetEntries(queue: UInt16) {
        for completion in [false, true] {
            let k = index(queue: queue, completion: completion)
            cvfio_mmio_write32(shadow.memory.baseAddress + 4 * k, 0)
        }
    }
}
