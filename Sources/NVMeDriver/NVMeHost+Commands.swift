import NVMe

/// One I/O command of a batch (`NVMeHost.submit(_:)`).
public enum NVMeIO: Sendable {
    /// Read `blocks` blocks from `lba` into `buffer` at byte `offset`.
    case read(namespace: UInt32 = 1, lba: UInt64, blocks: Int, buffer: NVMeBuffer, offset: Int = 0)
    /// Write `blocks` blocks at `lba` from `buffer` at byte `offset`.
    case write(namespace: UInt32 = 1, lba: UInt64, blocks: Int, buffer: NVMeBuffer, offset: Int = 0)
    case flush(namespace: UInt32 = 1)
    /// Write Zeroes, with DEAC (deallocate) when asked.
    case writeZeroes(namespace: UInt32 = 1, lba: UInt64, blocks: Int, deallocate: Bool = false)
}

/// A range of logical blocks for Dataset Management.
public struct NVMeLBARange: Sendable, Hashable {
    public var lba: UInt64
    public var blocks: UInt32
    public init(lba: UInt64, blocks: UInt32) {
        self.lba = lba
        self.blocks = blocks
    }
}

extension NVMeHost {
    // MARK: I/O

    /// Reads `blocks` logical blocks from `lba` of `namespace` into `buffer` at `offset`.
    /// - Throws: `.invalidArgument` for data outside the buffer, a misaligned offset, an
    ///   unknown namespace or a transfer over `maximumTransferBytes`; `.command` with the
    ///   controller's status (LBA Out of Range, ...).
    public func read(namespace: UInt32 = 1, lba: UInt64, blocks: Int, into buffer: NVMeBuffer, offset: Int = 0,
                     queue: Int? = nil) async throws(NVMeDriverError) {
        try await single(.read(namespace: namespace, lba: lba, blocks: blocks, buffer: buffer, offset: offset), queue: queue)
    }

    /// Writes `blocks` logical blocks at `lba` of `namespace` from `buffer` at `offset`.
    public func write(namespace: UInt32 = 1, lba: UInt64, blocks: Int, from buffer: NVMeBuffer, offset: Int = 0,
                      queue: Int? = nil) async throws(NVMeDriverError) {
        try await single(.write(namespace: namespace, lba: lba, blocks: blocks, buffer: buffer, offset: offset), queue: queue)
    }

    /// Flush: the volatile write cache of `namespace` (0xFFFFFFFF: every namespace) to media.
    public func flush(namespace: UInt32 = 1, queue: Int? = nil) async throws(NVMeDriverError) {
        try await single(.flush(namespace: namespace), queue: queue)
    }

    /// Write Zeroes over `blocks` blocks from `lba` (ONCS bit 3).
    public func writeZeroes(namespace: UInt32 = 1, lba: UInt64, blocks: Int, deallocate: Bool = false,
                            queue: Int? = nil) async throws(NVMeDriverError) {
        guard controller.optionalNVMCommands.contains(.writeZeroes) else { throw .unsupported("Write Zeroes (ONCS bit 3 clear)") }
        try await single(.writeZeroes(namespace: namespace, lba: lba, blocks: blocks, deallocate: deallocate), queue: queue)
    }

    /// Dataset Management with the Deallocate attribute over `ranges` (1...256; ONCS bit 2).
    public func deallocate(namespace: UInt32 = 1, ranges: [NVMeLBARange], queue: Int? = nil) async throws(NVMeDriverError) {
        guard controller.optionalNVMCommands.contains(.datasetManagement) else { throw .unsupported("Dataset Management (ONCS bit 2 clear)") }
        guard (1...256).contains(ranges.count) else { throw .invalidArgument("\(ranges.count) ranges (1...256)") }
        let list = try allocator.allocate(ranges.count * 16)
        defer { allocator.release(list) }
        var bytes = [UInt8](repeating: 0, count: ranges.count * 16)
        for (k, range) in ranges.enumerated() {
            // Context attributes 3:0 zero, length in blocks 7:4, starting LBA 15:8.
            bytes.putLE(UInt64(range.blocks), at: 16 * k + 4, width: 4)
            bytes.putLE(range.lba, at: 16 * k + 8, width: 8)
        }
        list.store(bytes)
        let command = Command.io(.datasetManagement, namespace: namespace, data: (list.iova, bytes.count),
                                 cdw10: UInt32(ranges.count - 1), cdw11: 1 << 2)
        try await run(command, on: try ioQueue(queue))
    }

