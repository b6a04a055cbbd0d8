import VFIO

/// Typed-throws wrappers for the standard library's `rethrows` buffer accessors.

extension Array where Element == UInt8 {
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(VFIOError) -> R) throws(VFIOError) -> R {
        var outcome: Result<R, VFIOError>?
        withUnsafeBytes { raw in
            do throws(VFIOError) { outcome = .success(try body(raw)) } catch { outcome = .failure(error) }
        }
        return try outcome!.get()
    }

    mutating func withMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws(VFIOError) -> R) throws(VFIOError) -> R {
        var outcome: Result<R, VFIOError>?
        withUnsafeMutableBytes { raw in
            do throws(VFIOError) { outcome = .success(try body(raw)) } catch { outcome = .failure(error) }
        }
        return try outcome!.get()
    }
}
