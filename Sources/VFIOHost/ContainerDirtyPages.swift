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
///
/// `bytes` keeps only the bits of pages this container has mapped; `kernelBytes` is what
/// the kernel wrote. They differ because of a type1 defect (seen on Linux 6.1 and 6.12):
/// for a mapping that does not start on a 64-page boundary of the requested range, the
/// kernel shifts the mapping's own bitmap in place to line it up and afterwards clears
/// only the mapping's page count of bits, so every later read (and an unmap with a
/// bitmap) carries stale bits past the mapping's end, pages nothing maps included.
public struct Type1DirtyBitmap: Sendable, Hashable {
    public let iova: UInt64
    public let size: UInt64
    public let pageSize: UInt64
    /// The dirty bits of mapped pages.
    public let bytes: [UInt8]
    /// The bitmap as the kernel wrote it.
    public let kernelBytes: [UInt8]

    public init(iova: UInt64, size: UInt64, pageSize: UInt64, bytes: [UInt8], kernelBytes: [UInt8]? = nil) {
        self.iova = iova
        self.size = size
        self.pageSize = pageSize
        self.bytes = bytes
        self.kernelBytes = kernelBytes ?? bytes
    }

    /// The bits of the pages of `[iova, iova + size)` that lie in one of `mappings`
    /// (start and length in bytes), in a bitmap of `count` bytes.
    static func mask(iova: UInt64, size: UInt64, pageSize: UInt64, count: Int, mappings: [(start: UInt64, size: UInt64)]) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: count)
        let end = iova &+ size
        for mapping in mappings {
            let first = max(mapping.start, iova), last = min(mapping.start &+ mapping.size, end)
            guard first < last else { continue }
            var page = (first - iova) / pageSize
            let stop = (last - iova + pageSize - 1) / pageSize
            while page < stop, Int(page / 8) < count {
                mask[Int(page / 8)] |= 1 << UInt8(page % 8)
                page += 1
            }
        }
        return mask
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
    /// bits of `[iova, iova + size)` (of the pages this container mapped: see
    /// `Type1DirtyBitmap` for the stale bits the kernel adds). The kernel clears each mapping's bits as it reads
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
        // The mappings as they were before the call (an unmap forgets its own).
        let mapped = state.withLock { $0.book.mappings.map { (start: $0.key, size: $0.value.size) } }
        let iova = try body(Type1Bitmap(pageSize: pageSize, size: UInt64(count), data: UInt64(UInt(bitPattern: storage))))
        let kernel = Array(UnsafeRawBufferPointer(start: storage, count: count))
        let mask = Type1DirtyBitmap.mask(iova: iova, size: size, pageSize: pageSize, count: count, mappings: mapped)
        return Type1DirtyBitmap(iova: iova, size: size, pageSize: pageSize, bytes: zip(kernel, mask).map { $0 & $1 }, kernelBytes: kernel)
    }
}
