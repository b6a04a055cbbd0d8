/// Copies `count` bytes from `source` to `destination` (not overlapping). Up to 16 bytes
/// (a message header, `struct vfio_user_region_access`, a register's value) are moved
/// with two loads and two stores, which costs a few instructions where a `memcpy` call
/// costs about 25: the socket copies several such pieces per request.
@inlinable @inline(__always)
func copyBytes(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int) {
    switch count {
    case 8...16:
        let head = source.loadUnaligned(as: UInt64.self)
        let tail = source.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        destination.storeBytes(of: head, as: UInt64.self)
        destination.storeBytes(of: tail, toByteOffset: count - 8, as: UInt64.self)
    case 4..<8:
        let head = source.loadUnaligned(as: UInt32.self)
        let tail = source.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)
        destination.storeBytes(of: head, as: UInt32.self)
        destination.storeBytes(of: tail, toByteOffset: count - 4, as: UInt32.self)
    case 1..<4:
        let head = source.load(as: UInt8.self)
        let tail = source.load(fromByteOffset: count - 1, as: UInt8.self)
        let middle = source.load(fromByteOffset: count / 2, as: UInt8.self)
        destination.storeBytes(of: head, as: UInt8.self)
        destination.storeBytes(of: middle, toByteOffset: count / 2, as: UInt8.self)
        destination.storeBytes(of: tail, toByteOffset: count - 1, as: UInt8.self)
    case 0:
        break
    default:
        destination.copyMemory(from: source, byteCount: count)
    }
}
