import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// A kernel-managed hardware page table (HWPT, `IOMMUFD_OBJ_HWPT_PAGING`): an IOMMU domain
/// the kernel fills from an IOAS's mappings, allocated with `IOMMU_HWPT_ALLOC` for one
/// device and attachable to every device its IOMMU accepts. DMA through it sees exactly the
/// IOAS's mappings. Destroyed (`IOMMU_DESTROY`) when the last reference goes away; a
/// `HostDevice` attached to it keeps it alive until detached or replaced.
public final class HWPT: Sendable {
    public let iommufd: IOMMUFD
    /// The IOAS the page table mirrors (the kernel holds it too: it cannot be destroyed first).
    public let ioas: IOAS
    /// The HWPT object id (`out_hwpt_id`).
    public let id: UInt32
    /// The bound device it was allocated for (`dev_id`).
    public let deviceID: UInt32
    /// The flags it was allocated with.
    public let flags: IOMMUFDHWPTAllocFlags
    /// The queue its I/O page faults go to, kept alive as long as the HWPT.
    public let faultQueue: IOMMUFDFaultQueue?

    init(ioas: IOAS, id: UInt32, deviceID: UInt32, flags: IOMMUFDHWPTAllocFlags, faultQueue: IOMMUFDFaultQueue?) {
        self.iommufd = ioas.iommufd
        self.ioas = ioas
        self.id = id
        self.deviceID = deviceID
        self.flags = flags
        self.faultQueue = faultQueue
    }

    deinit { try? iommufd.destroy(id) }

    /// `IOMMU_HWPT_SET_DIRTY_TRACKING`: starts (or stops) the IOMMU recording which pages
    /// devices write. Needs a HWPT allocated with `.dirtyTracking`.
    /// - Throws: `.unsupported` naming the reason when the kernel answers `EOPNOTSUPP`:
    ///   the IOMMU lacks dirty tracking (`IOMMU_HW_CAP_DIRTY_TRACKING` clear), or the HWPT
    ///   was allocated without `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`.
    public func setDirtyTracking(_ enabled: Bool) throws(VFIOError) {
        let operation = "IOMMU_HWPT_SET_DIRTY_TRACKING"
        var bytes = IOMMUFDHWPTSetDirtyTracking(flags: enabled ? .enable : [], hwptID: id).encoded()
        do throws(VFIOError) {
            try iommufd.ioctl.call(operation, try iommufd.descriptor.requireOpen(operation), CVFIO_IOMMU_HWPT_SET_DIRTY_TRACKING, &bytes)
        } catch where error.errnoValue == EOPNOTSUPP {
            throw .unsupported(operation, dirtyTrackingRefusal())
        }
    }

    /// `IOMMU_HWPT_GET_DIRTY_BITMAP`: the pages of `[iova, iova + length)` devices wrote
    /// since tracking started or the last read, one bit per `pageSize` bytes (bit n of
    /// word n / 64 is the page at `iova + n * pageSize`); the bits read are cleared unless
    /// `clear` is false (`IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR`).
    /// - Throws: `.invalidArgument` when `pageSize` is not a power of two or the range is
    ///   not aligned to it (the kernel's `EINVAL`); `.unsupported` as `setDirtyTracking`
    ///   for `EOPNOTSUPP`; `EOVERFLOW` for a range past the address space.
    public func dirtyBitmap(iova: UInt64, length: UInt64, pageSize: UInt64, clear: Bool = true) throws(VFIOError) -> [UInt64] {
        let operation = "IOMMU_HWPT_GET_DIRTY_BITMAP"
        guard pageSize != 0, pageSize & (pageSize - 1) == 0, length > 0, iova % pageSize == 0, length % pageSize == 0 else {
            throw .invalidArgument(operation, "iova 0x\(String(iova, radix: 16)) and length 0x\(String(length, radix: 16)) must be non-empty multiples of the power-of-two page size \(pageSize)")
        }
        let pages = length / pageSize
        guard pages <= DirtyPageBitmap.maximumPages else {
            throw .invalidArgument(operation, "\(pages) pages exceed the limit of \(DirtyPageBitmap.maximumPages)")
        }
        var words = [UInt64](repeating: 0, count: Int((pages + 63) / 64))
        let fd = try iommufd.descriptor.requireOpen(operation)
        let result = words.withUnsafeMutableBytes { buffer -> Result<Void, VFIOError> in
            var bytes = IOMMUFDHWPTGetDirtyBitmap(hwptID: id, flags: clear ? [] : .noClear, iova: iova, length: length,
                                                  pageSize: pageSize, data: UInt64(UInt(bitPattern: buffer.baseAddress))).encoded()
            return Result { () throws(VFIOError) in
                try iommufd.ioctl.call(operation, fd, CVFIO_IOMMU_HWPT_GET_DIRTY_BITMAP, &bytes)
            }
        }
        switch result {
        case .success: return words.map { UInt64(littleEndian: $0) }
        case .failure(let error) where error.errnoValue == EOPNOTSUPP: throw .unsupported(operation, dirtyTrackingRefusal())
        case .failure(let error): throw error
        }
    }

