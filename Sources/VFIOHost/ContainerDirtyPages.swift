import CVFIO
import VFIO
import VFIOSystem

/// The dirty bits the kernel wrote for `[iova, iova + size)`: one bit per `pageSize`
/// page, bit `n` (bit `n % 64` of little-endian word `n / 64`) for the page at
/// `iova + n * pageSize`. `bytes` is the whole buffer handed to the kernel: one bit per
/// page rounded up to whole 64-bit words, as `Type1Bitmap.requiredSize` computes it.
///
/// What type1 reports: a group whose device the IOMMU backs (a vfio-pci device) cannot
/// say which pages it wrote, so every page of every mapping in the range is reported
/// dirty, on every read; pages between mappings read clean. Only devices that pin pages
/// through the kernel (mediated devices) give a narrower answer.
public struct Type1DirtyBitmap: Sendable, Hashable {
    public let iova: UInt64
    public let size: UInt64
    public let pageSize: UInt64
    public let bytes: [UInt8]

    public init(iova: UInt64, size: UInt64, pageSize: UInt64, bytes: [UInt8]) {
        self.iova = iova
        self.size = size
        self.pageSize = pageSize
        self.bytes = bytes
    }

    /// The number of pages the range holds.
    public var pageCount: Int { Int((size + pageSize - 1) / pageSize) }

    /// Whether page `index` (counted from `iova`) is dirty.
    public func isDirty(page index: Int) -> Bool {
        guard index >= 0, index / 8 < bytes.count else { return false }
        return bytes[index / 8] & (1 << UInt8(index % 8)) != 0
    }

    /// The indexes of the dirty pages, ascending.
    public var dirtyPages: [Int] { (0..<pageCount).filter { isDirty(page: $0) } }
}

extension VFIOContainer {
    // MARK: Dirty-page logging (type1v2)

    /// `VFIO_IOMMU_DIRTY_PAGES` with `VFIO_IOMMU_DIRTY_PAGES_FLAG_START`: from now on the
    /// container keeps a dirty bitmap per mapping (new mappings included). Starting twice
    /// is not an error.
    /// - Throws: `EACCES` on a type1 (v1) container; `.unsupported` on a no-IOMMU one.
    public func startDirtyTracking() throws(VFIOError) {
        try dirtyPages(.start)
    }

    /// `VFIO_IOMMU_DIRTY_PAGES` with `VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP`: drops the bitmaps.
    /// Stopping while stopped is not an error.
    public func stopDirtyTracking() throws(VFIOError) {
        try dirtyPages(.stop)
    }

    private func dirtyPages(_ operation: Type1DirtyPages.Operation) throws(VFIOError) {
        try requireIOMMU("VFIO_IOMMU_DIRTY_PAGES")
        var bytes = Type1DirtyPages(operation).encoded()
        try ioctl.call("VFIO_IOMMU_DIRTY_PAGES", try descriptor.requireOpen("VFIO_IOMMU_DIRTY_PAGES"), CVFIO_VFIO_IOMMU_DIRTY_PAGES, &bytes)
    }

    /// `VFIO_IOMMU_DIRTY_PAGES` with `VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP`: the dirty
    /// bits of `[iova, iova + size)`. The kernel clears each mapping's bits as it reads
    /// them, then marks again what it still holds pinned; for a device behind the IOMMU
    /// that is every page, so every read reports every mapped page (see `Type1DirtyBitmap`).
    /// - Parameter pageSize: the page one bit stands for: the kernel takes only the
    ///   container's smallest IOMMU page size (`VFIO_IOMMU_GET_INFO`'s migration
    ///   capability, 4 KiB on x86); another power of two is passed to the kernel, which
    ///   answers `EINVAL`.
    /// - Throws: `EINVAL` while tracking is off, for a range that splits a mapping or is
    ///   not a multiple of the page size, or for another page size; `EACCES` on type1 (v1);
    ///   `.invalidArgument` for a page size that is not a power of two or a zero size.
    public func dirtyBitmap(iova: UInt64, size: UInt64, pageSize: UInt64 = 4096) throws(VFIOError) -> Type1DirtyBitmap {
        try requireIOMMU("VFIO_IOMMU_DIRTY_PAGES")
        return try withZeroedBitmap("VFIO_IOMMU_DIRTY_PAGES", size: size, pageSize: pageSize) { (bitmap: Type1Bitmap) throws(VFIOError) in
            var bytes = Type1DirtyPages(.getBitmap(Type1DirtyBitmapRange(iova: iova, size: size, bitmap: bitmap))).encoded()
            try ioctl.call("VFIO_IOMMU_DIRTY_PAGES", try descriptor.requireOpen("VFIO_IOMMU_DIRTY_PAGES"), CVFIO_VFIO_IOMMU_DIRTY_PAGES, &bytes)
            return iova
        }
    }

    /// `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`: unmaps
    /// `[iova, iova + size)` (whole mappings, as `unmap`) and returns the bytes unmapped
    /// with the range's dirty bits as they were just before the unmap (the same bits a
    /// `dirtyBitmap` of the range would give).
    /// - Throws: `EINVAL` while dirty tracking is off, for a page size other than the
    ///   container's smallest, or for a range that splits a mapping (type1v2);
    ///   `.invalidArgument` as `dirtyBitmap`; `.unsupported` on a no-IOMMU container.
    public func unmapCollectingDirtyBitmap(iova: UInt64, size: UInt64, pageSize: UInt64 = 4096) throws(VFIOError) -> (unmapped: UInt64, dirty: Type1DirtyBitmap) {
        try requireIOMMU("VFIO_IOMMU_UNMAP_DMA")
        var unmapped: UInt64 = 0
        let dirty = try withZeroedBitmap("VFIO_IOMMU_UNMAP_DMA", size: size, pageSize: pageSize) { (bitmap: Type1Bitmap) throws(VFIOError) in
            unmapped = try unmap(Type1DMAUnmap(iova: iova, size: size, dirtyBitmap: bitmap)) { $0.forget(iova: iova, size: size) }
            return iova
        }
        return (unmapped, dirty)
    }

    /// Runs `body` with a zeroed bitmap buffer of the size the kernel needs for `size`
    /// bytes at `pageSize` (at least one 64-bit word), and returns what the kernel wrote.
    private func withZeroedBitmap(_ operation: String, size: UInt64, pageSize: UInt64,
                                  _ body: (Type1Bitmap) throws(VFIOError) -> UInt64) throws(VFIOError) -> Type1DirtyBitmap {
        guard pageSize > 0, pageSize & (pageSize - 1) == 0 else {
            throw .invalidArgument(operation, "dirty bitmap page size \(pageSize) is not a power of two")
        }
        guard size > 0 else { throw .invalidArgument(operation, "the range is empty") }
        let count = Int(Type1Bitmap.requiredSize(forLength: size, pageSize: pageSize))
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(count, 8), alignment: 8)
        defer { storage.deallocate() }
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 8))
        let iova = try body(Type1Bitmap(pageSize: pageSize, size: UInt64(count), data: UInt64(UInt(bitPattern: storage))))
        return Type1DirtyBitmap(iova: iova, size: size, pageSize: pageSize, bytes: Array(UnsafeRawBufferPointer(start: storage, count: count)))
    }
}
