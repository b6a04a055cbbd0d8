/// An inclusive range of I/O virtual addresses, `[start, last]`, as the kernel's
/// `struct interval_tree_node` holds it (`start`, `last`).
///
/// Inclusive bounds let a range reach the top of the 64-bit space. A range is never
/// empty: `last >= start` always holds.
public struct IOVARange: Sendable, Hashable, CustomStringConvertible {
    /// The first address in the range.
    public let start: UInt64
    /// The last address in the range (inclusive).
    public let last: UInt64

    /// A range from its first and last address.
    /// - Throws: `VFIOError.invalidArgument` when `last < start`.
    public init(start: UInt64, last: UInt64) throws(VFIOError) {
        guard last >= start else {
            throw .invalidArgument("IOVARange", "last address 0x\(String(last, radix: 16)) is below start 0x\(String(start, radix: 16))")
        }
        self.start = start
        self.last = last
    }

    /// A range from a base and a byte length, the way `struct
    /// vfio_device_feature_dma_logging_range` states it (`iova`, `length`).
    /// - Throws: `VFIOError.invalidArgument` when `length` is 0 (an empty range) or
    ///   `iova + length` does not fit in 64 bits (the range would wrap; the kernel answers
    ///   `EOVERFLOW`).
    public init(iova: UInt64, length: UInt64) throws(VFIOError) {
        guard length > 0 else {
            throw .invalidArgument("IOVARange", "range at 0x\(String(iova, radix: 16)) has length 0 (empty)")
        }
        let (end, overflow) = iova.addingReportingOverflow(length)
        guard !overflow else {
            throw .invalidArgument("IOVARange", "range at 0x\(String(iova, radix: 16)) with length 0x\(String(length, radix: 16)) wraps past the end of the 64-bit address space")
        }
        self.start = iova
        self.last = end - 1
    }

    /// Internal constructor for bounds already known to be ordered.
    @usableFromInline
    init(uncheckedStart start: UInt64, last: UInt64) {
        self.start = start
        self.last = last
    }

    /// The number of bytes covered, `last - start + 1`; `nil` only for the whole 64-bit
    /// space, whose size does not fit in a `UInt64`.
    public var length: UInt64? {
        let size = last - start
        return size == UInt64.max ? nil : size + 1
    }

    public func contains(_ iova: UInt64) -> Bool { iova >= start && iova <= last }

    /// True when the two ranges share at least one address.
    public func overlaps(_ other: IOVARange) -> Bool { start <= other.last && other.start <= last }

    public var description: String {
        "[0x\(String(start, radix: 16)), 0x\(String(last, radix: 16))]"
    }
}