    /// Why the kernel answered `EOPNOTSUPP` to a dirty-tracking call, from the IOMMU's
    /// capability (`IOMMU_GET_HW_INFO`) and this HWPT's flags.
    func dirtyTrackingRefusal() -> String {
        let capabilities = try? iommufd.hardwareInfo(deviceID: deviceID).capabilities
        if let capabilities, !capabilities.contains(.dirtyTracking) {
            return "the IOMMU lacks dirty tracking (IOMMU_HW_CAP_DIRTY_TRACKING is clear); the kernel answered EOPNOTSUPP"
        }
        if !flags.contains(.dirtyTracking) {
            return "the HWPT was allocated without IOMMU_HWPT_ALLOC_DIRTY_TRACKING; the kernel answered EOPNOTSUPP"
        }
        return "the kernel answered EOPNOTSUPP"
    }
}

extension IOMMUFD {
    /// `IOMMU_HWPT_ALLOC` with `IOMMU_HWPT_DATA_NONE`: a kernel-managed paging domain over
    /// `ioas`, for the bound device `deviceID` (whose IOMMU decides what it can be).
    /// `flags`: `.nestParent` (`IOMMU_HWPT_ALLOC_NEST_PARENT`, the stage-2 parent of nested
    /// domains and vIOMMUs) and `.dirtyTracking` (`IOMMU_HWPT_ALLOC_DIRTY_TRACKING`).
    /// - Throws: `.unsupported` naming the missing IOMMU feature when the kernel answers
    ///   `EOPNOTSUPP` to a flag (dirty tracking without `IOMMU_HW_CAP_DIRTY_TRACKING`;
    ///   a nesting parent on VT-d without scalable mode and nesting, ECAP SMTS and NEST);
    ///   `.invalidArgument` for `.faultIDValid` (pass `faultQueue`) or `.pasid` (Linux
    ///   6.15); `ENOENT` for an unknown device; `EINVAL` for an id that is no IOAS.
    ///   `EOPNOTSUPP` for a `faultQueue` where the kernel takes none on a paging HWPT
    ///   (6.12 takes one only on a nested HWPT).
    public func allocateHWPT(deviceID: UInt32, ioas: IOAS, flags: IOMMUFDHWPTAllocFlags = [],
                             faultQueue: IOMMUFDFaultQueue? = nil) throws(VFIOError) -> HWPT {
        let operation = "IOMMU_HWPT_ALLOC"
        guard ioas.iommufd === self else {
            throw .invalidArgument(operation, "the IOAS belongs to another iommufd")
        }
        let unusable = flags.subtracting([.nestParent, .dirtyTracking])
        guard unusable.isEmpty else {
            throw .invalidArgument(operation, "flags 0x\(String(unusable.rawValue, radix: 16)) are not for a kernel-managed paging HWPT (only NEST_PARENT and DIRTY_TRACKING are)")
        }
        if let faultQueue, faultQueue.iommufd !== self {
            throw .invalidArgument(operation, "the fault queue belongs to another iommufd")
        }
        let request = IOMMUFDHWPTAlloc(flags: flags, deviceID: deviceID, parentID: ioas.id, faultID: faultQueue?.id)
        try request.validate()
        var bytes = request.encoded()
        do throws(VFIOError) {
            try ioctl.call(operation, try descriptor.requireOpen(operation), CVFIO_IOMMU_HWPT_ALLOC, &bytes)
        } catch where error.errnoValue == EOPNOTSUPP && !flags.isEmpty {
            throw hwptRefusal(deviceID: deviceID, flags: flags) ?? error
        }
        let id = try IOMMUFDHWPTAlloc(decoding: bytes).outHWPTID
        return HWPT(ioas: ioas, id: id, deviceID: deviceID, flags: flags, faultQueue: faultQueue)
    }

    /// The IOMMU feature a refused HWPT flag needs, when `IOMMU_GET_HW_INFO` shows it missing.
    func hwptRefusal(deviceID: UInt32, flags: IOMMUFDHWPTAllocFlags) -> VFIOError? {
        guard let info = try? hardwareInfo(deviceID: deviceID) else { return nil }
        var missing: [String] = []
        if flags.contains(.dirtyTracking) && !info.capabilities.contains(.dirtyTracking) {
            missing.append("the IOMMU lacks dirty tracking (IOMMU_HW_CAP_DIRTY_TRACKING is clear)")
        }
        if flags.contains(.nestParent), let vtd = try? info.intelVTD(), !vtd.extendedCapability.allowsNestingParent {
            missing.append("the IOMMU cannot be a nesting parent (VT-d ECAP needs SMTS and NEST; has: \(vtd.extendedCapability.flagNames.joined(separator: " ")))")
        }
        if missing.isEmpty { return nil }
        return .unsupported("IOMMU_HWPT_ALLOC", missing.joined(separator: "; ") + "; the kernel answered EOPNOTSUPP")
    }
}
