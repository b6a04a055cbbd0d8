import Synchronization

/// Little-endian bytes of a value (request and reply payloads written out by hand).
package func u32le(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
package func u64le(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

/// `argsz` and `size` of a `vfio_user_mig_data` payload.
package func migDataFields(_ payload: [UInt8]) -> (argsz: UInt32, size: UInt32)? {
    guard payload.count >= 8 else { return nil }
    func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(payload[at + $1]) << (8 * $1) } }
    return (u32(0), u32(4))
}

/// State a test shares with a peer's thread.
package final class Shared<Value: Sendable>: @unchecked Sendable {
    private let lock = Mutex<Void>(())
    private var value: Value
    package init(_ value: Value) { self.value = value }
    package func with<R>(_ body: (inout Value) -> R) -> R { lock.withLock { _ in body(&value) } }
}
