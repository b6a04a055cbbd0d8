#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The `argsz` negotiation every VFIO query with a variable-size reply follows.
///
/// The caller offers a buffer whose first four bytes are `argsz`. When the callee needs
/// more room it either succeeds and writes a larger `argsz` into the reply (device,
/// region and IOMMU info with capability chains), or fails with `ENOSPC` after writing
/// the size it needs (`VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`). Either way the query is made
/// once more with a buffer of exactly the size asked for; a second "too small" is an
/// error, so a peer that keeps raising `argsz` cannot make the caller loop or allocate
/// without bound.
public enum ArgszRetry {
    /// The largest buffer a retry will allocate (16 MiB), to bound what a hostile peer can ask for.
    public static let maximumSize = 16 << 20

    /// The size a reply asks for in its `argsz` (its first four bytes), or 0 when the
    /// reply is shorter than that.
    public static func statedArgsz(_ reply: [UInt8]) -> Int {
        reply.count >= 4 ? Int(ByteReader.le32(reply, 0)) : 0
    }

    /// Runs `call` on `request`, retrying once with the size the callee asked for.
    ///
    /// - Parameters:
    ///   - operation: the C name of the query, used in errors.
    ///   - request: the encoded request; its first four bytes are `argsz`, equal to its count.
    ///   - neededSize: reads the size the reply asks for. The default reads `argsz`;
    ///     `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` states it through `count` instead
    ///     (`PCIHotResetInfo.neededSize`).
    ///   - call: performs the query in place. It throws `VFIOError` with `.errno` on failure.
    /// - Returns: the reply buffer, whose stated size fits inside it.
    /// - Throws: the callee's error; `.malformed` if the callee asks for more than
    ///   `maximumSize` or still needs more room after the retry.
    public static func run(
        _ operation: String,
        request: [UInt8],
        neededSize: ([UInt8]) -> Int = statedArgsz,
        call: (inout [UInt8]) throws(VFIOError) -> Void
    ) throws(VFIOError) -> [UInt8] {
        precondition(request.count >= 4, "an argsz request has at least four bytes")
        var buffer = request
        var needed: Int
        do {
            try call(&buffer)
            needed = neededSize(buffer)
            if needed <= buffer.count { return buffer }
        } catch let error where error.errnoValue == ENOSPC {
            needed = neededSize(buffer)
            if needed <= buffer.count { throw error }
        }
        if needed > maximumSize {
            throw .malformed(operation, "reply asks for \(needed) bytes, above the \(maximumSize)-byte limit")
        }
        var retry = request
        retry.append(contentsOf: repeatElement(0, count: needed - retry.count))
        withUnsafeBytes(of: UInt32(needed).littleEndian) { raw in
            for i in 0..<4 { retry[i] = raw[i] }
        }
        do {
            try call(&retry)
        } catch let error where error.errnoValue == ENOSPC && neededSize(retry) > retry.count {
            throw .malformed(operation, "reply asked for \(needed) bytes, then for \(neededSize(retry)) after the retry")
        }
        let second = neededSize(retry)
        if second > retry.count {
            throw .malformed(operation, "reply asked for \(needed) bytes, then for \(second) after the retry")
        }
        return retry
    }
}
