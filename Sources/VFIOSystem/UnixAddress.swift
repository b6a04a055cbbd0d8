import Glibc
import VFIO

/// Calls `body` with a `sockaddr_un` for `path`.
package func withUnixAddress<R>(_ path: String, _ operation: String,
                                _ body: (UnsafePointer<sockaddr>, socklen_t) throws(VFIOError) -> R) throws(VFIOError) -> R {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard !bytes.isEmpty, bytes.count < capacity else {
        throw .invalidArgument(operation, "socket path '\(path)' must have 1...\(capacity - 1) bytes")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
    return try withUnsafePointer(to: &address) { (pointer: UnsafePointer<sockaddr_un>) throws(VFIOError) -> R in
        try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (p: UnsafePointer<sockaddr>) throws(VFIOError) -> R in
            try body(p, length)
        }
    }
}
