import Glibc
import NVMe
import NVMeController
import Testing
import TestSupport
import VFIO
import VFIOSystem
import VFIOUserClient

/// A minimal NVMe host driver for the tests: a real vfio-user client of an in-process
/// server, host memory in a sealed memfd mapped for DMA, MSI-X vectors on eventfds,
/// queues in that memory, commands written and completions read as a driver does.
final class NVMeTestHost {
    struct Queue {
        var id: UInt16
        var submissionBase: UInt64
        var completionBase: UInt64
        var size: UInt32
        /// The completion queue's entries when it differs from the submission queue's.
        var completionSize: UInt32? = nil
        var cqEntries: UInt32 { completionSize ?? size }
        var tail: UInt32 = 0
        var head: UInt32 = 0
        var phase = true
        var vector: Int
    }

    enum WaitError: Error { case noCompletion(queue: UInt16) }

    static let iovaBase: UInt64 = 0x1_0000_0000
    static let memorySize = 16 << 20
    /// Where queue memory ends and data buffers may start (offset in `memory`).
    static let dataOffset = 8 << 20

    let model: NVMeDevice
    let client: VFIOUserClient
    let memory: DMABuffer
    var vectors: [EventFD] = []
    /// The INTx eventfd when the host uses the pin interrupt instead of MSI-X.
    var intx: EventFD?
    var queues: [UInt16: Queue] = [:]
    private var nextQueueMemory = 0
    private var nextCommandID: UInt16 = 1

    /// - Parameter memory: host memory to share with another host (a migration's source),
    ///   instead of fresh memory.
    convenience init(model: NVMeDevice, msixVectors: Int = 4, useINTx: Bool = false, memory shared: DMABuffer? = nil, name: String = #function) throws {
        try self.init(model: model, client: VFIOUserClient.serving(model, name: "nvme:\(name)"), msixVectors: msixVectors,
                      useINTx: useINTx, memory: shared)
    }

    /// A host on `client`, a connection to a server of `model` (a listening server: one
    /// client after another).
    init(model: NVMeDevice, client: VFIOUserClient, msixVectors: Int = 4, useINTx: Bool = false, memory shared: DMABuffer? = nil) throws {
        self.model = model
        self.client = client
        memory = try shared ?? DMABuffer(size: Self.memorySize)
        try client.mapDMA(memory, offset: 0, size: memory.size, iova: Self.iovaBase, access: [.read, .write])
        let command = try client.readConfig(UInt16.self, offset: 4)
        try client.writeConfig(command | 0x6, offset: 4)  // memory space, bus master
        if msixVectors > 0 {
            vectors = try (0..<msixVectors).map { _ in try EventFD() }
            try client.setIRQs(.enableEventfds(index: PCIIRQIndex.msix.rawValue, vectors.map(\.fd)))
        } else if useINTx {
            let event = try EventFD()
            try client.setIRQs(.enableEventfds(index: PCIIRQIndex.intx.rawValue, [event.fd]))
            intx = event
        }
    }

    deinit { client.close() }

    func iova(_ offset: Int) -> UInt64 { Self.iovaBase + UInt64(offset) }

    /// Queue memory: a fresh, zeroed, page-aligned area of `bytes` bytes below `dataOffset`.
    func allocateQueueMemory(_ bytes: Int) -> Int {
        let offset = nextQueueMemory
        nextQueueMemory += (bytes + 4095) / 4096 * 4096
        precondition(nextQueueMemory <= Self.dataOffset)
        memset(memory.baseAddress + offset, 0, bytes)
        return offset
    }

    // MARK: Registers

    func read32(_ offset: UInt64) throws -> UInt32 { try client.read(UInt32.self, region: 0, offset: offset) }
    func write32(_ value: UInt32, _ offset: UInt64) throws { try client.write(value, region: 0, offset: offset) }
    func write64(_ value: UInt64, _ offset: UInt64) throws { try client.write(value, region: 0, offset: offset) }
    var status: ControllerStatus { get throws { ControllerStatus(rawValue: try read32(ControllerRegister.status)) } }

    /// Waits for CSTS to satisfy `condition` (a register: no event announces it).
    func waitStatus(_ condition: (ControllerStatus) -> Bool) throws -> Bool {
        try poll(for: .seconds(10)) { condition(try status) }
    }

    /// Programs the admin queue (`entries` each) and sets CC.EN; waits for RDY.
    func enable(adminEntries: UInt32 = 16) throws {
        let sq = allocateQueueMemory(Int(adminEntries) * 64)
        let cq = allocateQueueMemory(Int(adminEntries) * 16)
        queues[0] = Queue(id: 0, submissionBase: iova(sq), completionBase: iova(cq), size: adminEntries, vector: 0)
        try write32(AdminQueueAttributes(submissionQueueSize: UInt16(adminEntries - 1), completionQueueSize: UInt16(adminEntries - 1)).rawValue,
                    ControllerRegister.adminQueueAttributes)
        try write64(iova(sq), ControllerRegister.adminSubmissionQueue)
        try write64(iova(cq), ControllerRegister.adminCompletionQueue)
        try write32(ControllerConfiguration(enable: true).rawValue, ControllerRegister.configuration)
        #expect(try waitStatus { $0.ready })
    }

