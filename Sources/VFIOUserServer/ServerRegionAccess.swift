import Glibc
import VFIO
import VFIODeviceKit
import VFIOUserWire
import VFIOSystem

/// `VFIO_USER_REGION_READ` and `REGION_WRITE` without copies in between: a write's data
/// is read from the socket straight into the region's memory (or into one reused buffer
/// for a model that serves the region by callbacks), a read's reply is gathered from the
/// region's memory (or that buffer) by the `sendmsg` itself. The checks and error replies
/// are those of every other command: bounds and READ/WRITE flags (`EINVAL`), data size
/// against `count` (`EINVAL`), `max_data_xfer_size` (`E2BIG`), descriptors (`EINVAL`).
extension VFIOUserServer {
    /// Serves the message whose header was just read when it is a well-formed region
    /// access (the common case) and returns true; returns false, having read nothing
    /// more, for anything else (the general path answers it).
    func serveRegionAccess(_ header: VFIOUserHeader, _ socket: VFIOUserSocket) throws(VFIOError) -> Bool {
        let isRead = header.command == VFIOUserCommand.regionRead.rawValue
        guard header.isCommand, isRead || header.command == VFIOUserCommand.regionWrite.rawValue,
              isRead ? header.messageSize == 32 : header.messageSize > 32,
              header.payloadSize <= Int(configuration.capabilities.maxDataTransferSize) + 4096,
              !socket.currentMessageHasDescriptors else { return false }
        let command: VFIOUserCommand = isRead ? .regionRead : .regionWrite
        let maxFDs = Int(configuration.capabilities.maxMessageFDs)
        var prefix = (UInt64(0), UInt64(0))
        try withUnsafeMutableBytes(of: &prefix) { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in
            try socket.receivePayload(into: raw, maxFDs: maxFDs)
        }
        let offset = UInt64(littleEndian: prefix.0)
        let word = UInt64(littleEndian: prefix.1)
        let index = UInt32(truncatingIfNeeded: word)
        let count = Int(UInt32(truncatingIfNeeded: word >> 32))
        let dataBytes = header.payloadSize - 16

        requestGate.enter()
        defer { requestGate.leave(monitor) }
        let negotiated = self.negotiated.load(ordering: .acquiring)

        // Where the data comes from (reads) or goes to (writes): region memory, or the
        // scratch buffer when the model serves the access (`throughModel`).
        var failure: VFIOError?
        var served = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        var throughModel = false
        do throws(VFIOError) {
            guard negotiated else { throw .errno("\(command.cName) before VFIO_USER_VERSION", EINVAL) }
            if !isRead && dataBytes != count {
                throw .errno("\(command.cName): count \(count) but \(dataBytes) data byte(s)", EINVAL)
            }
            guard UInt64(count) <= configuration.capabilities.maxDataTransferSize else {
                throw .errno("\(command.cName): count \(count) exceeds max_data_xfer_size", E2BIG)
            }
            if let memory = try regionMemory(index, offset: offset, count: count, writing: !isRead) {
                served = memory
            } else {
                served = scratchBuffer(count)
                throughModel = true
            }
        } catch {
            failure = error
        }
        if isRead || failure != nil {
            try socket.skipPayload()
        } else {
            try socket.receivePayload(into: served, maxFDs: maxFDs)
        }
        if !socket.finishMessageWithoutDescriptors(),
           case .failure(let error) = socket.finishMessage(maxFDs: maxFDs, command: header.command), failure == nil {
            failure = error
        }
        if failure == nil && throughModel {
            do throws(VFIOError) {
                if isRead {
                    try model.read(region: index, offset: offset, into: served)
                } else {
                    try model.write(region: index, offset: offset, from: UnsafeRawBufferPointer(served))
                }
            } catch {
                failure = error
            }
        }
        guard header.wantsReply else { return true }
        if let failure {
            logger.debug("command failed", metadata: ["header": "\(header)", "error": "\(failure)"])
            try socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(replyErrno(failure)))
            return true
        }
        let data = isRead ? UnsafeRawBufferPointer(served) : UnsafeRawBufferPointer(start: nil, count: 0)
        let reply = VFIOUserHeader(messageID: header.messageID, command: header.command,
                                   messageSize: UInt32(32 + data.count), flags: .reply)
        try withUnsafeBytes(of: &prefix) { (echo: UnsafeRawBufferPointer) throws(VFIOError) in
            try socket.send(reply, echo, data)
        }
        return true
    }

    /// As `DeviceAccess.memory(for:context:offset:count:writing:)`, from the table made at
    /// start: the region memory an access is served from, nil when the model serves it.
    /// - Throws: `EINVAL` for an unknown region, an empty or out-of-range access, or a
    ///   region without READ / WRITE.
    private func regionMemory(_ index: UInt32, offset: UInt64, count: Int, writing: Bool) throws(VFIOError) -> UnsafeMutableRawBufferPointer? {
        let region = Int(index) < regionFastPaths.count ? regionFastPaths[Int(index)] : nil
        try DeviceAccess.checkAccess(regionSize: region?.size ?? 0, allowed: (writing ? region?.writable : region?.readable) ?? false,
                                     offset: offset, count: count, writing: writing)
        guard let region else { return nil }
        if region.otherAreas {
            return try DeviceAccess.memory(for: regionTable[Int(index)], context: context, offset: offset, count: count, writing: writing)
        }
        guard let window = region.window, let memory = region.memory,
              offset >= window.lowerBound, offset + UInt64(count) <= window.upperBound,
              offset + UInt64(count) <= UInt64(memory.count) else { return nil }
        return UnsafeMutableRawBufferPointer(rebasing: memory[Int(offset)..<Int(offset) + count])
    }

    /// The reused buffer for data a model serves by callbacks, at least `count` bytes.
    private func scratchBuffer(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if scratch.count < count {
            scratch.deallocate()
            scratch = .allocate(byteCount: max(count, 4096), alignment: 64)
        }
        return UnsafeMutableRawBufferPointer(rebasing: scratch[0..<count])
    }
}

/// A region as the region-access path sees it (made once: regions do not change).
struct RegionFastPath {
    var size: UInt64
    var readable: Bool
    var writable: Bool
    /// The server's memory for a memory-backed region.
    var memory: UnsafeMutableRawBufferPointer?
    /// The one mmap area, when there is exactly one.
    var window: Range<UInt64>?
    /// More than one mmap area: the general lookup decides.
    var otherAreas: Bool
}
