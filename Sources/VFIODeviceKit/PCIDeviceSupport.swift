import VFIO

/// Small helpers shared by the PCI models (the kit's and other modules' of this package).
package enum PCIModelSupport {
    /// vfio-pci's nine fixed regions with the given BARs and a config region of
    /// `configSize`; the rest absent.
    static func regions(bars: [Int: RegionDescriptor], configSize: Int) -> [RegionDescriptor] {
        (0..<PCIRegionIndex.count).map { index in
            if index <= 5, let bar = bars[Int(index)] { return bar }
            if index == PCIRegionIndex.config.rawValue {
                return RegionDescriptor(index: index, size: UInt64(configSize), flags: [.read, .write])
            }
            return .absent(index)
        }
    }

    /// A little-endian value from `buffer` (up to 8 bytes).
    package static func load(_ buffer: UnsafeRawBufferPointer) -> UInt64 {
        var value: UInt64 = 0
        for k in 0..<min(buffer.count, 8) { value |= UInt64(buffer[k]) << (8 * UInt64(k)) }
        return value
    }

    /// Stores the low `buffer.count` bytes of `value`, little-endian.
    package static func store(_ value: UInt64, _ buffer: UnsafeMutableRawBufferPointer) {
        for k in 0..<buffer.count { buffer[k] = k < 8 ? UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) : 0 }
    }
}
