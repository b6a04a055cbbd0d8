import NVMe
import Synchronization
import VFIO

/// Doorbell Buffer Config (NVMe 1.3+, admin opcode 7Ch): the host keeps its I/O queues'
/// doorbell values in a shadow buffer in its memory (same layout as the doorbell
/// registers: SQ y tail at 8y, CQ y head at 8y + 4) and writes a doorbell register only
/// when the controller's EventIdx buffer says the controller is waiting for one (Linux's
/// `nvme_dbbuf_need_event`). The admin queue keeps using its registers (Linux never
/// updates its shadow entries).
///
/// The worker reads the shadow values before it picks work (`syncShadowDoorbells`) and,
/// before it sleeps, publishes each I/O SQ's tail as its EventIdx and reads the shadow
/// again, so an update made meanwhile is seen either by that read or by the doorbell
/// write the host then makes. A completion queue's EventIdx asks for a doorbell write
/// only while the worker waits for room in it.
extension ControllerCore {
    /// Doorbell Buffer Config: PRP1 the shadow buffer, PRP2 the EventIdx buffer, each
    /// one page, 4 KiB aligned, and not the same page.
    func configureDoorbellBuffers(_ e: SubmissionQueueEntry) -> NVMeStatus {
        guard e.prp1 != 0, e.prp2 != 0, e.prp1 & 0xFFF == 0, e.prp2 & 0xFFF == 0, e.prp1 != e.prp2 else { return .invalidField }
        // Queues that exist already: their current values go into both buffers.
        let values = monitor.withLock { s -> [(UInt16, UInt32, UInt32)] in
            s.submissionQueues.keys.filter { $0 != 0 }.map { id in (id, s.submissionQueues[id]!.tail, s.completionQueues[id]?.head ?? 0) }
        }
        for (id, tail, head) in values {
            for base in [e.prp1, e.prp2] {
                guard writeShadowEntry(base, queue: id, completion: false, value: tail),
                      writeShadowEntry(base, queue: id, completion: true, value: head) else { return .dataTransferError }
            }
        }
        monitor.update { $0.doorbellBuffers = DoorbellBuffers(shadow: e.prp1, eventIndex: e.prp2) }
        return .success
    }

    /// Writes one 4-byte entry of a shadow or EventIdx buffer; false when unreachable.
    @discardableResult
    func writeShadowEntry(_ base: UInt64, queue: UInt16, completion: Bool, value: UInt32) -> Bool {
        let offset = UInt64(queue) * 8 + (completion ? 4 : 0)
        var bytes = [UInt8](repeating: 0, count: 4)
        bytes.putLE(UInt64(value), at: 0, width: 4)
        var ok = true
        bytes.withUnsafeBytes { raw in
            do throws(VFIOError) { try dmaWrite(base + offset, raw) } catch { ok = false }
        }
        return ok
    }

    /// A new queue starts at 0 in both buffers (the host's shadow may hold a value of an
    /// earlier queue with this id).
    func resetShadowEntries(queue: UInt16, completion: Bool) {
        guard queue != 0, let buffers = monitor.withLock({ $0.doorbellBuffers }) else { return }
        writeShadowEntry(buffers.shadow, queue: queue, completion: completion, value: 0)
        writeShadowEntry(buffers.eventIndex, queue: queue, completion: completion, value: 0)
    }

    /// Reads the shadow buffer and applies the I/O queues' values (a value the queue
    /// cannot take is ignored and raises Invalid Doorbell Write Value, as a doorbell
    /// register write of it does). Returns true when
    /// it changed an SQ tail or CQ head. An unreadable buffer is a fatal error.
    @discardableResult
    func syncShadowDoorbells() -> Bool {
        guard let (buffers, generation) = monitor.withLock({ s in s.doorbellBuffers.map { ($0, s.generation) } }) else { return false }
        let count = (ioQueues + 1) * 8
        let bytes: [UInt8]
        do {
            bytes = try dmaRead(buffers.shadow, count: count)
        } catch {
            fail("reading the shadow doorbell buffer at 0x\(String(buffers.shadow, radix: 16)): \(error)", generation: generation)
            return false
        }
        return monitor.update { s -> Bool in
            guard s.doorbellBuffers == buffers else { return false }
            var changed = false
            for (id, var sq) in s.submissionQueues where id != 0 {
                let tail = UInt32(bytes.le(Int(id) * 8, 4))
                if tail >= sq.size {
                    Self.doorbellError(.invalidDoorbellWriteValue, &s)
                } else if tail != sq.tail {
                    sq.tail = tail
                    s.submissionQueues[id] = sq
                    changed = true
                }
            }
            for (id, var cq) in s.completionQueues where id != 0 {
                let head = UInt32(bytes.le(Int(id) * 8 + 4, 4))
                if !cq.acceptsHead(head) {
                    Self.doorbellError(.invalidDoorbellWriteValue, &s)
                } else if head != cq.head {
                    cq.head = head
                    s.completionQueues[id] = cq
                    changed = true
                }
            }
            return changed
        }
    }

    /// Before sleeping: each I/O SQ's EventIdx becomes its tail (the host writes the
    /// doorbell register for the next command), then the shadow is read once more.
    /// Returns true when that read found work.
    func publishEventIndexesAndRecheck() -> Bool {
        guard let (buffers, tails) = monitor.withLock({ s -> (DoorbellBuffers, [(UInt16, UInt32)])? in
            guard let buffers = s.doorbellBuffers else { return nil }
            return (buffers, s.submissionQueues.filter { $0.key != 0 }.map { ($0.key, $0.value.tail) })
        }) else { return false }
        for (id, tail) in tails { writeShadowEntry(buffers.eventIndex, queue: id, completion: false, value: tail) }
        // The EventIdx stores are visible before the shadow is read again (the host
        // stores its shadow value, fences, then reads the EventIdx).
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        return syncShadowDoorbells()
    }

    /// While completion queue `queue` is full: ask for its head doorbell (EventIdx = the
    /// head), then read the shadow. Returns true when the queue has room now.
    func requestCompletionHead(_ queue: UInt16) -> Bool {
        guard queue != 0, let (buffers, head) = monitor.withLock({ s -> (DoorbellBuffers, UInt32)? in
            guard let buffers = s.doorbellBuffers, let cq = s.completionQueues[queue] else { return nil }
            return (buffers, cq.head)
        }) else { return false }
        writeShadowEntry(buffers.eventIndex, queue: queue, completion: true, value: head)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        syncShadowDoorbells()
        return monitor.withLock { s in s.completionQueues[queue].map { !$0.isFull } ?? true }
    }
}
