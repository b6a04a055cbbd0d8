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

    func addMapping(_ mapping: ClientDMAMapping) {
        monitor.withLock { state in
            state.mappings.append(mapping)
            state.mappings.sort { $0.range.start < $1.range.start }
        }
    }

    func removeMappings(inside range: IOVARange) {
        monitor.withLock { state in
            state.mappings.removeAll { $0.range.start >= range.start && $0.range.last <= range.last }
        }
    }

    func removeAllMappings() {
        monitor.withLock { $0.mappings.removeAll() }
    }

    /// Copies between client memory and `buffer` for a server DMA message; every byte must
    /// be mapped with `access`.
    private func copyDMA(address: UInt64, count: Int, access: DMAAccess, _ body: (UnsafeMutableRawPointer, Int, Int) -> Void) -> Bool {
        monitor.withLock { state in
            var pieces: [(UnsafeMutableRawPointer, Int, Int)] = []
            var at = address
            var done = 0
            while done < count {
                guard let m = state.mappings.first(where: { $0.range.contains(at) }), m.access.contains(access) else { return false }
                let available = (m.range.last - at) &+ 1
                let length = available == 0 ? count - done : Int(min(available, UInt64(count - done)))
                pieces.append((m.base + Int(at - m.range.start), done, length))
                done += length
                at &+= UInt64(length)
            }
            for piece in pieces { body(piece.0, piece.1, piece.2) }
            return true
        }
    }

    /// Serves a server-initiated command: DMA_READ and DMA_WRITE; anything else gets ENOSYS.
    func serve(_ message: VFIOUserMessage) {
        let header = message.header
        message.closeDescriptors()
        func answer(_ payload: [UInt8]) {
            guard header.wantsReply else { return }
            try? socket.send(id: header.messageID, command: header.command, flags: .reply, payload: payload)
        }
        func refuse(_ code: Int32) {
            guard header.wantsReply else { return }
            try? socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(code))
        }
        let limit = UInt64(configuration.capabilities.maxDataTransferSize)
        switch VFIOUserCommand(rawValue: header.command) {
        case .dmaRead:
            guard let request = try? VFIOUserDMAAccess(decoding: message.payload), request.data.isEmpty else { return refuse(EINVAL) }
            guard request.count <= limit else { return refuse(E2BIG) }
            var data = [UInt8](repeating: 0, count: Int(request.count))
            let ok = data.withUnsafeMutableBytes { raw in
                copyDMA(address: request.address, count: Int(request.count), access: .read) { pointer, at, length in
                    (raw.baseAddress! + at).copyMemory(from: pointer, byteCount: length)
                }
            }
            guard ok else { return refuse(EFAULT) }
            monitor.withLock { $0.served += 1 }
            answer(VFIOUserDMAAccess(address: request.address, count: request.count, data: data).encoded)
        case .dmaWrite:
            guard let request = try? VFIOUserDMAAccess(decoding: message.payload),
                  UInt64(request.data.count) == request.count else { return refuse(EINVAL) }
            guard request.count <= limit else { return refuse(E2BIG) }
            let ok = request.data.withUnsafeBytes { raw in
                copyDMA(address: request.address, count: Int(request.count), access: .write) { pointer, at, length in
                    pointer.copyMemory(from: raw.baseAddress! + at, byteCount: length)
                }
            }
            guard ok else { return refuse(EFAULT) }
            monitor.withLock { $0.served += 1 }
            answer(VFIOUserDMAAccess(address: request.address, count: request.count).encoded)
        default:
            refuse(ENOSYS)
        }
    }
}
