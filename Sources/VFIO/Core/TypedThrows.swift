import VFIO

/// Typed-throws wrappers for the standard library's `rethrows` buffer accessors.

extension Array where Element == UInt8 {
    package func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(VFIOError) -> R) throws(VFIOError) -> R {
        var outcome: Result<R, VFIOError>?
        withUnsafeBytes { raw in
            do throws(VFIOError) { outcome = .success(try body(raw)) } catch { outcome = .failure(error) }
        }
        return try outcome!.get()
    }

    package mutating func withMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws(VFIOError) -> R) throws(VFIOError) -> R {
        var outcome: Result<R, VFIOError>?
        withUnsafeMutableBytes { raw in
            do throws(VFIOError) { outcome = .success(try body(raw)) } catch { outcome = .failure(error) }
        }
        return try outcome!.get()
    }
}

extension IOVARange {
    /// `[iova, iova + size)` for a size > 0 that may end exactly at 2^64 (QEMU unmaps up
    /// to the top of the address space).
    package static func covering(_ iova: UInt64, _ size: UInt64) throws(VFIOError) -> IOVARange {
        guard size > 0 else { throw .invalidArgument("IOVARange", "size 0") }
        let (last, overflow) = iova.addingReportingOverflow(size - 1)
        guard !overflow else { throw .invalidArgument("IOVARange", "0x\(String(iova, radix: 16)) + 0x\(String(size, radix: 16)) passes 2^64") }
        return try IOVARange(start: iova, last: last)
    }
}