    /// Submits `batch` on one I/O queue, ringing its doorbell once per `depth` commands,
    /// and waits for all; one result per command, in order (dword 0 of its completion).
    public func submit(_ batch: [NVMeIO], queue: Int? = nil) async -> [Result<UInt32, NVMeDriverError>] {
        var results: [Result<UInt32, NVMeDriverError>] = []
        let target: QueuePair
        do { target = try ioQueue(queue) } catch { return batch.map { _ in .failure(error) } }
        var prepared: [Result<PreparedCommand, NVMeDriverError>] = batch.map { io in Result { () throws(NVMeDriverError) in try prepare(io) } }
        var index = 0
        while index < prepared.count {
            let chunk = prepared[index..<min(index + target.depth, prepared.count)]
            index += chunk.count
            let valid = chunk.compactMap { try? $0.get() }
            let completions = valid.isEmpty ? [] : await target.submit(valid)
            var next = completions.makeIterator()
            for item in chunk {
                switch item {
                case .failure(let error): results.append(.failure(error))
                case .success(let command):
                    results.append(Command.check(next.next()!, command, queue: target.id).map(\.dword0))
                }
            }
        }
        prepared = []
        return results
    }

    // MARK: Admin

    /// Identify with `cns` (and `namespace`, CDW11 `cdw11`): the 4096-byte data structure.
    public func identify(cns: UInt8, namespace: UInt32 = 0, cdw11: UInt32 = 0) async throws(NVMeDriverError) -> [UInt8] {
        let buffer = try allocator.allocate(4096)
        defer { allocator.release(buffer) }
        var command = Command.identify(cns: cns, namespace: namespace, into: buffer)
        command.entry.cdw11 = cdw11
        try await run(command, on: admin)
        return buffer.load(4096)
    }

    /// Get Log Page `id`: `bytes` bytes (a multiple of 4, up to 64 KiB) from byte `offset`.
    public func logPage(_ id: UInt8, bytes: Int, namespace: UInt32 = 0xFFFF_FFFF, offset: UInt64 = 0) async throws(NVMeDriverError) -> [UInt8] {
        guard bytes > 0, bytes % 4 == 0, bytes <= 65536, offset % 4 == 0 else { throw .invalidArgument("log page length \(bytes) / offset \(offset)") }
        let buffer = try allocator.allocate(bytes)
        defer { allocator.release(buffer) }
        let dwords = UInt32(bytes / 4 - 1)
        let command = Command.admin(.getLogPage, namespace: namespace, data: buffer, length: bytes,
                                    cdw10: (dwords & 0xFFFF) << 16 | UInt32(id), cdw11: dwords >> 16,
                                    cdw12: UInt32(truncatingIfNeeded: offset), cdw13: UInt32(truncatingIfNeeded: offset >> 32))
        try await run(command, on: admin)
        return buffer.load(bytes)
    }

    /// Get Features `feature`: dword 0 of the completion.
    public func getFeature(_ feature: UInt8, namespace: UInt32 = 0, cdw11: UInt32 = 0) async throws(NVMeDriverError) -> UInt32 {
        try await run(Command.admin(.getFeatures, namespace: namespace, cdw10: UInt32(feature), cdw11: cdw11), on: admin).dword0
    }

    /// Set Features `feature` to `value` (CDW11): dword 0 of the completion.
    @discardableResult
    public func setFeature(_ feature: UInt8, value: UInt32, namespace: UInt32 = 0) async throws(NVMeDriverError) -> UInt32 {
        try await run(Command.admin(.setFeatures, namespace: namespace, cdw10: UInt32(feature), cdw11: value), on: admin).dword0
    }

