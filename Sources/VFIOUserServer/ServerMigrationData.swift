import Glibc
import VFIO
import VFIODeviceKit
import VFIOUserWire
import VFIOSystem

// VFIO_USER_MIG_DATA_READ and VFIO_USER_MIG_DATA_WRITE served from the message header on,
// so that the stream's bytes are not built into arrays: a read's reply is gathered from
// the 8-byte `vfio_user_mig_data` and the stream bytes where the migration driver holds
// them (one `sendmsg`), and a write's data is read from the socket straight into the
// driver's resuming stream. This is the only path of these commands.
extension VFIOUserServer {
    /// Serves the MIG_DATA_READ or MIG_DATA_WRITE command whose header `receiveHeader` just
    /// returned, with the device lock held (`session`): reads the rest of the message,
    /// answers it (an error reply for a bad or refused request). Payloads past
    /// `maxPayload` are read and dropped, E2BIG (as `receive(maxPayload:maxFDs:)` rejects
    /// them).
    /// - Throws: only the socket's errors (the connection is then unusable).
    func serveMigrationData(_ header: VFIOUserHeader, _ socket: VFIOUserSocket, _ session: SessionState) throws(VFIOError) {
        let command: VFIOUserCommand = header.command == VFIOUserCommand.migDataRead.rawValue ? .migDataRead : .migDataWrite
        let maxFDs = self.maxFDs
        let payloadSize = header.payloadSize
        if payloadSize > self.maxPayload {
            try socket.skipPayload()
            _ = finishWithoutDescriptors(socket, header, maxFDs: maxFDs)
            let error = VFIOError.errno("\(command.cName): message of \(header.messageSize) bytes exceeds the limit of \(self.maxPayload + 16)", E2BIG)
            logger.debug("rejected message", metadata: ["header": "\(header)", "error": "\(error)"])
            if header.wantsReply {
                try socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(E2BIG))
            }
            return
        }
        // struct vfio_user_mig_data: argsz, size (little-endian u32s).
        let prefix = UnsafeMutableRawBufferPointer.allocate(byteCount: VFIOUserMigData.fixedSize, alignment: 4)
        defer { prefix.deallocate() }
        let prefixCount = min(payloadSize, VFIOUserMigData.fixedSize)
        try socket.receivePayload(into: UnsafeMutableRawBufferPointer(rebasing: prefix[0..<prefixCount]), maxFDs: maxFDs)

