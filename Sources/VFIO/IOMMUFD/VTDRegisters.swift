/// The Intel VT-d Capability Register (`cap_reg` of `struct iommu_hw_info_vtd`), decoded
/// field by field. Bit positions as Linux's `drivers/iommu/intel/iommu.h` reads them
/// (its `cap_*` macros); names are the VT-d specification's field abbreviations.
public struct VTDCapability: Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    private func bit(_ n: UInt64) -> Bool { (rawValue >> n) & 1 == 1 }
    private func field(_ shift: UInt64, _ mask: UInt64) -> UInt64 { (rawValue >> shift) & mask }

    /// ND (bits 2:0): the number of domain ids the unit supports, `2^(4 + 2 * ND)`.
    public var domainCount: UInt64 { 1 << (4 + 2 * field(0, 0x7)) }
    /// RWBF (bit 4): software must flush the write buffer.
    public var requiredWriteBufferFlushing: Bool { bit(4) }
    /// CM (bit 7): caching mode, set by emulated IOMMUs (QEMU's `caching-mode=on`):
    /// not-present entries may be cached, so every map must be invalidated too.
    public var cachingMode: Bool { bit(7) }
    /// SAGAW (bits 12:8): the second-level page-table depths supported; bit 1 is 3-level
    /// (39-bit), bit 2 4-level (48-bit), bit 3 5-level (57-bit).
    public var supportedAdjustedGuestAddressWidths: UInt64 { field(8, 0x1f) }
    /// The guest address widths SAGAW names, in bits (39, 48, 57).
    public var secondLevelAddressWidths: [Int] {
        [(1, 39), (2, 48), (3, 57)].compactMap { (sagawBit, width) in (supportedAdjustedGuestAddressWidths >> UInt64(sagawBit)) & 1 == 1 ? width : nil }
    }
    /// MGAW (bits 21:16) + 1: the maximum guest (IOVA) address width in bits.
    public var maximumGuestAddressWidth: Int { Int(field(16, 0x3f)) + 1 }
    /// ZLR (bit 22): zero-length DMA reads are supported.
    public var zeroLengthRead: Bool { bit(22) }
    /// SLLPS (bits 37:34): second-level large pages; bit 0 is 2 MiB, bit 1 is 1 GiB.
    public var secondLevelLargePageSupport: UInt64 { field(34, 0xf) }
    /// PSI (bit 39): page-selective IOTLB invalidation.
    public var pageSelectiveInvalidation: Bool { bit(39) }
    /// NFR (bits 47:40) + 1: the number of fault recording registers.
    public var faultRecordingRegisters: Int { Int(field(40, 0xff)) + 1 }
    /// MAMV (bits 53:48): the largest address mask for page-selective invalidation.
    public var maximumAddressMaskValue: Int { Int(field(48, 0x3f)) }
    /// DWD (bit 54): write draining.
    public var writeDraining: Bool { bit(54) }
    /// DRD (bit 55): read draining.
    public var readDraining: Bool { bit(55) }
    /// FS1GP (bit 56): first-level 1 GiB pages.
    public var firstLevel1GiBPages: Bool { bit(56) }
    /// PI (bit 59): posted interrupts.
    public var postedInterrupts: Bool { bit(59) }
    /// FS5LP (bit 60): first-level 5-level paging.
    public var firstLevel5LevelPaging: Bool { bit(60) }

    /// The set bits among the fields above, by their specification names (`CM`, `PSI`, ...).
    public var flagNames: [String] {
        [("RWBF", requiredWriteBufferFlushing), ("CM", cachingMode), ("ZLR", zeroLengthRead),
         ("PSI", pageSelectiveInvalidation), ("DWD", writeDraining), ("DRD", readDraining),
         ("FS1GP", firstLevel1GiBPages), ("PI", postedInterrupts), ("FS5LP", firstLevel5LevelPaging)]
            .filter(\.1).map(\.0)
    }
}

