/// Builds the data pointer of a command for a transfer that is contiguous in IOVA space
/// (an `NVMeBuffer` range): PRP1 at the first byte, PRP2 the second page or a PRP list
/// (NVMe 1.4, section 4.3; the rules `PRP.segments` checks on the controller side).
package struct PRPBuilder {
    package struct Pointer: Equatable {
        package var prp1: UInt64
        package var prp2: UInt64
        /// Page addresses to store in the command's PRP list page (PRP2 then points at it).
        package var list: [UInt64]
    }

    package let pageSize: Int
    package init(pageSize: Int) { self.pageSize = pageSize }

    /// The most pages one list page holds without chaining; transfers longer than
    /// `maximumTransfer(firstOffset:)` are refused by the host before they get here.
    package var listCapacity: Int { pageSize / 8 }

    /// The longest transfer one list page describes when the data starts at `firstOffset`
    /// within its page.
    package func maximumTransfer(firstOffset: Int) -> Int { pageSize - firstOffset + listCapacity * pageSize }

    /// The pointer for `length` bytes at `iova` with the list page at `listIOVA`.
    /// - Precondition: `iova` is dword-aligned, `length > 0` and within `maximumTransfer`.
    package func pointer(iova: UInt64, length: Int, listIOVA: UInt64) -> Pointer {
        precondition(iova & 3 == 0 && length > 0)
        let page = UInt64(pageSize)
        let first = pageSize - Int(iova % page)
        if length <= first { return Pointer(prp1: iova, prp2: 0, list: []) }
        let next = (iova / page + 1) * page
        let pages = (length - first + pageSize - 1) / pageSize
        if pages == 1 { return Pointer(prp1: iova, prp2: next, list: []) }
        precondition(pages <= listCapacity, "transfer longer than one PRP list page describes")
        return Pointer(prp1: iova, prp2: listIOVA, list: (0..<pages).map { next + UInt64($0) * page })
    }
}
