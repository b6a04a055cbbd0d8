/// One contiguous piece of a data transfer: `length` bytes at host address `address`.
public struct DataSegment: Sendable, Hashable {
    public var address: UInt64
    public var length: Int
    public init(address: UInt64, length: Int) {
        self.address = address
        self.length = length
    }
}

/// The rules of Physical Region Page entries (NVMe 1.4, section 4.3) for a transfer of
/// `length` bytes with memory page size `pageSize` (CC.MPS):
/// - PRP1 points at the first byte; its offset inside its page may be any dword-aligned
///   value (bits 1:0 zero).
/// - When the data ends inside PRP1's page, PRP2 is unused. When it ends in the next page,
///   PRP2 is that page's address (offset 0).
/// - Otherwise PRP2 points at a PRP list (dword-aligned; its offset counts), whose entries
///   are page addresses with offset 0. A list that does not fit the rest of its page
///   continues at the address in the page's last entry (the spec's "PRP List pointer"),
///   which must be page-aligned as well.
public enum PRP {
    /// Why a data pointer was refused, with the status the spec gives it.
    public enum Failure: Error, Sendable, Hashable {
        /// A PRP entry with an offset where the rules want none, or PRP1/PRP2 not dword
        /// aligned: Invalid PRP Offset.
        case invalidOffset
        /// A PRP list could not be read (unmapped): Data Transfer Error.
        case listUnreadable

        public var status: NVMeStatus {
            switch self {
            case .invalidOffset: return .invalidPRPOffset
            case .listUnreadable: return .dataTransferError
            }
        }
    }

    /// The segments of a transfer, adjacent pages merged. `readList(address, count)`
    /// returns `count` 8-byte entries read from host memory at `address` (nil when that
    /// memory cannot be read). Reads at most `length / pageSize + 1` list entries in
    /// total, so a hostile list costs no more than the transfer it describes.
    /// - Precondition: `pageSize` is a power of two >= 4096; `length > 0`.
    public static func segments(prp1: UInt64, prp2: UInt64, length: Int, pageSize: Int,
                                readList: (UInt64, Int) -> [UInt64]?) -> Result<[DataSegment], Failure> {
        precondition(pageSize >= 4096 && pageSize.nonzeroBitCount == 1 && length > 0)
        let mask = UInt64(pageSize - 1)
        guard prp1 & 0x3 == 0 else { return .failure(.invalidOffset) }
        var segments: [DataSegment] = []
        func add(_ address: UInt64, _ count: Int) {
            if let last = segments.last, last.address &+ UInt64(last.length) == address {
                segments[segments.count - 1].length += count
            } else {
                segments.append(DataSegment(address: address, length: count))
            }
        }
        let first = min(length, pageSize - Int(prp1 & mask))
        add(prp1, first)
        var remaining = length - first
        if remaining == 0 { return .success(segments) }
        if remaining <= pageSize {
            guard prp2 & mask == 0 else { return .failure(.invalidOffset) }
            add(prp2, remaining)
            return .success(segments)
        }
        guard prp2 & 0x7 == 0 else { return .failure(.invalidOffset) }
        var list = prp2
        while remaining > 0 {
            // Entries left in this list page, and whether the last one chains.
            let slots = (pageSize - Int(list & mask)) / 8
            let pagesLeft = (remaining + pageSize - 1) / pageSize
            let chains = pagesLeft > slots
            let count = chains ? slots : pagesLeft
            guard let entries = readList(list, count), entries.count == count else { return .failure(.listUnreadable) }
            let dataEntries = chains ? count - 1 : count
            for k in 0..<dataEntries {
                guard entries[k] & mask == 0 else { return .failure(.invalidOffset) }
                let piece = min(remaining, pageSize)
                add(entries[k], piece)
                remaining -= piece
            }
            if chains {
                list = entries[count - 1]
                guard list & mask == 0 else { return .failure(.invalidOffset) }
                guard dataEntries > 0 else { return .failure(.invalidOffset) }
            }
        }
        return .success(segments)
    }
}
