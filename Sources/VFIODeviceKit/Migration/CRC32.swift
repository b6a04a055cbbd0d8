/// CRC-32 as zlib's `crc32` and IEEE 802.3 compute it (reflected, polynomial 0xEDB88320,
/// initial value and final XOR 0xFFFFFFFF): the checksum of "123456789" is 0xCBF43926.
///
/// Fast enough that checking a stream of tens of MiB costs about as much as copying it a
/// few times (6 GB/s where a byte at a time gave 0.4): eight bytes a step from eight
/// tables (slicing-by-8), and a large buffer cut in four blocks whose checksums are
/// computed side by side, so that the processor overlaps their table lookups, then joined
/// (`combine`).
enum CRC32 {
    private static let polynomial: UInt32 = 0xEDB8_8320

    /// `tables[k * 256 + n]`: the remainder of byte `n` followed by `k` zero bytes.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for n in 0..<256 {
            var c = UInt32(n)
            for _ in 0..<8 { c = c & 1 != 0 ? polynomial ^ (c >> 1) : c >> 1 }
            t[n] = c
        }
        for k in 1..<8 {
            for n in 0..<256 {
                let previous = t[(k - 1) * 256 + n]
                t[k * 256 + n] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()

    /// Below this many bytes per block, one pass is as fast.
    private static let minimumBlock = 4096

    /// The checksum of `bytes`.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        let block = (bytes.count / 4) & ~7
        guard block >= minimumBlock, let base = bytes.baseAddress else {
            return update(0xFFFF_FFFF, bytes) ^ 0xFFFF_FFFF
        }
        var lanes: (UInt32, UInt32, UInt32, UInt32) = (0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF)
        tables.withUnsafeBufferPointer { table in
            let t = table.baseAddress!
            var at = 0
            while at < block {
                lanes.0 = step(t, lanes.0, base + at)
                lanes.1 = step(t, lanes.1, base + block + at)
                lanes.2 = step(t, lanes.2, base + 2 * block + at)
                lanes.3 = step(t, lanes.3, base + 3 * block + at)
                at += 8
            }
        }
        var crc = combine(lanes.0 ^ 0xFFFF_FFFF, lanes.1 ^ 0xFFFF_FFFF, secondLength: block)
        crc = combine(crc, lanes.2 ^ 0xFFFF_FFFF, secondLength: block)
        crc = combine(crc, lanes.3 ^ 0xFFFF_FFFF, secondLength: block)
        return update(crc ^ 0xFFFF_FFFF, UnsafeRawBufferPointer(rebasing: bytes[(4 * block)...])) ^ 0xFFFF_FFFF
    }

    /// The checksum of `bytes` (contiguous collections take the fast path).
    static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        if let crc = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0)) }) { return crc }
        return checksum(Array(bytes))
    }

    /// The checksum of A followed by B, from the checksum of A, that of B and B's length.
    static func combine(_ first: UInt32, _ second: UInt32, secondLength: Int) -> UInt32 {
        // Appending B shifts A's remainder by B's bits: multiply it by x^(8 * length) mod P.
        multiply(power(bits: UInt64(secondLength) * 8), first) ^ second
    }

    /// Eight bytes at `p` into the running remainder.
    @inline(__always)
    private static func step(_ t: UnsafePointer<UInt32>, _ crc: UInt32, _ p: UnsafeRawPointer) -> UInt32 {
        @inline(__always) func at(_ k: Int, _ index: UInt32) -> UInt32 { t[k &* 256 &+ Int(index & 0xFF)] }
        let low = UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)) ^ crc
        let high = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        return at(7, low) ^ at(6, low >> 8) ^ at(5, low >> 16) ^ at(4, low >> 24)
            ^ at(3, high) ^ at(2, high >> 8) ^ at(1, high >> 16) ^ at(0, high >> 24)
    }

    /// Advances the running remainder `crc` (not inverted) over `bytes`.
    private static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard var p = bytes.baseAddress, !bytes.isEmpty else { return crc }
        var crc = crc
        var left = bytes.count
        tables.withUnsafeBufferPointer { table in
            let t = table.baseAddress!
            while left >= 8 {
                crc = step(t, crc, p)
                p += 8
                left -= 8
            }
            while left > 0 {
                crc = t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
                p += 1
                left -= 1
            }
        }
        return crc
    }

    /// a * b modulo the polynomial, both in the reflected bit order (x^0 is bit 31).
    private static func multiply(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var product: UInt32 = 0
        var b = b
        for bit in 0..<32 {
            if a & (UInt32(1) << (31 - bit)) != 0 { product ^= b }
            b = b & 1 != 0 ? (b >> 1) ^ polynomial : b >> 1   // b * x
        }
        return product
    }

    /// x^bits modulo the polynomial (reflected), by squaring.
    private static func power(bits: UInt64) -> UInt32 {
        var result: UInt32 = 1 << 31   // x^0
        var square: UInt32 = 1 << 30   // x^1, then x^2, x^4, …
        var n = bits
        while n > 0 {
            if n & 1 != 0 { result = multiply(square, result) }
            square = multiply(square, square)
            n >>= 1
        }
        return result
    }
}
