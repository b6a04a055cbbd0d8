import CVFIO
import Glibc
import VFIO
import VFIOSystem
import VFIOUserWire

/// The client's side of server DMA: the table of memory this client mapped with
/// `mapDMA`, and the DMA thread that answers the server's `VFIO_USER_DMA_READ` /
/// `DMA_WRITE` against it.
extension ClientCore {
    /// Serves the queued server commands in order until the connection fails (commands
    /// still queued then are dropped). A command's memory stays counted until it is served.
    func dmaLoop() {
        var served: ServerCommand?
        while true {
            let next = dmaQueue.wait { queue -> ServerCommand?? in
                if let done = served {
                    served = nil
                    queue.finished(done)
                    if queue.readerWaits && queue.bytes < maxQueuedBytes {
                        queue.readerWaits = false
                        queueRoom.signal()
                    }
                }
                if queue.closed {
                    queue.removeAll()
                    return .some(nil)
                }
                if let command = queue.popFirst() { return .some(command) }
                return nil
            }
            guard let command = next else { return }
            switch command {
            case .serve(let message): serve(message)
            case .refuse(let header, let code): refuse(header, code)
            }
            served = command
            serverCommandAnswered()
        }
    }

    /// Sends this client's reply to a server command from the DMA thread, within the reply
    /// timeout (the server must read it); a reply that cannot go out fails the connection.
    private func sendAnswer(_ header: VFIOUserHeader, _ first: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                            _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        let deadline = ClientDeadline(command: header.command, id: header.messageID, timeout: replyTimeout, isReply: true)
        do {
            try socket.transmit(header, first, second, fds: [], dontWait: true,
                                whenFull: { () throws(VFIOError) in try waitForRoomOnly(deadline: deadline) })
        } catch {
            fail(error.errnoValue == EPIPE ? .errno("vfio-user connection (the server closed it)", ECONNRESET) : error)
        }
    }

    /// Answers a server command with an error reply, when it wants a reply.
    private func refuse(_ header: VFIOUserHeader, _ code: Int32) {
        guard header.wantsReply else { return }
        sendAnswer(VFIOUserHeader(messageID: header.messageID, command: header.command, messageSize: UInt32(VFIOUserHeader.size),
                                  flags: [.reply, .error], error: UInt32(bitPattern: code)))
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
        dmaTable.withLock { _ = $0.removeAll() }
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
        func refuse(_ code: Int32) { self.refuse(header, code) }
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
                        sendAnswer(reply, echo, UnsafeRawBufferPointer(pieces.first ?? UnsafeMutableRawBufferPointer(start: nil, count: 0)))
                    } else {
                        let joined = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(count), alignment: 16)
                        defer { joined.deallocate() }
                        var at = 0
                        for piece in pieces {
                            (joined.baseAddress! + at).copyMemory(from: piece.baseAddress!, byteCount: piece.count)
                            at += piece.count
                        }
                        sendAnswer(reply, echo, UnsafeRawBufferPointer(joined))
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
                sendAnswer(reply, UnsafeRawBufferPointer(rebasing: prefix[0..<VFIOUserDMAAccess.headerSize]))
            }
        default:
            refuse(ENOSYS)
        }
    }
}
