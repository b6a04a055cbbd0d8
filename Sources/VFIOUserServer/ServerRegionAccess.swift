import Glibc
import VFIO
import VFIODeviceKit
import VFIOUserWire
import VFIOSystem

/// `VFIO_USER_REGION_READ` and `REGION_WRITE`: every such command, well-formed or not,
/// is served here from its header on, and every region access (REGION_WRITE_MULTI's
/// too) goes through `regionTarget`: one bounds check (`DeviceAccess.checkAccess`), then
/// the region's memory or the model's callback, as the region's `DeviceAccess.Route`
/// (made once, when the server is made) says.
///
/// No copies in between: a write's data is read from the socket straight into the
/// region's memory (or into one reused buffer for a model that serves the region by
/// callbacks), a read's reply is gathered from the region's memory (or that buffer) by
/// the `sendmsg` itself.
///
/// A malformed access gets one error reply (none with `VFIO_USER_F_NO_REPLY`) and the
/// connection stays up: a payload past `max_data_xfer_size` + 4096 (`E2BIG`, read and
/// dropped); before `VFIO_USER_VERSION`, descriptors attached, a payload shorter than
/// `struct vfio_user_region_access`, a read that carries data or a write whose data is
/// not `count` bytes (`EINVAL`); `count` above `max_data_xfer_size` (`E2BIG`); an unknown
/// region, an empty or out-of-range access, a region without READ / WRITE (`EINVAL`);
/// whatever the model throws. Descriptors that come only with a write's data (peers send
/// them with a message's first byte) are found once the data has landed: the write is
/// refused then, but region memory already holds it.
/// `VFIOUserRegionAccess.headerSize`, as a constant of this module (the hot path reads no
/// other module's static).
private let regionAccessSize = 16

