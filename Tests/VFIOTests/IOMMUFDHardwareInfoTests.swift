import Testing
@testable import VFIO

/// The VT-d registers of `IOMMU_GET_HW_INFO` decoded, and the hw-info reply as the 6.12.y
/// kernel writes it.
@Suite struct IOMMUFDHardwareInfoTests {
    /// What QEMU 7.2's `intel-iommu,intremap=on,caching-mode=on` reports (read in the guest).
    static let qemuCap: UInt64 = 0x00d2_008c_2226_0286
    static let qemuECap: UInt64 = 0x0000_0000_00f0_0f4a

    @Test func capabilityRegisterFields() {
        let cap = VTDCapability(rawValue: Self.qemuCap)
        #expect(cap.domainCount == 1 << 16)  // ND 6
        #expect(cap.cachingMode && !cap.requiredWriteBufferFlushing)
        #expect(cap.supportedAdjustedGuestAddressWidths == 0b10 && cap.secondLevelAddressWidths == [39])
        #expect(cap.maximumGuestAddressWidth == 39)
        #expect(cap.secondLevelLargePageSupport == 0b11)  // 2 MiB and 1 GiB
        #expect(cap.pageSelectiveInvalidation && cap.writeDraining && cap.readDraining)
        #expect(cap.faultRecordingRegisters == 1 && cap.maximumAddressMaskValue == 18)
        #expect(!cap.zeroLengthRead && !cap.postedInterrupts && !cap.firstLevel1GiBPages && !cap.firstLevel5LevelPaging)
        #expect(cap.flagNames == ["CM", "PSI", "DWD", "DRD"])
    }

    @Test func extendedCapabilityRegisterFields() {
        let ecap = VTDExtendedCapability(rawValue: Self.qemuECap)
        #expect(ecap.flagNames == ["QI", "IR", "PT"])
        #expect(!ecap.allowsNestingParent && !ecap.allowsDirtyTracking)
        // One bit at a time: each named bit is where Linux's ecap_* macros read it.
        let bits: [(Int, KeyPath<VTDExtendedCapability, Bool>)] = [
            (0, \.pageWalkCoherency), (1, \.queuedInvalidation), (2, \.deviceTLB), (3, \.interruptRemapping),
            (4, \.extendedInterruptMode), (6, \.passThrough), (7, \.snoopControl), (26, \.nestedTranslation),
            (29, \.pageRequests), (40, \.pasid), (43, \.scalableModeTranslation), (45, \.secondLevelAccessedDirty),
            (46, \.secondLevelTranslation), (47, \.firstLevelTranslation), (48, \.scalableModePageWalkCoherency),
        ]
        for (bit, path) in bits {
            #expect(VTDExtendedCapability(rawValue: 1 << UInt64(bit))[keyPath: path], "bit \(bit)")
            #expect(!VTDExtendedCapability(rawValue: ~(1 << UInt64(bit)))[keyPath: path], "bit \(bit) clear")
        }
        // Nesting needs SMTS and NEST; dirty tracking SMTS, SLADS and SMPWC.
        #expect(VTDExtendedCapability(rawValue: 1 << 43 | 1 << 26).allowsNestingParent)
        #expect(!VTDExtendedCapability(rawValue: 1 << 26).allowsNestingParent)
        #expect(VTDExtendedCapability(rawValue: 1 << 43 | 1 << 45 | 1 << 48).allowsDirtyTracking)
        #expect(!VTDExtendedCapability(rawValue: 1 << 43 | 1 << 45).allowsDirtyTracking)
    }

    @Test func capabilityBitsOneAtATime() {
        let bits: [(Int, KeyPath<VTDCapability, Bool>)] = [
            (4, \.requiredWriteBufferFlushing), (7, \.cachingMode), (22, \.zeroLengthRead), (39, \.pageSelectiveInvalidation),
            (54, \.writeDraining), (55, \.readDraining), (56, \.firstLevel1GiBPages), (59, \.postedInterrupts), (60, \.firstLevel5LevelPaging),
        ]
        for (bit, path) in bits {
            #expect(VTDCapability(rawValue: 1 << UInt64(bit))[keyPath: path], "bit \(bit)")
            #expect(!VTDCapability(rawValue: ~(1 << UInt64(bit)))[keyPath: path], "bit \(bit) clear")
        }
        #expect(VTDCapability(rawValue: 0).maximumGuestAddressWidth == 1)
        #expect(VTDCapability(rawValue: 0x3f << 16).maximumGuestAddressWidth == 64)
        #expect(VTDCapability(rawValue: 0b1110 << 8).secondLevelAddressWidths == [39, 48, 57])
    }

    @Test func vtdDataDecodesFromTheKernelsBytes() throws {
        var bytes: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 0]
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: Self.qemuCap >> UInt64(shift))) }
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: Self.qemuECap >> UInt64(shift))) }
        let info = IOMMUHardwareInfo(dataType: .intelVTD, capabilities: [], data: bytes)
        let vtd = try #require(try info.intelVTD())
        #expect(vtd.flags == .errata772415SPR17)
        #expect(vtd.capability == VTDCapability(rawValue: Self.qemuCap))
        #expect(vtd.extendedCapability == VTDExtendedCapability(rawValue: Self.qemuECap))
        #expect(try info.armSMMUv3() == nil)
        #expect(try IOMMUHardwareInfo(dataType: .none, capabilities: [], data: []).intelVTD() == nil)
        #expect(throws: VFIOError.self) { _ = try IOMMUHardwareInfo(dataType: .intelVTD, capabilities: [], data: Array(bytes[0..<16])).intelVTD() }
    }

    /// Byte 28 is `__reserved` in 6.14 and `out_max_pasid_log2` in 6.15 and 6.12.y stable.
    @Test func hwInfoReplyCarriesMaxPASIDLog2AtByte28() throws {
        let encoded = IOMMUFDHWInfo(deviceID: 2, dataLength: 24, dataUptr: 0x1000, outDataType: .intelVTD,
                                    outCapabilities: [.dirtyTracking, .pciPASIDExec], outMaxPASIDLog2: 20).encoded()
        #expect(encoded.count == 40)
        #expect(Array(encoded[24..<32]) == [1, 0, 0, 0, 20, 0, 0, 0])
        #expect(Array(encoded[32..<40]) == [3, 0, 0, 0, 0, 0, 0, 0])
        let decoded = try IOMMUFDHWInfo(decoding: encoded)
        #expect(decoded.outMaxPASIDLog2 == 20 && decoded.outCapabilities == [.dirtyTracking, .pciPASIDExec])
    }
}
