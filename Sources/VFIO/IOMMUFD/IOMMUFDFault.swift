/// `IOMMU_FAULT_QUEUE_ALLOC` (`struct iommu_fault_alloc`, 16 bytes): create a fault queue
/// whose file descriptor delivers I/O page faults (`IOMMUFDPageFault` records) and
/// accepts responses (`IOMMUFDPageResponse`).
///
/// Layout: `size` at 0, `flags` at 4 (must be 0), `out_fault_id` at 8, `out_fault_fd` at 12.
public struct IOMMUFDFaultAlloc: ArgszStruct {
    public static let cName = "iommu_fault_alloc"
    /// `sizeof(struct iommu_fault_alloc)`
    public static let fixedSize = 16

    /// Out: the fault object's id (for `IOMMUFDHWPTAlloc.faultID`).
    public var outFaultID: UInt32
    /// Out: the queue's file descriptor, owned by the caller once returned.
    public var outFaultFD: UInt32

    public init(outFaultID: UInt32 = 0, outFaultFD: UInt32 = 0) {
        self.outFaultID = outFaultID
        self.outFaultFD = outFaultFD
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        writer.u32(0) // flags
        writer.u32(outFaultID)
        writer.u32(outFaultFD)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let size = try reader.argsz(fixedSize: Self.fixedSize)
        try reader.iommufdZeroFlags()
        outFaultID = try reader.u32()
        outFaultFD = try reader.u32()
        reader.iommufdFinish(start: start, size: size)
    }
}

/// `flags` of `struct iommu_hwpt_pgfault` (`enum iommu_hwpt_pgfault_flags`).
public struct IOMMUFDPageFaultFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IOMMU_PGFAULT_FLAGS_PASID_VALID`: `pasid` is meaningful.
    public static let pasidValid = IOMMUFDPageFaultFlags(rawValue: 1 << 0)
    /// `IOMMU_PGFAULT_FLAGS_LAST_PAGE`: the last fault of its group; respond with its cookie.
    public static let lastPage = IOMMUFDPageFaultFlags(rawValue: 1 << 1)
}

/// `perm` of `struct iommu_hwpt_pgfault` (`enum iommu_hwpt_pgfault_perm`).
public struct IOMMUFDPageFaultPermissions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IOMMU_PGFAULT_PERM_READ`
    public static let read = IOMMUFDPageFaultPermissions(rawValue: 1 << 0)
    /// `IOMMU_PGFAULT_PERM_WRITE`
    public static let write = IOMMUFDPageFaultPermissions(rawValue: 1 << 1)
    /// `IOMMU_PGFAULT_PERM_EXEC`: the PASID prefix asked for execute.
    public static let execute = IOMMUFDPageFaultPermissions(rawValue: 1 << 2)
    /// `IOMMU_PGFAULT_PERM_PRIV`: the PASID prefix asked for privileged mode.
    public static let privileged = IOMMUFDPageFaultPermissions(rawValue: 1 << 3)
}

/// One I/O page fault read from a fault queue fd (`struct iommu_hwpt_pgfault`, 40 bytes).
///
/// Layout: `flags` at 0, `dev_id` at 4, `pasid` at 8, `grpid` at 12, `perm` at 16,
/// `__reserved` at 20, `addr` at 24, `length` at 32, `cookie` at 36.
public struct IOMMUFDPageFault: KernelStruct, Hashable {
    public static let cName = "iommu_hwpt_pgfault"
    /// `sizeof(struct iommu_hwpt_pgfault)`
    public static let fixedSize = 40

    public var flags: IOMMUFDPageFaultFlags
    /// The faulting device's iommufd id.
    public var deviceID: UInt32
    public var pasid: UInt32
    /// The PCI page request group index.
    public var groupID: UInt32
    public var permissions: IOMMUFDPageFaultPermissions
    /// The faulting address.
    public var address: UInt64
    /// A hint of how many bytes the device will access (0 when unknown).
    public var length: UInt32
    /// Identifies the fault group; echo it in the response.
    public var cookie: UInt32

    public init(flags: IOMMUFDPageFaultFlags, deviceID: UInt32, pasid: UInt32, groupID: UInt32,
                permissions: IOMMUFDPageFaultPermissions, address: UInt64, length: UInt32, cookie: UInt32) {
        self.flags = flags
        self.deviceID = deviceID
        self.pasid = pasid
        self.groupID = groupID
        self.permissions = permissions
        self.address = address
        self.length = length
        self.cookie = cookie
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(flags.rawValue)
        writer.u32(deviceID)
        writer.u32(pasid)
        writer.u32(groupID)
        writer.u32(permissions.rawValue)
        writer.u32(0)
        writer.u64(address)
        writer.u32(length)
        writer.u32(cookie)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        flags = IOMMUFDPageFaultFlags(rawValue: try reader.u32())
        deviceID = try reader.u32()
        pasid = try reader.u32()
        groupID = try reader.u32()
        permissions = IOMMUFDPageFaultPermissions(rawValue: try reader.u32())
        try reader.iommufdReserved32()
        address = try reader.u64()
        length = try reader.u32()
        cookie = try reader.u32()
    }
}

/// `code` of `struct iommu_hwpt_page_response` (`enum iommufd_page_response_code`).
public enum IOMMUFDPageResponseCode: UInt32, Sendable, CaseIterable {
    /// `IOMMUFD_PAGE_RESP_SUCCESS`: handled, the device retries the access.
    case success = 0
    /// `IOMMUFD_PAGE_RESP_INVALID`: not handled, the device must not retry.
    case invalid = 1
}

/// A response written to a fault queue fd (`struct iommu_hwpt_page_response`, 8 bytes):
/// `cookie` at 0, `code` at 4.
public struct IOMMUFDPageResponse: KernelStruct, Hashable {
    public static let cName = "iommu_hwpt_page_response"
    /// `sizeof(struct iommu_hwpt_page_response)`
    public static let fixedSize = 8

    /// The cookie of the fault group's last fault.
    public var cookie: UInt32
    public var code: IOMMUFDPageResponseCode

    public init(cookie: UInt32, code: IOMMUFDPageResponseCode) {
        self.cookie = cookie
        self.code = code
    }

    public func encode(into writer: inout ByteWriter) {
        writer.u32(cookie)
        writer.u32(code.rawValue)
    }

    /// - Throws: `.malformed` for a `code` other than SUCCESS or INVALID.
    public init(from reader: inout ByteReader) throws(VFIOError) {
        cookie = try reader.u32()
        code = try reader.iommufdEnum(IOMMUFDPageResponseCode.self, "code")
    }
}