/// The Intel VT-d Extended Capability Register (`ecap_reg` of `struct iommu_hw_info_vtd`),
/// decoded field by field. Bit positions as Linux's `drivers/iommu/intel/iommu.h` reads
/// them (its `ecap_*` macros); names are the VT-d specification's field abbreviations.
///
/// What iommufd users look for: Linux offers a nesting-parent HWPT
/// (`IOMMU_HWPT_ALLOC_NEST_PARENT`) only with SMTS and NEST, and IOMMU dirty tracking
/// (`IOMMU_HW_CAP_DIRTY_TRACKING`) only with SMTS, SLADS and SMPWC, and only when the
/// kernel runs the unit in scalable mode (`intel_iommu=sm_on` or the Kconfig default).
public struct VTDExtendedCapability: Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    private func bit(_ n: UInt64) -> Bool { (rawValue >> n) & 1 == 1 }

    /// C (bit 0): page-walk coherency.
    public var pageWalkCoherency: Bool { bit(0) }
    /// QI (bit 1): queued invalidation.
    public var queuedInvalidation: Bool { bit(1) }
    /// DT (bit 2): device TLBs (ATS).
    public var deviceTLB: Bool { bit(2) }
    /// IR (bit 3): interrupt remapping.
    public var interruptRemapping: Bool { bit(3) }
    /// EIM (bit 4): extended (x2APIC) interrupt mode.
    public var extendedInterruptMode: Bool { bit(4) }
    /// PT (bit 6): pass-through translation.
    public var passThrough: Bool { bit(6) }
    /// SC (bit 7): snoop control (`IOMMU_CAP_ENFORCE_CACHE_COHERENCY`).
    public var snoopControl: Bool { bit(7) }
    /// NEST (bit 26): nested translation (stage 1 over stage 2).
    public var nestedTranslation: Bool { bit(26) }
    /// PRS (bit 29): page requests (I/O page faults).
    public var pageRequests: Bool { bit(29) }
    /// PASID (bit 40): process address space ids.
    public var pasid: Bool { bit(40) }
    /// SMTS (bit 43): scalable-mode translation.
    public var scalableModeTranslation: Bool { bit(43) }
    /// SLADS (bit 45): second-level accessed/dirty bits (IOMMU dirty tracking).
    public var secondLevelAccessedDirty: Bool { bit(45) }
    /// SLTS (bit 46): second-level translation in scalable mode.
    public var secondLevelTranslation: Bool { bit(46) }
    /// FLTS (bit 47): first-level translation in scalable mode.
    public var firstLevelTranslation: Bool { bit(47) }
    /// SMPWC (bit 48): scalable-mode page-walk coherency.
    public var scalableModePageWalkCoherency: Bool { bit(48) }

    /// Whether Linux would offer `IOMMU_HWPT_ALLOC_NEST_PARENT` on this unit in scalable mode.
    public var allowsNestingParent: Bool { scalableModeTranslation && nestedTranslation }
    /// Whether Linux would offer IOMMU dirty tracking on this unit in scalable mode.
    public var allowsDirtyTracking: Bool { scalableModeTranslation && secondLevelAccessedDirty && scalableModePageWalkCoherency }

    /// The set bits among the fields above, by their specification names (`QI`, `IR`, ...).
    public var flagNames: [String] {
        [("C", pageWalkCoherency), ("QI", queuedInvalidation), ("DT", deviceTLB), ("IR", interruptRemapping),
         ("EIM", extendedInterruptMode), ("PT", passThrough), ("SC", snoopControl), ("NEST", nestedTranslation),
         ("PRS", pageRequests), ("PASID", pasid), ("SMTS", scalableModeTranslation), ("SLADS", secondLevelAccessedDirty),
         ("SLTS", secondLevelTranslation), ("FLTS", firstLevelTranslation), ("SMPWC", scalableModePageWalkCoherency)]
            .filter(\.1).map(\.0)
    }
}

extension IOMMUFDHWInfoVTD {
    /// `cap_reg`, decoded.
    public var capability: VTDCapability { VTDCapability(rawValue: capabilityRegister) }
    /// `ecap_reg`, decoded.
    public var extendedCapability: VTDExtendedCapability { VTDExtendedCapability(rawValue: extendedCapabilityRegister) }
}

/// What `IOMMU_GET_HW_INFO` reports for a bound device: the generic capabilities and the
/// IOMMU driver's own data, decoded where its type is known.
public struct IOMMUHardwareInfo: Sendable, Hashable {
    /// `out_data_type`.
    public var dataType: IOMMUFDHWInfoType
    /// `out_capabilities`.
    public var capabilities: IOMMUFDHWCapabilities
    /// The driver's data as the kernel wrote it (`data_len` bytes).
    public var data: [UInt8]
    /// `out_max_pasid_log2` (Linux 6.15, 6.12.y stable; 0 on 6.14 and without PASID).
    public var maxPASIDLog2: UInt8

    public init(dataType: IOMMUFDHWInfoType, capabilities: IOMMUFDHWCapabilities, data: [UInt8], maxPASIDLog2: UInt8 = 0) {
        self.dataType = dataType
        self.capabilities = capabilities
        self.data = data
        self.maxPASIDLog2 = maxPASIDLog2
    }

    /// The Intel VT-d registers, when `dataType` is `.intelVTD`.
    /// - Throws: `.malformed` when the data is shorter than `struct iommu_hw_info_vtd`.
    public func intelVTD() throws(VFIOError) -> IOMMUFDHWInfoVTD? {
        guard dataType == .intelVTD else { return nil }
        return try IOMMUFDHWInfoVTD(decoding: data)
    }

    /// The ARM SMMUv3 ID registers, when `dataType` is `.armSMMUv3`.
    public func armSMMUv3() throws(VFIOError) -> IOMMUFDHWInfoARMSMMUv3? {
        guard dataType == .armSMMUv3 else { return nil }
        return try IOMMUFDHWInfoARMSMMUv3(decoding: data)
    }
}
