import VFIO

/// A register of a region that the client may turn into an **ioeventfd** (vfio-user's
/// `VFIO_USER_DEVICE_GET_REGION_IO_FDS`; KVM's `KVM_IOEVENTFD`): a write of `width` bytes
/// at `offset` then signals an eventfd the server reads, instead of travelling as a
/// `REGION_WRITE` message. Doorbells are the use: the guest's store no longer waits for a
/// round trip to the server.
///
/// What the model loses: the write is posted (the guest does not wait for the model), writes
/// coalesce (the eventfd counts them; N writes may arrive as one signal with count N), and
/// without `dataMatch` the value written is lost (the model learns only that the register
/// was written: an NVMe controller then reads the value from its shadow doorbell buffer).
/// With `dataMatch` only a write of exactly that value signals; other values still come as
/// `REGION_WRITE`. Declare areas in `RegionDescriptor.ioEventAreas`; the server calls
/// `DeviceModel.ioEventSignalled(region:area:count:)` for each signal.
public struct IOEventArea: Sendable, Hashable, CustomStringConvertible {
    /// Offset of the register inside its region.
    public var offset: UInt64
    /// The access width that triggers, in bytes: 1, 2, 4 or 8; 0 = any width (KVM's `len`
    /// 0, which cannot be combined with a data match).
    public var width: UInt8
    /// `KVM_IOEVENTFD_FLAG_DATAMATCH` with this value (it must fit in `width` bytes).
    public var dataMatch: UInt64?

    public init(offset: UInt64, width: UInt8, dataMatch: UInt64? = nil) {
        self.offset = offset
        self.width = width
        self.dataMatch = dataMatch
    }

    /// The bytes the area covers (at least 1, for an area of any width).
    public var extent: Range<UInt64> { offset..<offset + UInt64(max(width, 1)) }

    public var description: String {
        let match = dataMatch.map { " == 0x\(String($0, radix: 16))" } ?? ""
        return "ioeventfd(0x\(String(offset, radix: 16)) width \(width)\(match))"
    }

    /// Checks the areas of `region` the way a server must before handing any out: width
    /// 0, 1, 2, 4 or 8; a data match only with a width, fitting in it; inside the region;
    /// outside every mmap area (stores to mapped memory never trap); no two overlapping.
    /// - Throws: `.invalidArgument` naming the region and the area.
    public static func validate(_ region: RegionDescriptor) throws(VFIOError) {
        let name = "region \(region.index) ioEventAreas"
        for area in region.ioEventAreas {
            guard [0, 1, 2, 4, 8].contains(area.width) else {
                throw .invalidArgument(name, "\(area): width must be 0, 1, 2, 4 or 8")
            }
            if let match = area.dataMatch {
                guard area.width > 0 else { throw .invalidArgument(name, "\(area): a data match needs a width") }
                guard area.width == 8 || match >> (UInt64(area.width) * 8) == 0 else {
                    throw .invalidArgument(name, "\(area): the data match does not fit in \(area.width) byte(s)")
                }
            }
            guard area.offset < region.size, UInt64(max(area.width, 1)) <= region.size - area.offset else {
                throw .invalidArgument(name, "\(area) lies outside the region's \(region.size) bytes")
            }
            if let mapped = region.mmapAreas.first(where: { $0.offset < area.extent.upperBound && area.extent.lowerBound < $0.offset &+ $0.size }) {
                throw .invalidArgument(name, "\(area) overlaps the mmap area at 0x\(String(mapped.offset, radix: 16))")
            }
        }
        let sorted = region.ioEventAreas.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.offset < a.extent.upperBound {
            throw .invalidArgument(name, "\(a) and \(b) overlap")
        }
    }
}
