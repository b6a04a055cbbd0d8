import VFIO
import VFIOSystem

/// A payload of a vfio-user message with an exact byte layout (after the 16-byte header).
public protocol VFIOUserPayload: Sendable, Equatable {
    /// The name used in errors.
    static var cName: String { get }
    func encode(into writer: inout ByteWriter)
    /// Decodes from the whole payload. Never reads past it; lengths inside are checked
    /// against the payload's size.
    init(decoding bytes: [UInt8]) throws(VFIOError)
}

extension VFIOUserPayload {
    public var encoded: [UInt8] {
        var writer = ByteWriter(capacity: 64)
        encode(into: &writer)
        return writer.bytes
    }
}

// MARK: DMA_MAP / DMA_UNMAP

/// `flags` of `VFIO_USER_DMA_MAP`.
public struct VFIOUserDMAMapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `VFIO_USER_F_DMA_REGION_READ`: the server may read the memory.
    public static let read = VFIOUserDMAMapFlags(rawValue: 1 << 0)
    /// `VFIO_USER_F_DMA_REGION_WRITE`: the server may write the memory.
    public static let write = VFIOUserDMAMapFlags(rawValue: 1 << 1)
    public static let known: VFIOUserDMAMapFlags = [.read, .write]
}

/// `VFIO_USER_DMA_MAP` request (`struct vfio_user_dma_map`, 32 bytes): client memory
/// `[address, address + size)` becomes reachable; with a descriptor (SCM_RIGHTS) the
/// server may mmap it from `offset`, without one it uses DMA_READ / DMA_WRITE messages.
/// The reply has no payload.
public struct VFIOUserDMAMap: VFIOUserPayload {
    public static let cName = "vfio_user_dma_map"
    public static let size = 32
    public var argsz: UInt32
    public var flags: VFIOUserDMAMapFlags
    /// The offset in the descriptor (0 when there is none).
    public var offset: UInt64
    /// The DMA address (IOVA).
    public var address: UInt64
    public var size: UInt64

    public init(argsz: UInt32 = UInt32(VFIOUserDMAMap.size), flags: VFIOUserDMAMapFlags, offset: UInt64, address: UInt64, size: UInt64) {
        self.argsz = argsz
        self.flags = flags
        self.offset = offset
        self.address = address
        self.size = size
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(argsz)
        writer.u32(flags.rawValue)
        writer.u64(offset)
        writer.u64(address)
        writer.u64(size)
    }

    /// - Throws: `.malformed` for a short payload, argsz below 32, unknown flags, size 0
    ///   or a range that wraps past 2^64.
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        argsz = try reader.argsz(fixedSize: Self.size)
        flags = VFIOUserDMAMapFlags(rawValue: try reader.u32())
        offset = try reader.u64()
        address = try reader.u64()
        size = try reader.u64()
        if !flags.subtracting(.known).isEmpty {
            throw .malformed(Self.cName, "flags 0x\(String(flags.rawValue, radix: 16)) has unknown bits")
        }
        if size == 0 { throw .malformed(Self.cName, "size is 0") }
        if address.addingReportingOverflow(size - 1).overflow {
            throw .malformed(Self.cName, "address 0x\(String(address, radix: 16)) + size 0x\(String(size, radix: 16)) wraps")
        }
    }
}

