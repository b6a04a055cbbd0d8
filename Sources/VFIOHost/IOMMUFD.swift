import CVFIO
import Glibc
import Synchronization
import VFIO
import VFIOSystem

/// An iommufd (`/dev/iommu`): the context device cdevs bind to, holding IOASes.
public final class IOMMUFD: Sendable {
    public let descriptor: OwnedDescriptor
    let ioctl: Ioctl

    /// Opens `/dev/iommu`.
    /// - Throws: `ENOENT` on kernels without `CONFIG_IOMMUFD`.
    public init(system: HostSystem = .live, path: String = "/dev/iommu") throws(VFIOError) {
        ioctl = Ioctl(system: system)
        descriptor = OwnedDescriptor(try ioctl.open(path))
    }

    /// `IOMMU_IOAS_ALLOC`: a new, empty I/O address space.
    public func allocateIOAS() throws(VFIOError) -> IOAS {
        var bytes = IOMMUFDIOASAlloc().encoded()
        try ioctl.call("IOMMU_IOAS_ALLOC", try descriptor.requireOpen("IOMMU_IOAS_ALLOC"), CVFIO_IOMMU_IOAS_ALLOC, &bytes)
        let reply = try IOMMUFDIOASAlloc(decoding: bytes)
        return IOAS(iommufd: self, id: reply.outIOASID)
    }

    /// `IOMMU_DESTROY` of an object (IOAS, HWPT, ...).
    public func destroy(_ id: UInt32) throws(VFIOError) {
        var bytes = IOMMUFDDestroy(id: id).encoded()
        try ioctl.call("IOMMU_DESTROY", try descriptor.requireOpen("IOMMU_DESTROY"), CVFIO_IOMMU_DESTROY, &bytes)
    }
}

/// An iommufd I/O address space: the DMA space of the devices attached to it. Destroyed
/// (`IOMMU_DESTROY`) when the last reference goes away.
public final class IOAS: DMASpace {
    public let iommufd: IOMMUFD
    /// The IOAS object id.
    public let id: UInt32
    let state = Mutex(DMABookkeeping())

    init(iommufd: IOMMUFD, id: UInt32) {
        self.iommufd = iommufd
        self.id = id
    }

    deinit { try? iommufd.destroy(id) }

    /// `IOMMU_IOAS_IOVA_RANGES`, asked again once with the count the kernel states when the
    /// first answer is `EMSGSIZE`.
    public func validIOVARanges() throws(VFIOError) -> [IOVARange] {
        let fd = try iommufd.descriptor.requireOpen("IOMMU_IOAS_IOVA_RANGES")
        var capacity: UInt32 = 16
        for attempt in 0..<2 {
            let storage = UnsafeMutableRawPointer.allocate(byteCount: Int(capacity) * IOMMUFDIOVARange.fixedSize, alignment: 8)
            defer { storage.deallocate() }
            var bytes = IOMMUFDIOASIOVARanges(ioasID: id, numIOVAs: capacity, allowedIOVAs: UInt64(UInt(bitPattern: storage))).encoded()
            do throws(VFIOError) {
                try iommufd.ioctl.call("IOMMU_IOAS_IOVA_RANGES", fd, CVFIO_IOMMU_IOAS_IOVA_RANGES, &bytes)
            } catch where error.errnoValue == EMSGSIZE && attempt == 0 {
                capacity = try IOMMUFDIOASIOVARanges(decoding: bytes).numIOVAs
                continue
            }
            let reply = try IOMMUFDIOASIOVARanges(decoding: bytes)
            let raw = Array(UnsafeRawBufferPointer(start: storage, count: Int(reply.numIOVAs) * IOMMUFDIOVARange.fixedSize))
            var result: [IOVARange] = []
            for range in try IOMMUFDIOVARange.decodeArray(raw, count: Int(reply.numIOVAs)) {
                result.append(try IOVARange(start: range.start, last: range.last))
            }
            return result
        }
        throw .malformed("IOMMU_IOAS_IOVA_RANGES", "the range count kept growing")
    }

