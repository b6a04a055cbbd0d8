import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// The client's side of server DMA: the table of memory this client mapped with
/// `mapDMA`, and the DMA thread that answers the server's `VFIO_USER_DMA_READ` /
/// `DMA_WRITE` against it.
extension ClientCore {
    func dmaLoop() {
        while true {
            let next = dmaQueue.wait { queue -> VFIOUserMessage?? in
                if !queue.messages.isEmpty { return .some(queue.messages.removeFirst()) }
                if queue.closed { return .some(nil) }
                return nil
            }
            guard let message = next else { return }
            serve(message)
            serverCommandAnswered()
        }
    }

    // MARK: DMA table

    /// Records a mapping the server accepted.
    /// - Throws: `EEXIST` when it overlaps one recorded before (a server that accepts
    ///   overlapping maps, or two overlapping `mapDMA` calls at once): the earlier one
    ///   stays, and the server's DMA to the new one is refused.
    func addMapping(_ mapping: ClientDMAMapping) throws(VFIOError) {
        if let existing = dmaTable.withLock({ $0.insert(mapping.range, mapping) }) {
            throw .errno("VFIO_USER_DMA_MAP: the server accepted \(mapping.range), which overlaps \(existing.range) mapped before", EEXIST)
        }
    }

    func removeMappings(inside range: IOVARange) {
        dmaTable.withLock { table in
            for entry in table.entries(overlapping: range) where entry.range.start >= range.start && entry.range.last <= range.last {
                table.remove(startingAt: entry.range.start)
            }
        }
    }

    func removeAllMappings() {
        dmaTable.withLock { $0.removeAll() }
    }

    /// The client memory of `[address, address + count)`, in pieces (table lock held), or
    /// nil when a byte is not mapped with `access`.
    private static func pieces(_ table: IOVAMappingTable<ClientDMAMapping>, address: UInt64, count: Int,
                               access: DMAAccess) -> [UnsafeMutableRawBufferPointer]? {
        var pieces: [UnsafeMutableRawBufferPointer] = []
        var allowed = true
        let covered = table.forEachPiece(of: address, length: UInt64(count)) { entry, at, length, _ in
            guard entry.value.access.contains(access) else {
                allowed = false
                return
            }
            pieces.append(UnsafeMutableRawBufferPointer(start: entry.value.base + Int(at - entry.range.start), count: Int(length)))
        }
        return covered && allowed ? pieces : nil
    }

    /// Serves a server-initiated command: DMA_READ and DMA_WRITE; anything else gets
    /// ENOSYS. A DMA_READ's reply goes out from the client's memory itself when it lies in
    /// one mapping (gathered by the send, no copy); a DMA_WRITE's data is copied from the
    /// message into the memory.
    func serve(_ message: VFIOUserMessage) {
        let header = message.header
        message.closeDescriptors()
        func refuse(_ code: Int32) {
            guard header.wantsReply else { return }
            try? socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(code))
        }
        let limit = UInt64(configuration.capabilities.maxDataTransferSize)
        let payload = message.payload
        // struct vfio_user_dma_region_access: address, count (u64 each), then data.
        let command = VFIOUserCommand(rawValue: header.command)
        guard command == .dmaRead || command == .dmaWrite else { return refuse(ENOSYS) }
        guard payload.count >= VFIOUserDMAAccess.headerSize else { return refuse(EINVAL) }
        let (address, count) = payload.withUnsafeBytes { raw in
            (UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)), UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        let dataBytes = payload.count - VFIOUserDMAAccess.headerSize
        switch command {
        case .dmaRead:
            guard dataBytes == 0 else { return refuse(EINVAL) }
            guard count <= limit else { return refuse(E2BIG) }
            let served = dmaTable.withLock { table -> Bool in
                guard let pieces = Self.pieces(table, address: address, count: Int(count), access: .read) else { return false }
                guard header.wantsReply else { return true }
                let reply = VFIOUserHeader(messageID: header.messageID, command: header.command,
                                           messageSize: UInt32(VFIOUserHeader.size + VFIOUserDMAAccess.headerSize) + UInt32(count), flags: .reply)
                payload.withUnsafeBytes { prefix in
                    let echo = UnsafeRawBufferPointer(rebasing: prefix[0..<VFIOUserDMAAccess.headerSize])
                    if pieces.count <= 1 {
                        try? socket.send(reply, echo, UnsafeRawBufferPointer(pieces.first ?? UnsafeMutableRawBufferPointer(start: nil, count: 0)))
                    } else {
                        let joined = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(count), alignment: 16)
                        defer { joined.deallocate() }
                        var at = 0
                        for piece in pieces {
                            (joined.baseAddress! + at).copyMemory(from: piece.baseAddress!, byteCount: piece.count)
                            at += piece.count
                        }
                        try? socket.send(reply, echo, UnsafeRawBufferPointer(joined))
                    }
                }
                return true
            }
            guard served else { return refuse(EFAULT) }
            monitor.withLock { $0.served += 1 }
        case .dmaWrite:
            guard UInt64(dataBytes) == count else { return refuse(EINVAL) }
            guard count <= limit else { return refuse(E2BIG) }
            let written = dmaTable.withLock { table -> Bool in
                guard let pieces = Self.pieces(table, address: address, count: Int(count), access: .write) else { return false }
                payload.withUnsafeBytes { raw in
                    var at = VFIOUserDMAAccess.headerSize
                    for piece in pieces {
                        piece.baseAddress!.copyMemory(from: raw.baseAddress! + at, byteCount: piece.count)
                        at += piece.count
                    }
                }
                return true
            }
            guard written else { return refuse(EFAULT) }
            monitor.withLock { $0.served += 1 }
            guard header.wantsReply else { return }
            payload.withUnsafeBytes { prefix in
                let reply = VFIOUserHeader(messageID: header.messageID, command: header.command,
                                           messageSize: UInt32(VFIOUserHeader.size + VFIOUserDMAAccess.headerSize), flags: .reply)
                try? socket.send(reply, UnsafeRawBufferPointer(rebasing: prefix[0..<VFIOUserDMAAccess.headerSize]))
            }
        default:
            refuse(ENOSYS)
        }
    }
}
