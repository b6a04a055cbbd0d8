import CVFIO
import Glibc
import VFIO

/// An `mmap` of part of a device region (a BAR, or a memory region a vfio-user server
/// shares), unmapped when the last reference goes away.
///
/// Register access goes through `load`/`store`, which make exactly one volatile access of
/// the type's width, as device registers need; `bytes` is for bulk memory.
public final class DeviceMapping: MappedRegion, @unchecked Sendable {
    public let baseAddress: UnsafeMutableRawPointer
    public let size: Int
    public let regionOffset: UInt64

    /// Maps `size` bytes of `fd` from `fileOffset` (`MAP_SHARED`), with read and/or write
    /// access as the region allows.
    /// - Throws: `EINVAL` for a misaligned offset or size 0; `ENODEV`/`EACCES` when the
    ///   descriptor cannot be mapped so.
    public init(fd: Int32, fileOffset: UInt64, size: Int, regionOffset: UInt64, readable: Bool = true, writable: Bool = true) throws(VFIOError) {
        guard size > 0 else { throw .invalidArgument("mmap", "size must be positive") }
        guard fileOffset % UInt64(SystemCall.pageSize) == 0 else {
            throw .invalidArgument("mmap", "offset 0x\(String(fileOffset, radix: 16)) is not page-aligned")
        }
        var protection: Int32 = 0
        if readable { protection |= PROT_READ }
        if writable { protection |= PROT_WRITE }
        let mapped = mmap(nil, size, protection, MAP_SHARED, fd, off_t(Int64(bitPattern: fileOffset)))
        if mapped == MAP_FAILED || mapped == nil {
            throw .errno("mmap", errno)
        }
        baseAddress = mapped!
        self.size = size
        self.regionOffset = regionOffset
    }

    /// The mapping as bytes, for bulk copies.
    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: baseAddress, count: size)
    }

    /// One volatile load of `T`'s width at `offset` (relative to the mapping's start).
    /// - Precondition: `offset` is aligned to the width and inside the mapping.
    public func load<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, at offset: Int) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= size, "access outside the mapping")
        precondition(offset % MemoryLayout<T>.size == 0, "misaligned register access")
        let address = baseAddress + offset
        switch MemoryLayout<T>.size {
        case 1: return T(truncatingIfNeeded: cvfio_mmio_read8(address))
        case 2: return T(truncatingIfNeeded: UInt16(littleEndian: cvfio_mmio_read16(address)))
        case 4: return T(truncatingIfNeeded: UInt32(littleEndian: cvfio_mmio_read32(address)))
        default: return T(truncatingIfNeeded: UInt64(littleEndian: cvfio_mmio_read64(address)))
        }
    }

    /// One volatile store of `value`'s width at `offset` (relative to the mapping's start).
    /// - Precondition: `offset` is aligned to the width and inside the mapping.
    public func store<T: FixedWidthInteger & UnsignedInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= size, "access outside the mapping")
        precondition(offset % MemoryLayout<T>.size == 0, "misaligned register access")
        let address = baseAddress + offset
        switch MemoryLayout<T>.size {
        case 1: cvfio_mmio_write8(address, UInt8(truncatingIfNeeded: value))
        case 2: cvfio_mmio_write16(address, UInt16(truncatingIfNeeded: value).littleEndian)
        case 4: cvfio_mmio_write32(address, UInt32(truncatingIfNeeded: value).littleEndian)
        default: cvfio_mmio_write64(address, UInt64(truncatingIfNeeded: value).littleEndian)
        }
    }

    deinit {
        munmap(baseAddress, size)
    }
}