    /// Format NVM of `namespace` with LBA format `format` (OACS bit 1).
    public func format(namespace: UInt32, lbaFormat format: UInt8, secureErase: UInt8 = 0) async throws(NVMeDriverError) {
        guard controller.optionalAdminCommands.contains(.formatNVM) else { throw .unsupported("Format NVM (OACS bit 1 clear)") }
        try await run(Command.admin(.formatNVM, namespace: namespace, cdw10: UInt32(format & 0xF) | UInt32(secureErase & 0x7) << 9), on: admin)
    }

    /// Sends any admin command (its command identifier and, with `data`, its data pointer
    /// are set by the driver) and returns its completion; an error status throws `.command`.
    @discardableResult
    public func adminCommand(_ entry: SubmissionQueueEntry, data: NVMeBuffer? = nil, length: Int = 0) async throws(NVMeDriverError) -> CompletionQueueEntry {
        if let data { try check(data, offset: 0, length: length) }
        let command = PreparedCommand(entry: entry, name: CommandName.admin(entry.opcode), data: data.map { ($0.iova, length) })
        return try await run(command, on: admin)
    }

    // MARK: Plumbing

    private func single(_ io: NVMeIO, queue: Int?) async throws(NVMeDriverError) {
        let command = try prepare(io)
        try await run(command, on: try ioQueue(queue))
    }

    @discardableResult
    private func run(_ command: PreparedCommand, on queue: QueuePair) async throws(NVMeDriverError) -> CompletionQueueEntry {
        guard !isClosed else { throw .closed }
        return try await Command.run(queue, command)
    }

    func ioQueue(_ index: Int?) throws(NVMeDriverError) -> QueuePair {
        guard !isClosed else { throw .closed }
        if let index {
            guard ioQueues.indices.contains(index) else { throw .invalidArgument("I/O queue index \(index) (0..<\(ioQueues.count))") }
            return ioQueues[index]
        }
        return ioQueues[nextQueue.wrappingAdd(1, ordering: .relaxed).oldValue % ioQueues.count]
    }

    func namespace(_ id: UInt32) throws(NVMeDriverError) -> NVMeNamespace {
        guard let found = namespaces.first(where: { $0.id == id }) else { throw .invalidArgument("namespace \(id) is not active") }
        return found
    }

    private func check(_ buffer: NVMeBuffer, offset: Int, length: Int) throws(NVMeDriverError) {
        guard offset >= 0, length > 0, offset <= buffer.size, length <= buffer.size - offset else {
            throw .invalidArgument("\(length) bytes at offset \(offset) of a \(buffer.size)-byte buffer")
        }
        guard offset % 4 == 0 else { throw .invalidArgument("buffer offset \(offset) is not dword-aligned") }
        guard length <= PRPBuilder(pageSize: pageSize).maximumTransfer(firstOffset: offset % pageSize) else {
            throw .invalidArgument("\(length) bytes exceed one PRP list page from offset \(offset)")
        }
    }

    func prepare(_ io: NVMeIO) throws(NVMeDriverError) -> PreparedCommand {
        switch io {
        case .read(let id, let lba, let blocks, let buffer, let offset), .write(let id, let lba, let blocks, let buffer, let offset):
            let ns = try namespace(id)
            guard (1...65536).contains(blocks) else { throw .invalidArgument("\(blocks) blocks (1...65536)") }
            let length = blocks * ns.blockSize
            guard length <= maximumTransferBytes else {
                throw .invalidArgument("\(length) bytes exceed the largest transfer, \(maximumTransferBytes) bytes")
            }
            try check(buffer, offset: offset, length: length)
            let isRead = if case .read = io { true } else { false }
            return Command.blocks(isRead ? .read : .write, namespace: id, lba: lba, blocks: blocks,
                                  data: (buffer.iova + UInt64(offset), length))
        case .flush(let id):
            return Command.io(.flush, namespace: id)
        case .writeZeroes(let id, let lba, let blocks, let deallocate):
            guard (1...65536).contains(blocks) else { throw .invalidArgument("\(blocks) blocks (1...65536)") }
            return Command.blocks(.writeZeroes, namespace: id, lba: lba, blocks: blocks, data: nil, flags: deallocate ? 1 << 25 : 0)
        }
    }
}