    public func map(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError) {
        _ = try ioasMap(memory, offset: offset, size: size, iova: iova, access: access)
    }

    /// `IOMMU_IOAS_MAP` of `size` bytes of `memory` from `offset`: at `iova`
    /// (`IOMMU_IOAS_MAP_FIXED_IOVA`), or where the kernel chooses when nil. Records the
    /// mapping and returns its IOVA.
    func ioasMap(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64?, access: DMAAccess) throws(VFIOError) -> UInt64 {
        let operation = "IOMMU_IOAS_MAP"
        let vaddr = try dmaAddress(memory, offset: offset, size: size, operation: operation)
        let request = IOMMUFDIOASMap(flags: IOMMUFDIOASMapFlags(access, fixedIOVA: iova != nil), ioasID: id, userVA: vaddr,
                                     length: UInt64(size), iova: iova ?? 0)
        try request.validate()
        var bytes = request.encoded()
        let fd = try iommufd.descriptor.requireOpen(operation)
        return try state.withLock { (book: inout DMABookkeeping) throws(VFIOError) -> UInt64 in
            try iommufd.ioctl.call(operation, fd, CVFIO_IOMMU_IOAS_MAP, &bytes)
            // With FIXED_IOVA the kernel leaves `iova` as given; without, it writes its choice.
            let placed: UInt64
            if let iova { placed = iova } else { placed = try IOMMUFDIOASMap(decoding: bytes).iova }
            book.record(memory, iova: placed, size: UInt64(size))
            return placed
        }
    }

    public func map(_ memory: any DMAMemory, offset: Int, size: Int, access: DMAAccess, alignment: UInt64, limit: UInt64) throws(VFIOError) -> UInt64 {
        let iova = try allocateIOVA(size: UInt64(size), alignment: alignment, limit: limit)
        do {
            try map(memory, offset: offset, size: size, iova: iova, access: access)
        } catch {
            state.withLock { $0.allocator?.release(iova: iova) }
            throw error
        }
        return iova
    }

    /// Reserves an IOVA range inside the valid ranges without mapping it.
    public func allocateIOVA(size: UInt64, alignment: UInt64 = 4096, limit: UInt64 = .max) throws(VFIOError) -> UInt64 {
        let needsRanges = state.withLock { $0.allocator == nil }
        let ranges = needsRanges ? try validIOVARanges() : []
        return try state.withLock { (book: inout DMABookkeeping) throws(VFIOError) -> UInt64 in
            if book.allocator == nil { book.allocator = try IOVAAllocator(validRanges: ranges) }
            return try book.allocator!.allocate(size: size, alignment: alignment, limit: limit)
        }
    }

    public func unmap(iova: UInt64, size: UInt64) throws(VFIOError) {
        var bytes = IOMMUFDIOASUnmap(ioasID: id, iova: iova, length: size).encoded()
        let fd = try iommufd.descriptor.requireOpen("IOMMU_IOAS_UNMAP")
        try state.withLock { (book: inout DMABookkeeping) throws(VFIOError) in
            try iommufd.ioctl.call("IOMMU_IOAS_UNMAP", fd, CVFIO_IOMMU_IOAS_UNMAP, &bytes)
            book.forget(iova: iova, size: size)
        }
    }

    /// `IOMMU_IOAS_UNMAP` of iova 0, length `UINT64_MAX`: every mapping.
    public func unmapAll() throws(VFIOError) {
        var bytes = IOMMUFDIOASUnmap.all(ioasID: id).encoded()
        let fd = try iommufd.descriptor.requireOpen("IOMMU_IOAS_UNMAP")
        try state.withLock { (book: inout DMABookkeeping) throws(VFIOError) in
            do throws(VFIOError) {
                try iommufd.ioctl.call("IOMMU_IOAS_UNMAP", fd, CVFIO_IOMMU_IOAS_UNMAP, &bytes)
            } catch where error.errnoValue == ENOENT && book.mappings.isEmpty {
                // Nothing was mapped: the kernel answers ENOENT, which is success here.
            }
            book.forgetAll()
        }
    }
}
