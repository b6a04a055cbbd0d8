import Glibc
import Synchronization
import VFIO
import VFIOSystem

/// Where a device's DMA addresses are translated: a type1 container (shared by every
/// group in it) or an iommufd IOAS (shared by every device attached to it).
///
/// Mapped memory is retained until unmapped, so a buffer cannot be freed under a live
/// mapping. IOVAs may be chosen by the caller or allocated inside the valid ranges.
public protocol DMASpace: AnyObject, Sendable {
    /// The IOVA ranges DMA may use.
    func validIOVARanges() throws(VFIOError) -> [IOVARange]
    /// Maps `size` bytes of `memory` from `offset` at `iova`.
    func map(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError)
    /// Maps `size` bytes of `memory` from `offset` at an IOVA allocated inside the valid
    /// ranges, aligned to `alignment`, ending at or below `limit`. Returns the IOVA.
    func map(_ memory: any DMAMemory, offset: Int, size: Int, access: DMAAccess, alignment: UInt64, limit: UInt64) throws(VFIOError) -> UInt64
    /// Unmaps exactly `[iova, iova + size)`.
    func unmap(iova: UInt64, size: UInt64) throws(VFIOError)
    /// Unmaps everything.
    func unmapAll() throws(VFIOError)
}

extension DMASpace {
    /// Maps the whole of `memory` at an allocated IOVA below `limit`, aligned to
    /// `alignment` (the page size by default; 2 MiB lets huge pages map as huge IOMMU
    /// pages); returns the IOVA.
    public func map(_ memory: any DMAMemory, access: DMAAccess = .readWrite, alignment: UInt64 = UInt64(SystemCall.pageSize),
                    limit: UInt64 = .max) throws(VFIOError) -> UInt64 {
        try map(memory, offset: 0, size: memory.size, access: access, alignment: alignment, limit: limit)
    }
}

/// The bookkeeping both DMA spaces share: the allocator (made on first use from the valid
/// ranges) and the memory each mapping keeps alive.
struct DMABookkeeping: Sendable {
    struct Mapping: Sendable {
        var memory: any DMAMemory
        var size: UInt64
    }
    var allocator: IOVAAllocator?
    var mappings: [UInt64: Mapping] = [:]

    /// Records a mapping the kernel made of `memory` at `iova` (keeping `memory` alive) and
    /// takes its range out of the allocator's free space.
    mutating func record(_ memory: any DMAMemory, iova: UInt64, size: UInt64) {
        mappings[iova] = Mapping(memory: memory, size: size)
        try? allocator?.reserve(iova: iova, size: size)
    }

    /// Removes the records inside `[iova, iova + size)` and their allocations.
    mutating func forget(iova: UInt64, size: UInt64) {
        let end = iova &+ size
        for (start, _) in mappings where start >= iova && (size == .max || start < end) {
            mappings.removeValue(forKey: start)
            allocator?.release(iova: start)
        }
    }

    mutating func forgetAll() {
        mappings.removeAll()
        allocator?.releaseAll()
    }
}

/// Checks that `[offset, offset + size)` lies inside `memory` and is page-aligned, and
/// returns its virtual address.
func dmaAddress(_ memory: any DMAMemory, offset: Int, size: Int, operation: String) throws(VFIOError) -> UInt64 {
    let page = SystemCall.pageSize
    guard size > 0, offset >= 0, offset <= memory.size, size <= memory.size - offset else {
        throw .invalidArgument(operation, "range offset \(offset) size \(size) lies outside the \(memory.size)-byte buffer")
    }
    guard offset % page == 0, size % page == 0, Int(bitPattern: memory.baseAddress) % page == 0 else {
        throw .invalidArgument(operation, "offset \(offset) and size \(size) must be multiples of the page size \(page)")
    }
    return UInt64(UInt(bitPattern: memory.baseAddress + offset))
}