extension VFIOUserServer {
    /// Serves the REGION_READ or REGION_WRITE command whose header was just read, with the
    /// device lock held (`state`).
    /// - Throws: only the socket's errors (the connection is then unusable).
    func serveRegionAccess(_ header: VFIOUserHeader, _ socket: VFIOUserSocket, _ state: inout ServerState) throws(VFIOError) {
        let isRead = header.command == VFIOUserCommand.regionRead.rawValue
        let maxFDs = self.maxFDs
        let maxCount = maxPayload - 4096   // max_data_xfer_size
        let payloadSize = header.payloadSize
        guard payloadSize <= maxPayload else {
            let name = Self.accessName(isRead)
            return try refuseAccess(header, socket, .errno("\(name): message of \(header.messageSize) bytes exceeds the limit of \(maxPayload + 16)", E2BIG),
                                    refusedForSize: true)
        }
        // struct vfio_user_region_access: offset u64, region u32, count u32.
        var prefix = (UInt64(0), UInt64(0))
        let prefixSize = min(payloadSize, regionAccessSize)
        try withUnsafeMutableBytes(of: &prefix) { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in
            try socket.receivePayload(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<prefixSize]), maxFDs: maxFDs)
        }
        let offset = UInt64(littleEndian: prefix.0)
        let index = UInt32(truncatingIfNeeded: UInt64(littleEndian: prefix.1))
        let count = Int(UInt32(truncatingIfNeeded: UInt64(littleEndian: prefix.1) >> 32))
        // Where the data comes from (reads) or goes to (writes): region memory, or the
        // scratch buffer when the model serves the access (`throughModel`).
        let served: UnsafeMutableRawBufferPointer
        let throughModel: Bool
        do throws(VFIOError) {
            guard state.session.negotiated else { throw .errno("\(Self.accessName(isRead)) before VFIO_USER_VERSION", EINVAL) }
            guard !socket.currentMessageHasDescriptors else { throw .errno("\(Self.accessName(isRead)) carries no descriptors", EINVAL) }
            guard prefixSize == regionAccessSize else {
                throw .malformed(VFIOUserRegionAccess.cName, "\(payloadSize) byte(s), the structure has \(regionAccessSize)")
            }
            let dataSize = payloadSize - regionAccessSize
            if isRead && dataSize != 0 { throw .errno("\(Self.accessName(isRead)): a read request carries no data", EINVAL) }
            if !isRead && dataSize != count { throw .errno("\(Self.accessName(isRead)): count \(count) but \(dataSize) data byte(s)", EINVAL) }
            guard count <= maxCount else { throw .errno("\(Self.accessName(isRead)): count \(count) exceeds max_data_xfer_size", E2BIG) }
            if let memory = try regionTarget(index, offset: offset, count: count, writing: !isRead) {
                served = memory
                throughModel = false
            } else {
                served = Self.scratchBuffer(&state.scratch, count)
                throughModel = true
            }
        } catch {
            return try refuseAccess(header, socket, error, refusedForSize: false)
        }
        if isRead {
            try socket.skipPayload()
        } else {
            try socket.receivePayload(into: served, maxFDs: maxFDs)
        }
        guard socket.finishMessageWithoutDescriptors() else {
            return try refuseAccess(header, socket, .errno("\(Self.accessName(isRead)) carries no descriptors", EINVAL), refusedForSize: false)
        }
        if throughModel {
            do throws(VFIOError) {
                if isRead {
                    try model.read(region: index, offset: offset, into: served)
                } else {
                    try model.write(region: index, offset: offset, from: UnsafeRawBufferPointer(served))
                }
            } catch {
                return try replyFailure(header, socket, error)
            }
        }
        guard header.wantsReply else { return }
        let data = isRead ? UnsafeRawBufferPointer(served) : UnsafeRawBufferPointer(start: nil, count: 0)
        let reply = VFIOUserHeader(messageID: header.messageID, command: header.command,
                                   messageSize: UInt32(16 + regionAccessSize + data.count), flags: .reply)
        try withUnsafeBytes(of: &prefix) { (echo: UnsafeRawBufferPointer) throws(VFIOError) in
            try socket.send(reply, echo, data)
        }
    }

    /// Ends an access refused with `error`: the rest of its payload is read and dropped,
    /// descriptors that came with it are closed (and the access refused with `EINVAL` for
    /// them, unless it is refused for its size already), then one error reply goes out.
    private func refuseAccess(_ header: VFIOUserHeader, _ socket: VFIOUserSocket, _ error: VFIOError,
                              refusedForSize: Bool) throws(VFIOError) {
        try socket.skipPayload()
        var failure = error
        if !socket.finishMessageWithoutDescriptors() {
            let refused: VFIOError
            switch socket.finishMessage(maxFDs: maxFDs, command: header.command) {
            case .failure(let error):
                refused = error
            case .success(let fds):
                for fd in fds { closeDescriptor(fd) }
                refused = .errno("\(Self.accessName(header.command == VFIOUserCommand.regionRead.rawValue)) carries no descriptors", EINVAL)
            }
            if !refusedForSize { failure = refused }
        }
        try replyFailure(header, socket, failure)
    }

    /// The error reply to an access that failed (none with `VFIO_USER_F_NO_REPLY`).
    private func replyFailure(_ header: VFIOUserHeader, _ socket: VFIOUserSocket, _ failure: VFIOError) throws(VFIOError) {
        guard header.wantsReply else { return }
        logger.debug("command failed", metadata: ["header": "\(header)", "error": "\(failure)"])
        try socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(replyErrno(failure)))
    }

    /// The C name of the command, for errors.
    private static func accessName(_ isRead: Bool) -> String {
        isRead ? "VFIO_USER_REGION_READ" : "VFIO_USER_REGION_WRITE"
    }

    /// The one path of every region access: checks it (`DeviceAccess.checkAccess`) and
    /// returns the bytes of region memory it is served from, or `nil` when the model
    /// serves it (`read` / `write`).
    /// - Throws: `EINVAL` for an unknown region, an empty or out-of-range access, or a
    ///   region without READ / WRITE.
    @inline(__always)
    func regionTarget(_ index: UInt32, offset: UInt64, count: Int, writing: Bool) throws(VFIOError) -> UnsafeMutableRawBufferPointer? {
        guard Int(index) < regionRoutes.count else {
            return try DeviceAccess.Route.absent.target(offset: offset, count: count, writing: writing)
        }
        return try regionRoutes[Int(index)].target(offset: offset, count: count, writing: writing)
    }

    /// The first `count` bytes of `scratch`, the reused buffer for data a model serves by
    /// callbacks (grown as needed).
    @inline(__always)
    private static func scratchBuffer(_ scratch: inout UnsafeMutableRawBufferPointer, _ count: Int) -> UnsafeMutableRawBufferPointer {
        if scratch.count < count {
            scratch.deallocate()
            scratch = .allocate(byteCount: max(count, 4096), alignment: 64)
        }
        return UnsafeMutableRawBufferPointer(rebasing: scratch[0..<count])
    }
}
