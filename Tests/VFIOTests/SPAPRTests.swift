import Testing
import VFIO
import CVFIO
import TestSupport

/// Decodes `bytes` as `T` and checks the failure is a `.malformed` error naming `cause`.
fileprivate func expectRejected<T: KernelStruct>(_ type: T.Type, _ bytes: [UInt8], _ cause: String,
                                                sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let value = try T(decoding: bytes)
        Issue.record("\(T.cName) accepted bad input as \(value)", sourceLocation: sourceLocation)
    } catch {
        guard case .malformed(let why) = error.reason else {
            Issue.record("\(T.cName): expected .malformed, got \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.operation == T.cName, sourceLocation: sourceLocation)
        #expect(why.contains(cause), "\"\(why)\" does not mention \"\(cause)\"", sourceLocation: sourceLocation)
    }
}

/// Overwrites the little-endian u32 at `offset`.
fileprivate func patched(_ bytes: [UInt8], _ offset: Int, _ value: UInt32) -> [UInt8] {
    var copy = bytes
    withUnsafeBytes(of: value.littleEndian) { for i in 0..<4 { copy[offset + i] = $0[i] } }
    return copy
}

@Suite struct SPAPRTCEInfoTests {
    let ddw = SPAPRTCEDDWInfo(pageSizes: 0x0100_1000 | 0x1_0000, maxDynamicWindows: 2, levels: 5)
    var info: SPAPRTCEInfo { SPAPRTCEInfo(flags: [.ddw], dma32WindowStart: 0x8000_0000, dma32WindowSize: 0x4000_0000, ddw: ddw) }

    @Test func roundTripsAndMatchesTheSystemHeader() throws {
        try expectRoundTrip(ddw)
        try expectRoundTrip(info)
        #expect(MemoryLayout<vfio_iommu_spapr_tce_ddw_info>.size == SPAPRTCEDDWInfo.fixedSize)
        #expect(MemoryLayout<vfio_iommu_spapr_tce_info>.size == SPAPRTCEInfo.fixedSize)
        let c = asCStruct(vfio_iommu_spapr_tce_info.self, info.encoded())
        #expect(c.argsz == 32 && c.flags == UInt32(VFIO_IOMMU_SPAPR_INFO_DDW))
        #expect(c.dma32_window_start == 0x8000_0000 && c.dma32_window_size == 0x4000_0000)
        #expect(c.ddw.pgsizes == ddw.pageSizes && c.ddw.max_dynamic_windows_supported == 2 && c.ddw.levels == 5)
    }

    @Test func acceptsThePreDDWArgsz() throws {
        let old = Array(patched(info.encoded(), 0, 16).prefix(16))
        let decoded = try SPAPRTCEInfo(decoding: old)
        #expect(decoded.dma32WindowSize == 0x4000_0000)
        #expect(decoded.ddw == SPAPRTCEDDWInfo(pageSizes: 0, maxDynamicWindows: 0, levels: 0))
    }

    @Test func rejectsArgszBelowTheKernelMinimum() {
        expectRejected(SPAPRTCEInfo.self, patched(info.encoded(), 0, 12), "argsz 12")
    }
}

@Suite struct SPAPREEHTests {
    let error = EEHPEError(type: 1, function: 7, address: 0x2_0000_1000, mask: 0xffff_ffff_ffff_f000)

    @Test func roundTripsEveryOperation() throws {
        try expectRoundTrip(error)
        let all: [EEHPEOperation.Operation] = [.disable, .enable, .unfreezeIO, .unfreezeDMA, .getState, .resetDeactivate,
                                                .resetHot, .resetFundamental, .configure, .injectError(error)]
        for (index, op) in all.enumerated() {
            #expect(op.rawValue == UInt32(index))
            try expectRoundTrip(EEHPEOperation(op))
        }
    }

    @Test func constantsMatchTheSystemHeader() {
        let ops: [(EEHPEOperation.Operation, Int32)] = [
            (.disable, VFIO_EEH_PE_DISABLE), (.enable, VFIO_EEH_PE_ENABLE), (.unfreezeIO, VFIO_EEH_PE_UNFREEZE_IO),
            (.unfreezeDMA, VFIO_EEH_PE_UNFREEZE_DMA), (.getState, VFIO_EEH_PE_GET_STATE),
            (.resetDeactivate, VFIO_EEH_PE_RESET_DEACTIVATE), (.resetHot, VFIO_EEH_PE_RESET_HOT),
            (.resetFundamental, VFIO_EEH_PE_RESET_FUNDAMENTAL), (.configure, VFIO_EEH_PE_CONFIGURE),
            (.injectError(error), VFIO_EEH_PE_INJECT_ERR),
        ]
        for (op, c) in ops { #expect(op.rawValue == UInt32(c)) }
        let states: [(EEHPEState, Int32)] = [
            (.normal, VFIO_EEH_PE_STATE_NORMAL), (.reset, VFIO_EEH_PE_STATE_RESET), (.stopped, VFIO_EEH_PE_STATE_STOPPED),
            (.stoppedDMA, VFIO_EEH_PE_STATE_STOPPED_DMA), (.unavailable, VFIO_EEH_PE_STATE_UNAVAIL),
        ]
        for (state, c) in states { #expect(state.rawValue == UInt32(c)) }
    }

    @Test func layoutMatchesTheSystemHeader() {
        #expect(MemoryLayout<vfio_eeh_pe_err>.size == EEHPEError.fixedSize)
        #expect(MemoryLayout<vfio_eeh_pe_op>.size == EEHPEOperation.fixedSize)
        let e = asCStruct(vfio_eeh_pe_err.self, error.encoded())
        #expect(e.type == 1 && e.func == 7 && e.addr == error.address && e.mask == error.mask)
        let c = asCStruct(vfio_eeh_pe_op.self, EEHPEOperation(.injectError(error)).encoded())
        #expect(c.argsz == 40 && c.flags == 0 && c.op == UInt32(VFIO_EEH_PE_INJECT_ERR))
        #expect(c.err.type == 1 && c.err.func == 7 && c.err.addr == error.address && c.err.mask == error.mask)
    }

    @Test func acceptsTheShortFormForOperationsWithoutData() throws {
        let short: [UInt8] = [12, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]
        #expect(try EEHPEOperation(decoding: short) == EEHPEOperation(.getState))
    }

    @Test func rejectsBadInput() {
        let full = EEHPEOperation(.enable).encoded()
        expectRejected(EEHPEOperation.self, patched(full, 8, 10), "op 10")
        expectRejected(EEHPEOperation.self, patched(full, 4, 1), "flags 0x1 must be 0")
        expectRejected(EEHPEOperation.self, patched(full, 0, 8), "argsz 8")
        let shortInject: [UInt8] = [12, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0]
        expectRejected(EEHPEOperation.self, shortInject, "VFIO_EEH_PE_INJECT_ERR needs argsz")
    }
}

@Suite struct SPAPRMemoryAndWindowTests {
    let register = SPAPRRegisterMemory(vaddr: 0x7fff_8000_0000, size: 0x4000_0000)
    let create = SPAPRTCECreate(pageShift: 16, windowSize: 0x10_0000_0000, levels: 2, startAddress: 0x0800_0000_0000_0000)
    let remove = SPAPRTCERemove(startAddress: 0x0800_0000_0000_0000)

    @Test func roundTrip() throws {
        try expectRoundTrip(register)
        try expectRoundTrip(create)
        try expectRoundTrip(remove)
    }

    @Test func layoutsMatchTheSystemHeader() {
        #expect(MemoryLayout<vfio_iommu_spapr_register_memory>.size == SPAPRRegisterMemory.fixedSize)
        #expect(MemoryLayout<vfio_iommu_spapr_tce_create>.size == SPAPRTCECreate.fixedSize)
        #expect(MemoryLayout<vfio_iommu_spapr_tce_remove>.size == SPAPRTCERemove.fixedSize)
        let r = asCStruct(vfio_iommu_spapr_register_memory.self, register.encoded())
        #expect(r.argsz == 24 && r.flags == 0 && r.vaddr == register.vaddr && r.size == register.size)
        let c = asCStruct(vfio_iommu_spapr_tce_create.self, create.encoded())
        #expect(c.argsz == 40 && c.flags == 0 && c.page_shift == 16 && c.__resv1 == 0)
        #expect(c.window_size == create.windowSize && c.levels == 2 && c.__resv2 == 0 && c.start_addr == create.startAddress)
        let m = asCStruct(vfio_iommu_spapr_tce_remove.self, remove.encoded())
        #expect(m.argsz == 16 && m.flags == 0 && m.start_addr == remove.startAddress)
    }

    @Test func rejectNonZeroFlagsAndSmallArgsz() {
        expectRejected(SPAPRRegisterMemory.self, patched(register.encoded(), 4, 2), "flags 0x2 must be 0")
        expectRejected(SPAPRTCECreate.self, patched(create.encoded(), 4, 1), "flags 0x1 must be 0")
        expectRejected(SPAPRTCERemove.self, patched(remove.encoded(), 4, 4), "flags 0x4 must be 0")
        expectRejected(SPAPRRegisterMemory.self, patched(register.encoded(), 0, 16), "argsz 16")
        expectRejected(SPAPRTCECreate.self, patched(create.encoded(), 0, 32), "argsz 32")
        expectRejected(SPAPRTCERemove.self, patched(remove.encoded(), 0, 8), "argsz 8")
    }
}