/// `flags` of `VFIO_USER_DMA_UNMAP`.
public struct VFIOUserDMAUnmapFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`: a `vfio_user_bitmap` follows; the reply
    /// carries the dirty bitmap of the range (deprecated with the old dirty tracking).
    public static let getDirtyBitmap = VFIOUserDMAUnmapFlags(rawValue: 1 << 0)
    /// `VFIO_DMA_UNMAP_FLAG_ALL`: remove every mapping; address and size must be 0.
    public static let all = VFIOUserDMAUnmapFlags(rawValue: 1 << 1)
    public static let known: VFIOUserDMAUnmapFlags = [.getDirtyBitmap, .all]
}

/// `struct vfio_user_bitmap`: the bitmap after a DMA_UNMAP with GET_DIRTY_BITMAP.
public struct VFIOUserBitmap: Sendable, Equatable {
    public static let size = 16
    /// The bytes of IOVA one bit stands for.
    public var pageSize: UInt64
    /// The bitmap's size in bytes.
    public var size: UInt64
    /// The bitmap bytes (replies only).
    public var data: [UInt8]

    public init(pageSize: UInt64, size: UInt64, data: [UInt8] = []) {
        self.pageSize = pageSize
        self.size = size
        self.data = data
    }
}

/// `VFIO_USER_DMA_UNMAP` request and reply (`struct vfio_user_dma_unmap`, 24 bytes, then a
/// `vfio_user_bitmap` with GET_DIRTY_BITMAP). The reply repeats the request (and adds the
/// bitmap's bytes).
public struct VFIOUserDMAUnmap: VFIOUserPayload {
    public static let cName = "vfio_user_dma_unmap"
    public static let size = 24
    /// In a request, the largest reply accepted.
    public var argsz: UInt32
    public var flags: VFIOUserDMAUnmapFlags
    public var address: UInt64
    public var size: UInt64
    public var bitmap: VFIOUserBitmap?

    public init(argsz: UInt32 = UInt32(VFIOUserDMAUnmap.size), flags: VFIOUserDMAUnmapFlags = [], address: UInt64, size: UInt64, bitmap: VFIOUserBitmap? = nil) {
        self.argsz = argsz
        self.flags = flags
        self.address = address
        self.size = size
        self.bitmap = bitmap
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(argsz)
        writer.u32(flags.rawValue)
        writer.u64(address)
        writer.u64(size)
        if let bitmap {
            writer.u64(bitmap.pageSize)
            writer.u64(bitmap.size)
            writer.append(contentsOf: bitmap.data)
        }
    }

    /// - Throws: `.malformed` for a short payload, unknown flags, ALL with a non-zero
    ///   range, GET_DIRTY_BITMAP without the bitmap header, bitmap bytes fewer than stated
    ///   (when any are present), or a range that wraps.
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        argsz = try reader.argsz(fixedSize: Self.size)
        flags = VFIOUserDMAUnmapFlags(rawValue: try reader.u32())
        address = try reader.u64()
        size = try reader.u64()
        if !flags.subtracting(.known).isEmpty {
            throw .malformed(Self.cName, "flags 0x\(String(flags.rawValue, radix: 16)) has unknown bits")
        }
        if flags.contains(.all) {
            if address != 0 || size != 0 { throw .malformed(Self.cName, "UNMAP_ALL needs address 0 and size 0") }
        } else if size == 0 {
            throw .malformed(Self.cName, "size is 0")
        } else if address.addingReportingOverflow(size - 1).overflow {
            throw .malformed(Self.cName, "address + size wraps")
        }
        if flags.contains(.getDirtyBitmap) {
            let pageSize = try reader.u64()
            let bitmapSize = try reader.u64()
            var data: [UInt8] = []
            if reader.remaining > 0 {
                guard bitmapSize <= UInt64(reader.remaining) else {
                    throw .malformed(Self.cName, "bitmap size \(bitmapSize) exceeds the \(reader.remaining) byte(s) present")
                }
                data = try reader.bytes(Int(bitmapSize))
            }
            bitmap = VFIOUserBitmap(pageSize: pageSize, size: bitmapSize, data: data)
        } else {
            bitmap = nil
        }
    }
}

// MARK: DEVICE_GET_INFO

/// `struct vfio_user_device_info` (16 bytes): the kernel's `vfio_device_info` without
/// `cap_offset` and padding. QEMU asks with argsz 16 and refuses a longer reply.
public struct VFIOUserDeviceInfo: VFIOUserPayload {
    public static let cName = "vfio_user_device_info"
    public static let size = 16
    public var argsz: UInt32
    public var flags: DeviceInfoFlags
    public var numRegions: UInt32
    public var numIRQs: UInt32

    public init(argsz: UInt32 = UInt32(VFIOUserDeviceInfo.size), flags: DeviceInfoFlags, numRegions: UInt32, numIRQs: UInt32) {
        self.argsz = argsz
        self.flags = flags
        self.numRegions = numRegions
        self.numIRQs = numIRQs
    }

    /// The request: argsz 16, the rest zero.
    public static var request: VFIOUserDeviceInfo { VFIOUserDeviceInfo(flags: [], numRegions: 0, numIRQs: 0) }

    public var deviceInfo: DeviceInfo { DeviceInfo(flags: flags.subtracting(.caps), numRegions: numRegions, numIRQs: numIRQs) }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(argsz)
        writer.u32(flags.rawValue)
        writer.u32(numRegions)
        writer.u32(numIRQs)
    }

    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        argsz = try reader.argsz(fixedSize: Self.size)
        flags = DeviceInfoFlags(rawValue: try reader.u32())
        numRegions = try reader.u32()
        numIRQs = try reader.u32()
    }
}

// MARK: REGION_READ / REGION_WRITE

/// `struct vfio_user_region_access`: REGION_READ request (no data) and reply (data),
/// REGION_WRITE request (data) and reply (no data).
public struct VFIOUserRegionAccess: VFIOUserPayload {
    public static let cName = "vfio_user_region_access"
    public static let headerSize = 16
    public var offset: UInt64
    public var region: UInt32
    public var count: UInt32
    /// The bytes (empty where the message carries none).
    public var data: [UInt8]

    public init(offset: UInt64, region: UInt32, count: UInt32, data: [UInt8] = []) {
        self.offset = offset
        self.region = region
        self.count = count
        self.data = data
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(offset)
        writer.u32(region)
        writer.u32(count)
        writer.append(contentsOf: data)
    }

    /// Decodes without data when the payload is exactly 16 bytes, else with exactly
    /// `count` bytes of data.
    /// - Throws: `.malformed` for a short payload or data whose size is not `count`.
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        offset = try reader.u64()
        region = try reader.u32()
        count = try reader.u32()
        data = try reader.dataAbsentOrExactly(UInt64(count), field: "count")
    }
}

// MARK: DMA_READ / DMA_WRITE

/// `struct vfio_user_dma_region_access`: the payload of DMA_READ and DMA_WRITE requests
/// and replies: `address` u64, `count` u64, then the data (DMA_READ reply, DMA_WRITE
/// request). QEMU 11.1 uses this layout (checked: a guest's DMA through DMA_READ /
/// DMA_WRITE messages moves the right bytes); early QEMU patch series declared `count` as
/// a u32 with the data at 12, which 11.1 does not do. QEMU answers a DMA_WRITE with the
/// header alone.
public struct VFIOUserDMAAccess: VFIOUserPayload {
    public static let cName = "vfio_user_dma_region_access"
    public static let headerSize = 16
    public var address: UInt64
    public var count: UInt64
    public var data: [UInt8]

    public init(address: UInt64, count: UInt64, data: [UInt8] = []) {
        self.address = address
        self.count = count
        self.data = data
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(address)
        writer.u64(count)
        writer.append(contentsOf: data)
    }

    /// Decodes without data when only the 16-byte fixed part is present, else with
    /// exactly `count` bytes of data.
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        address = try reader.u64()
        count = try reader.u64()
        data = try reader.dataAbsentOrExactly(count, field: "count")
    }
}

// MARK: REGION_WRITE_MULTI

/// One write of `VFIO_USER_REGION_WRITE_MULTI` (24 bytes, at most 8 data bytes).
public struct VFIOUserWriteOne: Sendable, Equatable {
    public static let size = 24
    public static let maxData = 8
    public var offset: UInt64
    public var region: UInt32
    /// The data (1...8 bytes); `count` on the wire.
    public var data: [UInt8]

    public init(offset: UInt64, region: UInt32, data: [UInt8]) {
        self.offset = offset
        self.region = region
        self.data = data
    }
}

/// `VFIO_USER_REGION_WRITE_MULTI` request: `wr_cnt` (u64), then `wr_cnt` writes. The reply
/// has `wr_cnt` only (QEMU sends these with NO_REPLY).
public struct VFIOUserWriteMulti: VFIOUserPayload {
    public static let cName = "vfio_user_region_write_multi"
    /// QEMU's `VFIO_USER_MULTI_MAX`; more are refused.
    public static let maxWrites = 200
    public var writes: [VFIOUserWriteOne]

    public init(writes: [VFIOUserWriteOne]) { self.writes = writes }

    public func encode(into writer: inout ByteWriter) {
        writer.u64(UInt64(writes.count))
        for write in writes {
            writer.u64(write.offset)
            writer.u32(write.region)
            writer.u32(UInt32(write.data.count))
            writer.fixedArray(write.data, size: VFIOUserWriteOne.maxData)
        }
    }

    /// - Throws: `.malformed` for a count above 200, fewer entries than stated, or an entry
    ///   whose count is 0 or above 8.
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        let count = try reader.u64()
        guard count <= UInt64(Self.maxWrites) else {
            throw .malformed(Self.cName, "wr_cnt \(count) exceeds \(Self.maxWrites)")
        }
        guard UInt64(reader.remaining) >= count * UInt64(VFIOUserWriteOne.size) else {
            throw .malformed(Self.cName, "wr_cnt \(count) needs \(count * 24) bytes, \(reader.remaining) present")
        }
        var writes: [VFIOUserWriteOne] = []
        for i in 0..<Int(count) {
            let offset = try reader.u64()
            let region = try reader.u32()
            let n = try reader.u32()
            let data = try reader.bytes(VFIOUserWriteOne.maxData)
            guard n >= 1, n <= UInt32(VFIOUserWriteOne.maxData) else {
                throw .malformed(Self.cName, "write \(i) has count \(n), not 1...8")
            }
            writes.append(VFIOUserWriteOne(offset: offset, region: region, data: Array(data.prefix(Int(n)))))
        }
        self.writes = writes
    }
}

/// The reply of `VFIO_USER_REGION_WRITE_MULTI`: the number of writes done.
public struct VFIOUserWriteMultiReply: VFIOUserPayload {
    public static let cName = "vfio_user_region_write_multi reply"
    public var completed: UInt64
    public init(completed: UInt64) { self.completed = completed }
    public func encode(into writer: inout ByteWriter) { writer.u64(completed) }
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        completed = try reader.u64()
    }
}

// MARK: DEVICE_GET_REGION_IO_FDS

/// `VFIO_USER_IO_FD_TYPE_*` of a sub-region.
public enum VFIOUserIOFDType: UInt32, Sendable {
    case ioeventfd = 0
    case ioregionfd = 1
}

/// One sub-region of a `VFIO_USER_DEVICE_GET_REGION_IO_FDS` reply (40 bytes).
public struct VFIOUserIOFD: Sendable, Equatable {
    public static let size = 40
    public var offset: UInt64
    public var size: UInt64
    /// Index into the descriptors passed with the reply.
    public var fdIndex: UInt32
    public var type: UInt32
    /// `KVM_IOEVENTFD_FLAG_*` or `KVM_IOREGION_*`.
    public var flags: UInt32
    /// `datamatch` (ioeventfd) or `user_data` (ioregionfd).
    public var data: UInt64

    public init(offset: UInt64, size: UInt64, fdIndex: UInt32, type: VFIOUserIOFDType, flags: UInt32 = 0, data: UInt64 = 0) {
        self.offset = offset
        self.size = size
        self.fdIndex = fdIndex
        self.type = type.rawValue
        self.flags = flags
        self.data = data
    }
}

/// `struct vfio_user_region_io_fds`: request (16 bytes, only `argsz` and `index` set) and
/// reply (with `count` sub-regions). In the reply `argsz` states the size needed; when it
/// exceeds the request's argsz, the sub-regions are left out.
public struct VFIOUserRegionIOFDs: VFIOUserPayload {
    public static let cName = "vfio_user_region_io_fds"
    public static let fixedSize = 16
    public var argsz: UInt32
    public var flags: UInt32
    public var index: UInt32
    public var count: UInt32
    public var subRegions: [VFIOUserIOFD]

    public init(argsz: UInt32, flags: UInt32 = 0, index: UInt32, count: UInt32 = 0, subRegions: [VFIOUserIOFD] = []) {
        self.argsz = argsz
        self.flags = flags
        self.index = index
        self.count = count
        self.subRegions = subRegions
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(argsz)
        writer.u32(flags)
        writer.u32(index)
        writer.u32(count)
        for sub in subRegions {
            writer.u64(sub.offset)
            writer.u64(sub.size)
            writer.u32(sub.fdIndex)
            writer.u32(sub.type)
            writer.u32(sub.flags)
            writer.u32(0)
            writer.u64(sub.data)
        }
    }

    /// Decodes the fixed part, then as many whole sub-regions as are present, up to `count`.
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        argsz = try reader.argsz(fixedSize: Self.fixedSize)
        flags = try reader.u32()
        index = try reader.u32()
        count = try reader.u32()
        var subs: [VFIOUserIOFD] = []
        if reader.remaining > 0 {
            guard UInt64(reader.remaining) >= UInt64(count) * UInt64(VFIOUserIOFD.size) else {
                throw .malformed(Self.cName, "count \(count) needs \(UInt64(count) * 40) bytes, \(reader.remaining) present")
            }
            for _ in 0..<count {
                let offset = try reader.u64()
                let size = try reader.u64()
                let fdIndex = try reader.u32()
                let type = try reader.u32()
                let flags = try reader.u32()
                try reader.skip(4)
                let data = try reader.u64()
                var sub = VFIOUserIOFD(offset: offset, size: size, fdIndex: fdIndex, type: .ioeventfd, flags: flags, data: data)
                sub.type = type
                subs.append(sub)
            }
        }
        subRegions = subs
    }
}

// MARK: MIG_DATA_READ / MIG_DATA_WRITE

/// `struct vfio_user_mig_data`: `argsz`, `size`, then data (MIG_DATA_READ reply and
/// MIG_DATA_WRITE request).
public struct VFIOUserMigData: VFIOUserPayload {
    public static let cName = "vfio_user_mig_data"
    public static let fixedSize = 8
    public var argsz: UInt32
    public var size: UInt32
    public var data: [UInt8]

    public init(argsz: UInt32, size: UInt32, data: [UInt8] = []) {
        self.argsz = argsz
        self.size = size
        self.data = data
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(argsz)
        writer.u32(size)
        writer.append(contentsOf: data)
    }

    /// - Throws: `.malformed` for a short payload, or data present whose length is not `size`.
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        argsz = try reader.argsz(fixedSize: Self.fixedSize)
        size = try reader.u32()
        data = try reader.dataAbsentOrExactly(UInt64(size), field: "size")
    }

    /// The data of a MIG_DATA_READ reply to a request for `requested` bytes: the first
    /// `size` bytes after the structure. Data past `size` is ignored (libvfio-user pads
    /// its replies to 8 + the size asked for, whatever `size` says); `argsz` is not checked.
    /// - Throws: `.malformed` for a payload shorter than the structure, or a `size` larger
    ///   than `requested` or than the data present.
    public static func readReplyData(_ bytes: [UInt8], requested: UInt32) throws(VFIOError) -> ArraySlice<UInt8> {
        var reader = ByteReader(bytes, context: cName)
        _ = try reader.u32()
        let size = try reader.u32()
        guard size <= requested else {
            throw .malformed(cName, "size \(size) is more than the \(requested) byte(s) asked for")
        }
        guard Int(size) <= reader.remaining else {
            throw .malformed(cName, "size \(size) but \(reader.remaining) data byte(s) follow")
        }
        return bytes[fixedSize..<(fixedSize + Int(size))]
    }
}

// MARK: DIRTY_PAGES (deprecated)

/// `flags` of the deprecated `VFIO_USER_DIRTY_PAGES`.
public struct VFIOUserDirtyPagesFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let start = VFIOUserDirtyPagesFlags(rawValue: 1 << 0)
    public static let stop = VFIOUserDirtyPagesFlags(rawValue: 1 << 1)
    public static let getBitmap = VFIOUserDirtyPagesFlags(rawValue: 1 << 2)
}

/// The deprecated `VFIO_USER_DIRTY_PAGES` (`struct vfio_user_dirty_pages`, then with
/// GET_BITMAP a `struct vfio_user_bitmap_range`: iova, size, and a `vfio_user_bitmap`).
/// Exactly one flag is set.
public struct VFIOUserDirtyPages: VFIOUserPayload {
    public static let cName = "vfio_user_dirty_pages"
    public var argsz: UInt32
    public var flags: VFIOUserDirtyPagesFlags
    /// With GET_BITMAP: the range and its bitmap.
    public var range: (iova: UInt64, size: UInt64, bitmap: VFIOUserBitmap)?

    public init(argsz: UInt32 = 8, flags: VFIOUserDirtyPagesFlags, range: (iova: UInt64, size: UInt64, bitmap: VFIOUserBitmap)? = nil) {
        self.argsz = argsz
        self.flags = flags
        self.range = range
    }

    public static func == (a: VFIOUserDirtyPages, b: VFIOUserDirtyPages) -> Bool {
        a.argsz == b.argsz && a.flags == b.flags && a.range?.iova == b.range?.iova
            && a.range?.size == b.range?.size && a.range?.bitmap == b.range?.bitmap
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(argsz)
        writer.u32(flags.rawValue)
        if let range {
            writer.u64(range.iova)
            writer.u64(range.size)
            writer.u64(range.bitmap.pageSize)
            writer.u64(range.bitmap.size)
            writer.append(contentsOf: range.bitmap.data)
        }
    }

    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: Self.cName)
        argsz = try reader.argsz(fixedSize: 8)
        flags = VFIOUserDirtyPagesFlags(rawValue: try reader.u32())
        guard flags.rawValue.nonzeroBitCount == 1, flags.rawValue < 8 else {
            throw .malformed(Self.cName, "flags 0x\(String(flags.rawValue, radix: 16)) must be exactly one of START, STOP, GET_BITMAP")
        }
        if flags == .getBitmap {
            let iova = try reader.u64()
            let size = try reader.u64()
            let pageSize = try reader.u64()
            let bitmapSize = try reader.u64()
            var data: [UInt8] = []
            if reader.remaining > 0 {
                guard bitmapSize <= UInt64(reader.remaining) else {
                    throw .malformed(Self.cName, "bitmap size \(bitmapSize) exceeds the \(reader.remaining) byte(s) present")
                }
                data = try reader.bytes(Int(bitmapSize))
            }
            range = (iova, size, VFIOUserBitmap(pageSize: pageSize, size: bitmapSize, data: data))
        } else {
            range = nil
        }
    }
}

extension ByteReader {
    /// The rest of a payload whose fixed part states a data length: no data at all (a
    /// request for data, or a reply without it), or exactly `expected` bytes.
    /// - Throws: `.malformed` naming `field` when other than 0 or `expected` bytes follow.
    mutating func dataAbsentOrExactly(_ expected: UInt64, field: String) throws(VFIOError) -> [UInt8] {
        if remaining == 0 { return [] }
        guard UInt64(remaining) == expected else {
            throw .malformed(context, "\(field) \(expected) but \(remaining) data byte(s) follow")
        }
        return try bytes(remaining)
    }
}
