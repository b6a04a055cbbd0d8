import VFIO

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
        for (i, access) in accesses.enumerated() {
            let count: Int
            switch access {
            case .read(_, _, let buffer): count = buffer.count
            case .write(_, _, let buffer): count = buffer.count
            }
            guard count > 0, count <= transferChunk else {
                throw .invalidArgument("VFIO_USER_REGION_READ/WRITE batch",
                                       "access \(i) moves \(count) byte(s): 1...\(transferChunk) (max_data_xfer_size) per access")
            }
        }
        // The requests' `struct vfio_user_region_access` and the replies' echoes, side by
        // side in two arrays that stay put while the batch is in flight.
        let heads = UnsafeMutableBufferPointer<(UInt64, UInt64)>.allocate(capacity: accesses.count)
        let answers = UnsafeMutableBufferPointer<(UInt64, UInt64)>.allocate(capacity: accesses.count)
        defer { heads.deallocate(); answers.deallocate() }
        var requests: [ClientCore.BatchRequest] = []
        requests.reserveCapacity(accesses.count)
        for (i, access) in accesses.enumerated() {
            let (command, region, offset, count, data, replyData): (VFIOUserCommand, UInt32, UInt64, Int, UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer)
            switch access {
            case .read(let r, let o, let buffer):
                (command, region, offset, count, data, replyData) = (.regionRead, r, o, buffer.count, UnsafeRawBufferPointer(start: nil, count: 0), buffer)
            case .write(let r, let o, let buffer):
                (command, region, offset, count, data, replyData) = (.regionWrite, r, o, buffer.count, buffer, UnsafeMutableRawBufferPointer(start: nil, count: 0))
            }
            heads[i] = (offset.littleEndian, (UInt64(UInt32(count)) << 32 | UInt64(region)).littleEndian)
            answers[i] = (0, 0)
            let head = UnsafeRawBufferPointer(start: heads.baseAddress! + i, count: 16)
            let prefix = UnsafeMutableRawBufferPointer(start: answers.baseAddress! + i, count: 16)
            requests.append(ClientCore.BatchRequest(command: command.rawValue, first: head, second: data,
                                                    direct: DirectReply(prefix: prefix, data: replyData)))
        }
        let replies = try core.exchangeBatch(requests)
        var failure: VFIOError?
        for (i, access) in accesses.enumerated() {
            let (command, count, replyData): (VFIOUserCommand, Int, UnsafeMutableRawBufferPointer)
            switch access {
            case .read(_, _, let buffer): (command, count, replyData) = (.regionRead, buffer.count, buffer)
            case .write(_, _, let buffer): (command, count, replyData) = (.regionWrite, buffer.count, UnsafeMutableRawBufferPointer(start: nil, count: 0))
            }
            do throws(VFIOError) {
                try checkRegionReply(replies[i], command, count: count, answer: answers[i], replyData: replyData)
            } catch {
                if failure == nil { failure = error }
            }
        }
        if let failure { throw failure }
    }
}
