import NVMe
import VFIO

/// The NVM command set (I/O submission queues).
extension ControllerCore {
    func executeIO(_ entry: SubmissionQueueEntry, queue: UInt16) -> Outcome {
        guard entry.fuse == 0 else { return .complete(.invalidField, dword0: 0) }
        guard let opcode = NVMOpcode(rawValue: entry.opcode) else { return .complete(.invalidOpcode, dword0: 0) }
        if opcode == .flush && entry.namespaceID == 0xFFFF_FFFF {
            return .complete(flush(namespaces), dword0: 0)
        }
        guard let index = namespaceIndex(entry.namespaceID) else { return .complete(.invalidNamespaceOrFormat, dword0: 0) }
        let storage = namespaces[index]
        switch opcode {
        case .read: return .complete(read(entry, storage), dword0: 0)
        case .write: return .complete(write(entry, storage), dword0: 0)
        case .flush: return .complete(flush([storage]), dword0: 0)
        case .writeZeroes: return .complete(writeZeroes(entry, storage), dword0: 0)
        case .datasetManagement: return .complete(datasetManagement(entry, storage), dword0: 0)
        default: return .complete(.invalidOpcode, dword0: 0)
        }
    }

    private var writeCacheEnabled: Bool { monitor.withLock { $0.features.volatileWriteCache } }

    /// The byte range of a Read/Write/Write Zeroes, checked against the namespace.
    private func range(_ e: SubmissionQueueEntry, _ storage: any NamespaceStorage) -> Result<(offset: UInt64, length: Int), NVMeStatus> {
        let blocks = UInt64(e.blockCountMinusOne) + 1
        let (end, overflow) = e.startingLBA.addingReportingOverflow(blocks)
        guard !overflow, end <= storage.blockCount else { return .failure(.lbaOutOfRange) }
        return .success((e.startingLBA * UInt64(storage.blockSize), Int(blocks) * storage.blockSize))
    }

    /// Runs `body` with the namespace byte offset of a Read/Write and a buffer of its
    /// length, after the range and the transfer size (at most MDTS) are checked.
    private func withTransferBuffer(_ e: SubmissionQueueEntry, _ storage: any NamespaceStorage,
                                    _ body: (UInt64, UnsafeMutableRawBufferPointer) -> NVMeStatus) -> NVMeStatus {
        let r: (offset: UInt64, length: Int)
        switch range(e, storage) {
        case .failure(let status): return status
        case .success(let value): r = value
        }
        guard r.length <= NVMeDevice.maximumTransferBytes else { return .invalidField }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: r.length, alignment: 4096)
        defer { buffer.deallocate() }
        return body(r.offset, buffer)
    }

    private func read(_ e: SubmissionQueueEntry, _ storage: any NamespaceStorage) -> NVMeStatus {
        withTransferBuffer(e, storage) { offset, buffer in
            do { try storage.read(at: offset, into: buffer) } catch { return .unrecoveredReadError }
            let status = copyToHost(UnsafeRawBufferPointer(buffer), entry: e)
            if status.isSuccess {
                monitor.withLock { s in
                    s.statistics.readCommands += 1
                    s.statistics.bytesRead += UInt64(buffer.count)
                }
            }
            return status
        }
    }

    private func write(_ e: SubmissionQueueEntry, _ storage: any NamespaceStorage) -> NVMeStatus {
        withTransferBuffer(e, storage) { offset, buffer in
            let status = copyFromHost(into: buffer, entry: e)
            guard status.isSuccess else { return status }
            let durable = e.forceUnitAccess || !writeCacheEnabled
            do { try storage.write(at: offset, from: UnsafeRawBufferPointer(buffer), durable: durable) } catch { return .writeFault }
            monitor.withLock { s in
                s.statistics.writeCommands += 1
                s.statistics.bytesWritten += UInt64(buffer.count)
            }
            return .success
        }
    }

    private func flush(_ storages: [any NamespaceStorage]) -> NVMeStatus {
        for storage in storages {
            do { try storage.flush() } catch { return .writeFault }
        }
        return .success
    }

    private func writeZeroes(_ e: SubmissionQueueEntry, _ storage: any NamespaceStorage) -> NVMeStatus {
        let r: (offset: UInt64, length: Int)
        switch range(e, storage) {
        case .failure(let status): return status
        case .success(let value): r = value
        }
        do {
            try storage.zero(at: r.offset, count: UInt64(r.length), durable: e.forceUnitAccess || !writeCacheEnabled)
        } catch {
            return .writeFault
        }
        return .success
    }

    /// Dataset Management: with AD, every range of a RAM namespace is deallocated (its
    /// pages returned; reads zeroes after, as its DLFEAT says); on a file or device the
    /// deallocation is a hint taken and ignored (DLFEAT says nothing about what such
    /// blocks read: writing zeroes over a whole device, which mkfs discards, would take
    /// longer than a host waits). Without AD the hints are ignored. Ranges are checked
    /// before any is deallocated.
    private func datasetManagement(_ e: SubmissionQueueEntry, _ storage: any NamespaceStorage) -> NVMeStatus {
        let count = Int(e.rangeCountMinusOne) + 1
        var bytes = [UInt8](repeating: 0, count: count * DatasetRange.size)
        let status = bytes.withUnsafeMutableBytes { copyFromHost(into: $0, entry: e) }
        guard status.isSuccess else { return status }
        guard e.deallocateAttribute else { return .success }
        let deallocates = storage.migratesContents
        let ranges = (0..<count).map { DatasetRange(bytes, at: $0 * DatasetRange.size) }
        for range in ranges {
            let (end, overflow) = range.startingLBA.addingReportingOverflow(UInt64(range.blockCount))
            guard !overflow, end <= storage.blockCount else { return .lbaOutOfRange }
        }
        for range in ranges where deallocates && range.blockCount > 0 {
            do {
                try storage.zero(at: range.startingLBA * UInt64(storage.blockSize), count: UInt64(range.blockCount) * UInt64(storage.blockSize), durable: false)
            } catch {
                return .writeFault
            }
        }
        return .success
    }
}
