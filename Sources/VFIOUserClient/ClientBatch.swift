import VFIO
import VFIOUserWire
import VFIOSystem

extension VFIOUserClient {
    /// One region access of `perform(_:)`. The buffers are borrowed for the call.
    public enum Access {
        /// `VFIO_USER_REGION_READ` of `buffer.count` bytes at `offset` of region `region`.
        case read(region: UInt32, offset: UInt64, into: UnsafeMutableRawBufferPointer)
        /// `VFIO_USER_REGION_WRITE` of `buffer` at `offset` of region `region`.
        case write(region: UInt32, offset: UInt64, from: UnsafeRawBufferPointer)
    }

    /// Region accesses with all their requests in flight at once from this thread: every
    /// request is sent (in one system call while they fit 64 KiB) before the first reply
    /// is awaited, so the accesses cost about one round trip together instead of one each.
    /// The server handles them in the order given, so a read sees the writes before it.
    ///
    /// Every reply is collected before anything is thrown; a read that failed leaves its
    /// buffer unspecified, the others are done.
    /// - Throws: `.invalidArgument` (nothing sent) for an empty access or one above the
    ///   transfer size both peers accept (`max_data_xfer_size`): split it, or use
    ///   `read`/`write`; then the first failed access's error in the order given
    ///   (`EINVAL` out of range, ...); the connection's failure.
    public func perform(_ accesses: [Access]) throws(VFIOError) {
        guard !accesses.isEmpty else { return }
        let parts = accesses.map(\.parts)
        for (i, part) in parts.enumerated() {
            let count = part.count
            guard count > 0, count <= transferChunk else {
                throw .invalidArgument("VFIO_USER_REGION_READ/WRITE batch",
                                       "access \(i) moves \(count) byte(s): 1...\(transferChunk) (max_data_xfer_size) per access")
            }
        }
        // The requests' `struct vfio_user_region_access` and the replies' echoes, side by
        // side in two arrays that stay put while the batch is in flight.
        let heads = UnsafeMutableBufferPointer<(UInt64, UInt64)>.allocate(capacity: parts.count)
        let answers = UnsafeMutableBufferPointer<(UInt64, UInt64)>.allocate(capacity: parts.count)
        defer { heads.deallocate(); answers.deallocate() }
        var requests: [ClientCore.BatchRequest] = []
        requests.reserveCapacity(parts.count)
        for (i, part) in parts.enumerated() {
            heads[i] = Self.regionAccessHead(region: part.region, offset: part.offset, count: part.count)
            answers[i] = (0, 0)
            let head = UnsafeRawBufferPointer(start: heads.baseAddress! + i, count: 16)
            let prefix = UnsafeMutableRawBufferPointer(start: answers.baseAddress! + i, count: 16)
            requests.append(ClientCore.BatchRequest(command: part.command.rawValue, first: head, second: part.out,
                                                    direct: DirectReply(prefix: prefix, data: part.back)))
        }
        let replies = try core.exchangeBatch(requests)
        var failure: VFIOError?
        for (i, part) in parts.enumerated() {
            do throws(VFIOError) {
                try checkRegionReply(replies[i], part.command, count: part.count, answer: answers[i], replyData: part.back)
            } catch {
                if failure == nil { failure = error }
            }
        }
        if let failure { throw failure }
    }
}

extension VFIOUserClient.Access {
    /// The request this access makes: its command and place, the data that goes out
    /// (writes) and the room for the data that comes back (reads); one of them is empty.
    var parts: (command: VFIOUserCommand, region: UInt32, offset: UInt64, out: UnsafeRawBufferPointer,
                back: UnsafeMutableRawBufferPointer, count: Int) {
        switch self {
        case .read(let region, let offset, let buffer):
            return (.regionRead, region, offset, UnsafeRawBufferPointer(start: nil, count: 0), buffer, buffer.count)
        case .write(let region, let offset, let buffer):
            return (.regionWrite, region, offset, buffer, UnsafeMutableRawBufferPointer(start: nil, count: 0), buffer.count)
        }
    }
}
