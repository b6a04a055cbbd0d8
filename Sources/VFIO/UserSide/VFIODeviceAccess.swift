/// Width-exact register access and config space, on any `VFIODevice`.
extension VFIODevice {
    /// Reads a little-endian integer of `T`'s width at `offset` of region `index` (one access
    /// of that width).
    public func read<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, region index: UInt32, offset: UInt64) throws(VFIOError) -> T {
        var value = T.zero
        try withUnsafeMutableBytes(of: &value) { (raw: UnsafeMutableRawBufferPointer) throws(VFIOError) in
            try read(region: index, offset: offset, into: raw)
        }
        return T(littleEndian: value)
    }

    /// Writes `value` little-endian at `offset` of region `index` (one access of its width).
    public func write<T: FixedWidthInteger & UnsignedInteger>(_ value: T, region index: UInt32, offset: UInt64) throws(VFIOError) {
        var encoded = value.littleEndian
        try withUnsafeBytes(of: &encoded) { (raw: UnsafeRawBufferPointer) throws(VFIOError) in
            try write(region: index, offset: offset, from: raw)
        }
    }

    /// Reads `count` bytes at `offset` of region `index`.
    public func readBytes(region index: UInt32, offset: UInt64, count: Int) throws(VFIOError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var failure: VFIOError?
        bytes.withUnsafeMutableBytes { raw in
            do throws(VFIOError) { try read(region: index, offset: offset, into: raw) } catch { failure = error }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Writes `bytes` at `offset` of region `index`.
    public func writeBytes(_ bytes: [UInt8], region index: UInt32, offset: UInt64) throws(VFIOError) {
        var failure: VFIOError?
        bytes.withUnsafeBytes { raw in
            do throws(VFIOError) { try write(region: index, offset: offset, from: raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Reads PCI config space (`VFIO_PCI_CONFIG_REGION_INDEX`).
    public func readConfig<T: FixedWidthInteger & UnsignedInteger>(_ type: T.Type, offset: UInt64) throws(VFIOError) -> T {
        try read(type, region: PCIRegionIndex.config.rawValue, offset: offset)
    }

    /// Writes PCI config space (`VFIO_PCI_CONFIG_REGION_INDEX`).
    public func writeConfig<T: FixedWidthInteger & UnsignedInteger>(_ value: T, offset: UInt64) throws(VFIOError) {
        try write(value, region: PCIRegionIndex.config.rawValue, offset: offset)
    }
}
