import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// How an iommufd charges the memory its mappings pin (`IOMMU_OPTION_RLIMIT_MODE`).
public enum IOMMUFDRlimitMode: UInt64, Sendable {
    /// 0: against the user's `RLIMIT_MEMLOCK` (`user->locked_vm`), the default.
    case perUser = 0
    /// 1: against the process (`mm->pinned_vm`), as the type1 container does.
    case perProcess = 1
}

extension IOMMUFD {
    /// `IOMMU_GET_HW_INFO`: what the IOMMU behind the bound device `deviceID` (the id
    /// `VFIO_DEVICE_BIND_IOMMUFD` returned) offers: `out_capabilities` and the driver's
    /// data (Intel VT-d: `cap_reg` and `ecap_reg`).
    /// - Throws: `ENOENT` for an id that is no bound device.
    public func hardwareInfo(deviceID: UInt32) throws(VFIOError) -> IOMMUHardwareInfo {
        let fd = try descriptor.requireOpen("IOMMU_GET_HW_INFO")
        var capacity = 64
        for _ in 0..<2 {
            let storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
            defer { storage.deallocate() }
            var bytes = IOMMUFDHWInfo(deviceID: deviceID, dataLength: UInt32(capacity),
                                      dataUptr: UInt64(UInt(bitPattern: storage))).encoded()
            try ioctl.call("IOMMU_GET_HW_INFO", fd, CVFIO_IOMMU_GET_HW_INFO, &bytes)
            let reply = try IOMMUFDHWInfo(decoding: bytes)
            // The kernel states the size of its data; a larger one than the buffer was cut.
            if Int(reply.dataLength) > capacity {
                capacity = Int(reply.dataLength)
                continue
            }
            return IOMMUHardwareInfo(dataType: reply.outDataType, capabilities: reply.outCapabilities,
                                     data: Array(UnsafeRawBufferPointer(start: storage, count: Int(reply.dataLength))),
                                     maxPASIDLog2: reply.outMaxPASIDLog2)
        }
        throw .malformed("IOMMU_GET_HW_INFO", "the data length kept growing")
    }

    /// `IOMMU_OPTION` `IOMMU_OPTION_RLIMIT_MODE`, `IOMMU_OPTION_OP_GET`: how pinned
    /// memory is charged.
    public func rlimitMode() throws(VFIOError) -> IOMMUFDRlimitMode {
        let value = try option(IOMMUFDOption(option: .rlimitMode, operation: .get))
        guard let mode = IOMMUFDRlimitMode(rawValue: value) else {
            throw .malformed("IOMMU_OPTION", "RLIMIT_MODE is \(value), neither 0 nor 1")
        }
        return mode
    }

    /// `IOMMU_OPTION` `IOMMU_OPTION_RLIMIT_MODE`, `IOMMU_OPTION_OP_SET`.
    /// - Throws: `EPERM` without `CAP_SYS_RESOURCE`; `EBUSY` once the iommufd holds any
    ///   object (an IOAS, a bound device): set it first.
    public func setRlimitMode(_ mode: IOMMUFDRlimitMode) throws(VFIOError) {
        _ = try option(IOMMUFDOption(option: .rlimitMode, operation: .set, value: mode.rawValue))
    }

    /// `IOMMU_OPTION` as given (`rlimitMode`, `IOAS.hugePages` and their setters are
    /// the typed forms): returns `val64` as the kernel wrote it back.
    /// - Throws: `ENOENT` for an `object_id` that is no IOAS (HUGE_PAGES);
    ///   `EOPNOTSUPP` for a non-zero `object_id` with RLIMIT_MODE.
    public func option(_ request: IOMMUFDOption) throws(VFIOError) -> UInt64 {
        var bytes = request.encoded()
        try ioctl.call("IOMMU_OPTION", try descriptor.requireOpen("IOMMU_OPTION"), CVFIO_IOMMU_OPTION, &bytes)
        return try IOMMUFDOption(decoding: bytes).value
    }
}