        var transport: VFIOError?
        let outcome: Result<Void, VFIOError>
        do throws(VFIOError) {
            let request = try migDataPrefix(command, prefix, prefixCount, dataCount: payloadSize - prefixCount, negotiated: session.negotiated)
            switch command {
            case .migDataRead:
                let driver = try readableStream(request, clientLimit: session.clientCapabilities.maxDataTransferSize)
                try finishWithoutDescriptors(socket, header, maxFDs: maxFDs).get()
                try driver.readData(max: Int(request.size)) { (data: UnsafeRawBufferPointer) throws(VFIOError) in
                    guard header.wantsReply else { return }
                    let fields = UnsafeMutableRawBufferPointer(rebasing: prefix[0..<VFIOUserMigData.fixedSize])
                    fields.storeBytes(of: UInt32(VFIOUserMigData.fixedSize + data.count).littleEndian, as: UInt32.self)
                    fields.storeBytes(of: UInt32(data.count).littleEndian, toByteOffset: 4, as: UInt32.self)
                    let reply = VFIOUserHeader(messageID: header.messageID, command: header.command,
                                               messageSize: UInt32(VFIOUserHeader.size + fields.count + data.count), flags: .reply)
                    do throws(VFIOError) { try socket.send(reply, UnsafeRawBufferPointer(fields), data) } catch { transport = error; throw error }
                }
            default:
                let driver = try writableStream(request)
                try driver.writeData(count: Int(request.size)) { (target: UnsafeMutableRawBufferPointer) throws(VFIOError) in
                    do throws(VFIOError) { try socket.receivePayload(into: target, maxFDs: maxFDs) } catch { transport = error; throw error }
                    try finishWithoutDescriptors(socket, header, maxFDs: maxFDs).get()
                }
                if header.wantsReply {
                    do throws(VFIOError) { try socket.send(id: header.messageID, command: header.command, flags: .reply) } catch { transport = error; throw error }
                }
            }
            outcome = .success(())
        } catch {
            if let transport { throw transport }
            outcome = .failure(error)
        }
        switch outcome {
        case .success:
            logger.trace("handled", metadata: ["header": "\(header)"])
        case .failure(var error):
            // The rest of the message, and its descriptors: a command with descriptors is
            // refused with EINVAL whatever else is wrong, as `handle` refuses it first.
            try socket.skipPayload()
            if case .failure(let refused) = finishWithoutDescriptors(socket, header, maxFDs: maxFDs) { error = refused }
            logger.debug("command failed", metadata: ["header": "\(header)", "error": "\(error)"])
            if header.wantsReply {
                try socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(replyErrno(error)))
            }
        }
    }

    /// Ends the message; its descriptors (closed here) are an error, as `handle` refuses
    /// descriptors on these commands (and `receive` more than `maxFDs` of them). A second
    /// call for the same message finds none.
    private func finishWithoutDescriptors(_ socket: VFIOUserSocket, _ header: VFIOUserHeader, maxFDs: Int) -> Result<Void, VFIOError> {
        switch socket.finishMessage(maxFDs: maxFDs, command: header.command) {
        case .failure(let error):
            return .failure(error)
        case .success(let fds):
            guard !fds.isEmpty else { return .success(()) }
            for fd in fds { closeDescriptor(fd) }
            return .failure(.errno("\(VFIOUserCommand.name(header.command)) carries no descriptors", EINVAL))
        }
    }

    /// The checks `handle` makes before it decodes, and those of `VFIOUserMigData(decoding:)`,
    /// on the fixed fields read so far (`count` of them) and the number of data bytes
    /// that follow.
    private func migDataPrefix(_ command: VFIOUserCommand, _ prefix: UnsafeMutableRawBufferPointer, _ count: Int,
                               dataCount: Int, negotiated: Bool) throws(VFIOError) -> (size: UInt32, dataCount: Int) {
        guard negotiated else {
            throw .errno("\(command.cName) before VFIO_USER_VERSION", EINVAL)
        }
        let name = VFIOUserMigData.cName
        guard count == VFIOUserMigData.fixedSize else {
            throw .malformed(name, "\(count) byte(s), the structure has \(VFIOUserMigData.fixedSize)")
        }
        let argsz = UInt32(littleEndian: prefix.loadUnaligned(as: UInt32.self))
        let size = UInt32(littleEndian: prefix.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard Int(argsz) >= VFIOUserMigData.fixedSize else {
            throw .malformed(name, "argsz \(argsz) is smaller than the \(VFIOUserMigData.fixedSize)-byte structure")
        }
        guard dataCount == 0 || UInt64(dataCount) == UInt64(size) else {
            throw .malformed(name, "size \(size) but \(dataCount) data byte(s) follow")
        }
        return (size, dataCount)
    }

    /// MIG_DATA_READ's checks: the driver to read from.
    private func readableStream(_ request: (size: UInt32, dataCount: Int), clientLimit: UInt32) throws(VFIOError) -> MigrationDriver {
        let name = VFIOUserCommand.migDataRead.cName
        guard request.dataCount == 0 else { throw .errno("\(name): a read request carries no data", EINVAL) }
        guard let driver = device.migration else { throw .errno("\(name): the device does not migrate", EINVAL) }
        let limit = min(configuration.capabilities.maxDataTransferSize, clientLimit)
        guard UInt64(request.size) <= limit else {
            throw .errno("\(name): size \(request.size) exceeds max_data_xfer_size \(limit)", E2BIG)
        }
        return driver
    }

    /// MIG_DATA_WRITE's checks: the driver to write to.
    private func writableStream(_ request: (size: UInt32, dataCount: Int)) throws(VFIOError) -> MigrationDriver {
        let name = VFIOUserCommand.migDataWrite.cName
        guard request.dataCount == Int(request.size) else {
            throw .errno("\(name): size \(request.size) but \(request.dataCount) data byte(s)", EINVAL)
        }
        guard request.size <= configuration.capabilities.maxDataTransferSize else {
            throw .errno("\(name): size \(request.size) exceeds max_data_xfer_size", E2BIG)
        }
        guard let driver = device.migration else { throw .errno("\(name): the device does not migrate", EINVAL) }
        return driver
    }
}
