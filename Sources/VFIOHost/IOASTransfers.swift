import CVFIO
import Glibc
import VFIO
import VFIOSystem

extension IOAS {
    /// `IOMMU_IOAS_COPY`: maps into this IOAS the pages a mapping of `source` already
    /// pinned, `[sourceIOVA, sourceIOVA + length)`, without pinning them again (the cheap
    /// way to give a second IOAS the same memory). At `iova` (`IOMMU_IOAS_MAP_FIXED_IOVA`),
    /// or where the kernel chooses inside the allowed ranges when nil. Returns the IOVA.
    /// The range must lie inside one mapping `source` made (whose memory this IOAS then
    /// also keeps alive).
    /// - Throws: `.invalidArgument` for a range no single mapping of `source` covers;
    ///   `ENOENT` when the kernel finds no mapping there; `EEXIST` for an occupied `iova`;
    ///   `EINVAL` for a reserved `iova` or one misaligned to the IOMMU's page size;
    ///   `ENOSPC` when the kernel finds no room (nil `iova`).
    @discardableResult
    public func copy(from source: IOAS, sourceIOVA: UInt64, length: UInt64, to iova: UInt64? = nil,
                     access: DMAAccess = .readWrite) throws(VFIOError) -> UInt64 {
        let operation = "IOMMU_IOAS_COPY"
        guard source.iommufd === iommufd else { throw .invalidArgument(operation, "the source IOAS belongs to another iommufd") }
        let memory = source.state.withLock { book in
            book.mappings.first { $0.key <= sourceIOVA && length <= $0.value.size && sourceIOVA - $0.key <= $0.value.size - length }?.value.memory
        }
        guard let memory else {
            throw .invalidArgument(operation, "no mapping of IOAS \(source.id) covers iova 0x\(String(sourceIOVA, radix: 16)) length 0x\(String(length, radix: 16))")
        }
        let request = IOMMUFDIOASCopy(flags: IOMMUFDIOASMapFlags(access, fixedIOVA: iova != nil), destinationIOASID: id, sourceIOASID: source.id, length: length,
                                      destinationIOVA: iova ?? 0, sourceIOVA: sourceIOVA)
        try request.validate()
        var bytes = request.encoded()
        let fd = try iommufd.descriptor.requireOpen(operation)
        return try state.withLock { (book: inout DMABookkeeping) throws(VFIOError) -> UInt64 in
            try iommufd.ioctl.call(operation, fd, CVFIO_IOMMU_IOAS_COPY, &bytes)
            let placed = try IOMMUFDIOASCopy(decoding: bytes).destinationIOVA
            book.record(memory, iova: placed, size: length)
            return placed
        }
    }

    /// `IOMMU_IOAS_MAP` without `IOMMU_IOAS_MAP_FIXED_IOVA`: maps `size` bytes of `memory`
    /// from `offset` where the kernel chooses, inside the ranges `allowIOVAs` set (the
    /// whole space without them) and outside the reserved ones. Returns the IOVA.
    /// - Throws: `ENOSPC` when no allowed range has room.
    public func mapAtKernelChosenIOVA(_ memory: any DMAMemory, offset: Int = 0, size: Int? = nil,
                                      access: DMAAccess = .readWrite) throws(VFIOError) -> UInt64 {
        try ioasMap(memory, offset: offset, size: size ?? (memory.size - offset), iova: nil, access: access)
    }

    /// `IOMMU_IOAS_ALLOW_IOVAS`: replaces the ranges inside which the kernel places
    /// mappings it chooses the IOVA of (`mapAtKernelChosenIOVA`, `copy` without `iova`);
    /// an empty list allows the whole space again. The ranges also stay usable: a device
    /// whose reserved regions overlap them cannot attach (`EADDRINUSE`). They do not limit
    /// fixed-IOVA maps, and `IOMMU_IOAS_IOVA_RANGES` does not report them (it reports the
    /// holes between reserved regions).
    /// - Throws: `EADDRINUSE` when a range overlaps a region already reserved (e.g. the
    ///   MSI window `0xfee00000-0xfeefffff` of an attached device behind VT-d).
    public func allowIOVAs(_ ranges: [IOVARange]) throws(VFIOError) {
        let operation = "IOMMU_IOAS_ALLOW_IOVAS"
        let array = IOMMUFDIOVARange.encodeArray(ranges.map { IOMMUFDIOVARange(start: $0.start, last: $0.last) })
        let fd = try iommufd.descriptor.requireOpen(operation)
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(array.count, 1), alignment: 8)
        defer { storage.deallocate() }
        array.withUnsafeBytes { storage.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var bytes = IOMMUFDIOASAllowIOVAs(ioasID: id, numIOVAs: UInt32(ranges.count), allowedIOVAs: UInt64(UInt(bitPattern: storage))).encoded()
        try iommufd.ioctl.call(operation, fd, CVFIO_IOMMU_IOAS_ALLOW_IOVAS, &bytes)
    }

    /// `IOMMU_OPTION` `IOMMU_OPTION_HUGE_PAGES`, `IOMMU_OPTION_OP_GET`: whether contiguous
    /// memory may map as huge IOMMU pages (true by default).
    public func hugePages() throws(VFIOError) -> Bool {
        let value = try iommufd.option(IOMMUFDOption(option: .hugePages, operation: .get, objectID: id))
        return value != 0
    }

    /// `IOMMU_OPTION` `IOMMU_OPTION_HUGE_PAGES`, `IOMMU_OPTION_OP_SET`: false maps
    /// everything at `PAGE_SIZE` (for devices that need 4 KiB IOMMU pages, e.g. to
    /// unmap parts of a mapping later).
    /// - Throws: `EINVAL` when turning them off after a device is attached and memory is
    ///   mapped.
    public func setHugePages(_ enabled: Bool) throws(VFIOError) {
        _ = try iommufd.option(IOMMUFDOption(option: .hugePages, operation: .set, objectID: id, value: enabled ? 1 : 0))
    }
}