    /// Creates I/O completion queue `id` (vector `vector`) and submission queue `id` on it.
    func createIOQueuePair(_ id: UInt16, entries: UInt32, completionEntries: UInt32? = nil, vector: Int? = nil) throws {
        let vector = vector ?? Int(id)
        let cqEntries = completionEntries ?? entries
        let sq = allocateQueueMemory(Int(entries) * 64)
        let cq = allocateQueueMemory(Int(cqEntries) * 16)
        let cqStatus = try admin(SubmissionQueueEntry(opcode: AdminOpcode.createIOCompletionQueue.rawValue, commandID: 0, prp1: iova(cq),
                                                      cdw10: (cqEntries - 1) << 16 | UInt32(id), cdw11: UInt32(vector) << 16 | 0x3)).status
        #expect(cqStatus == .success)
        let sqStatus = try admin(SubmissionQueueEntry(opcode: AdminOpcode.createIOSubmissionQueue.rawValue, commandID: 0, prp1: iova(sq),
                                                      cdw10: (entries - 1) << 16 | UInt32(id), cdw11: UInt32(id) << 16 | 0x1)).status
        #expect(sqStatus == .success)
        queues[id] = Queue(id: id, submissionBase: iova(sq), completionBase: iova(cq), size: entries, completionSize: cqEntries, vector: vector)
    }

    // MARK: Commands

    /// Writes `entry` (a fresh command identifier) at queue `id`'s tail without ringing.
    @discardableResult
    func place(_ entry: SubmissionQueueEntry, queue id: UInt16) -> UInt16 {
        var q = queues[id]!
        var e = entry
        e.commandID = nextCommandID
        nextCommandID = nextCommandID == 0xFFFE ? 1 : nextCommandID + 1
        let offset = Int(q.submissionBase - Self.iovaBase) + Int(q.tail) * 64
        e.encoded.withUnsafeBytes { (memory.baseAddress + offset).copyMemory(from: $0.baseAddress!, byteCount: 64) }
        q.tail = (q.tail + 1) % q.size
        queues[id] = q
        return e.commandID
    }

    func ring(_ id: UInt16) throws {
        try write32(queues[id]!.tail, ControllerRegister.submissionTailDoorbell(queue: id))
    }

    /// The next completion of queue `id`, waiting for its vector's eventfd; the head
    /// doorbell is rung.
    func nextCompletion(_ id: UInt16, timeoutMilliseconds: Int32 = 5000) throws -> CompletionQueueEntry {
        var q = queues[id]!
        let offset = Int(q.completionBase - Self.iovaBase) + Int(q.head) * 16
        func current() -> CompletionQueueEntry {
            var bytes = [UInt8](repeating: 0, count: 16)
            bytes.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: memory.baseAddress + offset, count: 16)) }
            return CompletionQueueEntry(bytes)
        }
        var entry = current()
        while entry.phase != q.phase {
            guard let event = vectors.isEmpty ? intx : vectors[q.vector],
                  try waitSignalled(event, milliseconds: timeoutMilliseconds) != nil else {
                entry = current()
                if entry.phase == q.phase { break }
                throw WaitError.noCompletion(queue: id)
            }
            entry = current()
        }
        q.head = (q.head + 1) % q.cqEntries
        if q.head == 0 { q.phase.toggle() }
        queues[id] = q
        try write32(q.head, ControllerRegister.completionHeadDoorbell(queue: id))
        // INTx is automasked once signalled: unmask it as a VMM does at the guest's EOI.
        if intx != nil { try client.setIRQs(.unmaskINTx()) }
        return entry
    }

    /// Submits `entry` on queue `id` and returns its completion.
    func submit(_ entry: SubmissionQueueEntry, queue id: UInt16) throws -> CompletionQueueEntry {
        let cid = place(entry, queue: id)
        try ring(id)
        let completion = try nextCompletion(id)
        #expect(completion.commandID == cid)
        return completion
    }

    func admin(_ entry: SubmissionQueueEntry) throws -> CompletionQueueEntry { try submit(entry, queue: 0) }

    /// Identify with CNS `cns` into a 4 KiB buffer at data offset `at`.
    func identify(cns: IdentifyCNS, namespace: UInt32 = 0, at: Int = NVMeTestHost.dataOffset) throws -> (NVMeStatus, [UInt8]) {
        memset(memory.baseAddress + at, 0xEE, 8192)
        let c = try admin(SubmissionQueueEntry(opcode: AdminOpcode.identify.rawValue, commandID: 0, namespaceID: namespace,
                                               prp1: iova(at), prp2: iova((at + 4096) & ~4095), cdw10: UInt32(cns.rawValue)))
        return (c.status, bytes(at, 4096))
    }

    // MARK: Memory

    func bytes(_ offset: Int, _ count: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: memory.baseAddress + offset, count: count))
    }

    func store(_ bytes: [UInt8], at offset: Int) {
        bytes.withUnsafeBytes { (memory.baseAddress + offset).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    }

    /// Writes a PRP list of `pages` (IOVAs) at `offset`.
    func storeList(_ pages: [UInt64], at offset: Int) {
        var bytes = [UInt8](repeating: 0, count: pages.count * 8)
        for (k, page) in pages.enumerated() {
            for b in 0..<8 { bytes[k * 8 + b] = UInt8(truncatingIfNeeded: page >> (8 * UInt64(b))) }
        }
        store(bytes, at: offset)
    }
}

func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}

func ioCommand(_ opcode: NVMOpcode, lba: UInt64, blocks: Int, prp1: UInt64, prp2: UInt64 = 0, namespace: UInt32 = 1, cdw12Flags: UInt32 = 0) -> SubmissionQueueEntry {
    SubmissionQueueEntry(opcode: opcode.rawValue, commandID: 0, namespaceID: namespace, prp1: prp1, prp2: prp2,
                         cdw10: UInt32(truncatingIfNeeded: lba), cdw11: UInt32(truncatingIfNeeded: lba >> 32),
                         cdw12: UInt32(blocks - 1) & 0xFFFF | cdw12Flags)
}
