import Testing
import VFIO
import VFIODeviceKit

private func sample(size: PCIConfigSpace.Size = .extended) -> PCIConfigSpace {
    PCIConfigSpace(identity: .init(vendorID: 0x1af4, deviceID: 0x1234, revision: 0x07, classCode: 0x02_8000,
                                   subsystemVendorID: 0x1af4, subsystemID: 0x0042, interruptPin: 1),
                   size: size)
}

@Suite struct KitConfigSpaceHeaderTests {
    @Test func headerValues() {
        let c = sample()
        #expect(c.get(0x00, 2) == 0x1af4)
        #expect(c.get(0x02, 2) == 0x1234)
        #expect(c.get(0x00, 4) == 0x1234_1af4)
        #expect(c.get(0x08, 1) == 0x07)
        #expect(c.get(0x09, 1) == 0x00)  // prog if
        #expect(c.get(0x0A, 1) == 0x80)  // subclass
        #expect(c.get(0x0B, 1) == 0x02)  // base class
        #expect(c.get(0x08, 4) == 0x0280_0007)
        #expect(c.get(0x2C, 2) == 0x1af4)
        #expect(c.get(0x2E, 2) == 0x0042)
        #expect(c.get(0x3D, 1) == 1)
        #expect(c.get(0x0E, 1) == 0)  // header type 0
        #expect(c.get(0x04, 2) == 0)
        #expect(c.get(0x06, 2) == 0)  // no capabilities yet
        #expect(c.get(0x34, 1) == 0)
        #expect(c.size.rawValue == 4096)
        #expect(sample(size: .conventional).size.rawValue == 256)
    }

    @Test func readOnlyBitsStay() {
        var c = sample()
        c.set(0x00, 4, 0xFFFF_FFFF)
        c.set(0x08, 4, 0xFFFF_FFFF)
        c.set(0x2C, 4, 0)
        c.set(0x3D, 1, 4)
        c.set(0x0E, 1, 0x80)
        #expect(c.get(0x00, 4) == 0x1234_1af4)
        #expect(c.get(0x08, 4) == 0x0280_0007)
        #expect(c.get(0x2C, 4) == 0x0042_1af4)
        #expect(c.get(0x3D, 1) == 1)
        #expect(c.get(0x0E, 1) == 0)
        // Command: only the implemented bits.
        c.set(0x04, 2, 0xFFFF)
        #expect(c.get(0x04, 2) == 0x0547)
        #expect(c.busMasterEnabled && c.memorySpaceEnabled && c.interruptDisabled)
        // Interrupt line and cache line size are writable.
        c.set(0x3C, 1, 0x0B)
        c.set(0x0C, 1, 0x10)
        #expect(c.get(0x3C, 1) == 0x0B && c.get(0x0C, 1) == 0x10)
        // The extended area reads 0 (no extended capabilities) and ignores writes.
        c.set(0x100, 4, 0xFFFF_FFFF)
        #expect(c.get(0x100, 4) == 0)
    }

    @Test func unalignedAndCrossRegisterAccesses() {
        var c = sample()
        // A 4-byte read at 0x01 takes the vendor high byte, the device id and the low byte of Command.
        #expect(c.get(0x01, 4) == 0x0012_341a)
        // A 4-byte write at 0x03 touches device id (RO) high byte and Command's three bytes.
        c.set(0x03, 4, 0x00_0004_FF)  // byte 0x04 = 0x04 (bus master), 0x05 = 0x00, 0x06 = 0x00
        #expect(c.get(0x02, 2) == 0x1234)
        #expect(c.busMasterEnabled)
        // Single byte of the upper half of Command.
        c.set(0x05, 1, 0x04)
        #expect(c.interruptDisabled)
    }

    @Test func outOfRangeAccessesFail() {
        let c = sample(size: .conventional)
        var bytes = [UInt8](repeating: 0, count: 4)
        bytes.withUnsafeMutableBytes { raw in
            #expect(throws: VFIOError.errno("config read", DeviceErrno.EINVAL)) { try c.read(offset: 0xFE, into: raw) }
            #expect(throws: VFIOError.errno("config read", DeviceErrno.EINVAL)) { try c.read(offset: 0x100, into: raw) }
        }
    }

    @Test func statusErrorBitsAreWriteOneToClear() {
        var c = sample()
        c.addPowerManagement()
        // RW1C of a bit that is 0 stays 0; the capability list bit stays set.
        c.set(0x06, 2, 0xFFFF)
        #expect(c.get(0x06, 2) == 0x0010)
    }
}

@Suite struct KitConfigSpaceBARTests {
    @Test func memory32Sizing() {
        var c = sample()
        c.setBAR(0, .memory32(size: 1 << 20))
        #expect(c.get(0x10, 4) == 0)
        c.set(0x10, 4, 0xFFFF_FFFF)
        #expect(c.get(0x10, 4) == 0xFFF0_0000)
        c.set(0x10, 4, 0xFEB0_1234)
        #expect(c.get(0x10, 4) == 0xFEB0_0000)
        #expect(c.barAddress(0) == 0xFEB0_0000)
    }

    @Test func memory32Prefetchable() {
        var c = sample()
        c.setBAR(1, .memory32(size: 0x4000, prefetchable: true))
        #expect(c.get(0x14, 4) == 0x8)
        c.set(0x14, 4, 0xFFFF_FFFF)
        #expect(c.get(0x14, 4) == 0xFFFF_C008)
    }

    @Test func memory64Sizing() {
        var c = sample()
        c.setBAR(2, .memory64(size: 1 << 33, prefetchable: true))
        #expect(c.get(0x18, 4) == 0xC)
        c.set(0x18, 4, 0xFFFF_FFFF)
        c.set(0x1C, 4, 0xFFFF_FFFF)
        #expect(c.get(0x18, 4) == 0x0000_000C)  // low register holds no size bits above 4 GiB
        #expect(c.get(0x1C, 4) == 0xFFFF_FFFE)
        c.set(0x18, 4, 0)
        c.set(0x1C, 4, 0x0000_0004)
        #expect(c.barAddress(2) == 0x4_0000_0000)

        var d = sample()
        d.setBAR(0, .memory64(size: 0x10000))
        d.set(0x10, 4, 0xFFFF_FFFF)
        d.set(0x14, 4, 0xFFFF_FFFF)
        #expect(d.get(0x10, 4) == 0xFFFF_0004)
        #expect(d.get(0x14, 4) == 0xFFFF_FFFF)
        // Size = ~(mask) + 1 over both registers.
        let mask = (d.get(0x14, 4) << 32) | (d.get(0x10, 4) & ~0xF)
        #expect(~mask &+ 1 == 0x10000)
    }

    @Test func ioSizing() {
        var c = sample()
        c.setBAR(4, .io(size: 32))
        #expect(c.get(0x20, 4) == 0x1)
        c.set(0x20, 4, 0xFFFF_FFFF)
        #expect(c.get(0x20, 4) == 0xFFFF_FFE1)
        c.set(0x20, 4, 0xC040)
        #expect(c.barAddress(4) == 0xC040)
    }

    @Test func absentBARsReadZero() {
        var c = sample()
        c.setBAR(0, .memory32(size: 4096))
        c.set(0x14, 4, 0xFFFF_FFFF)
        c.set(0x30, 4, 0xFFFF_FFFF)  // no expansion ROM
        #expect(c.get(0x14, 4) == 0)
        #expect(c.get(0x30, 4) == 0)
    }

    @Test func byteWiseSizing() {
        var c = sample()
        c.setBAR(0, .memory32(size: 1 << 16))
        for k in 0..<4 { c.set(0x10 + k, 1, 0xFF) }
        #expect(c.get(0x10, 4) == 0xFFFF_0000)
    }

    @Test func resetRestoresBARs() {
        var c = sample()
        c.setBAR(0, .memory32(size: 1 << 16))
        c.set(0x10, 4, 0xFFFF_FFFF)
        c.set(0x04, 2, 0x6)
        c.reset()
        #expect(c.get(0x10, 4) == 0 && c.get(0x04, 2) == 0)
    }
}

@Suite struct KitConfigSpaceCapabilityTests {
    @Test func capabilityListWalk() {
        var c = sample()
        c.setBAR(0, .memory32(size: 0x4000))
        let pm = c.addPowerManagement()
        let msiOffset = c.addMSI(vectors: 4, perVectorMasking: true)
        let msixOffset = c.addMSIX(vectors: 16, tableBAR: 0, tableOffset: 0x2000, pbaBAR: 0, pbaOffset: 0x3000)
        let pcie = c.addPCIExpress()
        #expect(c.get(0x06, 2) & 0x10 != 0)
        var walk: [(UInt8, Int)] = []
        var next = Int(c.get(0x34, 1))
        var guardCount = 0
        while next != 0 && guardCount < 48 {
            #expect(next % 4 == 0 && next >= 0x40)
            walk.append((UInt8(c.get(next, 1)), next))
            next = Int(c.get(next + 1, 1))
            guardCount += 1
        }
        #expect(walk.map(\.0) == [0x01, 0x05, 0x11, 0x10])
        #expect(walk.map(\.1) == [pm, msiOffset, msixOffset, pcie])
        // PM: version 3, D0.
        #expect(c.get(pm + 2, 2) & 7 == 3)
        // MSI: 64-bit, per-vector masking, MMC = log2(4) = 2.
        let control = c.get(msiOffset + 2, 2)
        #expect(control & 0x80 != 0 && control & 0x100 != 0 && (control >> 1) & 7 == 2)
        // MSI-X: table size 15 (N-1), table and PBA at BAR0.
        #expect(c.get(msixOffset + 2, 2) == 15)
        #expect(c.get(msixOffset + 4, 4) == 0x2000)
        #expect(c.get(msixOffset + 8, 4) == 0x3000)
        // PCIe: version 2, endpoint.
        #expect(c.get(pcie + 2, 2) == 0x0002)
        #expect(c.get(pcie + 0x12, 2) == 0x0011)  // link status 2.5 GT/s x1
    }

    @Test func powerStateRefusesD1D2() {
        var c = sample()
        let pm = c.addPowerManagement()
        c.set(pm + 4, 2, 3)
        #expect(c.get(pm + 4, 2) & 3 == 3)
        c.set(pm + 4, 2, 1)
        #expect(c.get(pm + 4, 2) & 3 == 3)
        c.set(pm + 4, 2, 0)
        #expect(c.get(pm + 4, 2) & 3 == 0)
    }

    @Test func msiRegistersAndMultipleMessageEnable() {
        var c = sample()
        let o = c.addMSI(vectors: 4, perVectorMasking: true)
        c.set(o + 4, 4, 0xFEE0_1003)
        #expect(c.get(o + 4, 4) == 0xFEE0_1000)  // bits 1:0 read 0
        c.set(o + 8, 4, 0x1)
        c.set(o + 12, 2, 0x4041)
        #expect(c.get(o + 8, 4) == 1 && c.get(o + 12, 2) == 0x4041)
        c.set(o + 2, 2, 0x0071)  // enable, MME = 7 (too many): clamped to MMC 2
        #expect((c.get(o + 2, 2) >> 4) & 7 == 2)
        #expect(c.msiEnableBit)
        c.set(o + 16, 4, 0xFFFF_FFFF)
        #expect(c.get(o + 16, 4) == 0xF)  // 4 vectors
        c.set(o + 20, 4, 0xFFFF_FFFF)
        #expect(c.get(o + 20, 4) == 0)  // pending bits are read-only
    }
}

@Suite struct KitConfigSpaceInterruptTests {
    @Test func intxStatusAndDisable() {
        var c = sample()
        #expect(c.clientConfiguredIRQs(index: intx, enabledVectors: 1).isEmpty)
        #expect(c.assertINTx() == [IRQSignal(index: intx, vector: 0)])
        #expect(c.get(0x06, 2) & 0x8 != 0)
        // Level: asserting again signals nothing new.
        #expect(c.assertINTx().isEmpty)
        c.deassertINTx()
        #expect(c.get(0x06, 2) & 0x8 == 0)
        // Unmask (after the automask) with the line low: nothing.
        #expect(c.clientMaskChanged(index: intx, vector: 0, masked: false).isEmpty)

        // Interrupt Disable: status bit still set, no signal; clearing the bit signals.
        c.set(0x04, 2, 0x0400)
        #expect(c.assertINTx().isEmpty)
        #expect(c.get(0x06, 2) & 0x8 != 0)
        #expect(c.set(0x04, 2, 0x0000) == [IRQSignal(index: intx, vector: 0)])
        // Automasked now: a re-assert after deassert does not signal until unmask.
        c.deassertINTx()
        #expect(c.assertINTx().isEmpty)
        #expect(c.clientMaskChanged(index: intx, vector: 0, masked: false) == [IRQSignal(index: intx, vector: 0)])
    }

    @Test func intxBeforeClientEnablesIt() {
        var c = sample()
        #expect(c.assertINTx().isEmpty)
        #expect(c.status.contains(.interruptStatus))
        #expect(c.clientConfiguredIRQs(index: intx, enabledVectors: 1) == [IRQSignal(index: intx, vector: 0)])
    }

    @Test func noPinNoINTx() {
        var c = PCIConfigSpace(identity: .init(vendorID: 1, deviceID: 2, revision: 0, classCode: 0, interruptPin: 0))
        _ = c.clientConfiguredIRQs(index: intx, enabledVectors: 1)
        #expect(c.assertINTx().isEmpty)
        #expect(!c.status.contains(.interruptStatus))
    }

    @Test func msiMaskingAndPending() {
        var c = sample()
        let o = c.addMSI(vectors: 4, perVectorMasking: true)
        c.set(0x04, 2, 0x4)  // bus master
        _ = c.clientConfiguredIRQs(index: msi, enabledVectors: 4)
        #expect(c.raise(vector: 2) == [IRQSignal(index: msi, vector: 2)])
        c.set(o + 16, 4, 0b0100)  // mask vector 2
        #expect(c.raise(vector: 2).isEmpty)
        #expect(c.msiPending(2))
        #expect(c.get(o + 20, 4) == 0b0100)
        #expect(c.raise(vector: 1) == [IRQSignal(index: msi, vector: 1)])
        // Unmasking delivers the pending vector once.
        #expect(c.set(o + 16, 4, 0) == [IRQSignal(index: msi, vector: 2)])
        #expect(!c.msiPending(2))
        #expect(c.get(o + 20, 4) == 0)
        // A vector beyond the capability is ignored.
        #expect(c.raise(vector: 4).isEmpty)
    }

    @Test func msiNeedsBusMaster() {
        var c = sample()
        c.addMSI(vectors: 1, perVectorMasking: false)
        _ = c.clientConfiguredIRQs(index: msi, enabledVectors: 1)
        #expect(c.raise(vector: 0).isEmpty)
        #expect(c.droppedMessages == 1)
        c.set(0x04, 2, 0x4)
        #expect(c.raise(vector: 0) == [IRQSignal(index: msi, vector: 0)])
        // Without MSI enabled by the client, raise asserts INTx instead.
        _ = c.clientConfiguredIRQs(index: msi, enabledVectors: 0)
        _ = c.clientConfiguredIRQs(index: intx, enabledVectors: 1)
        #expect(c.raise(vector: 0) == [IRQSignal(index: intx, vector: 0)])
    }

    @Test func msixMaskingAndPending() {
        var c = sample()
        c.setBAR(0, .memory32(size: 0x4000))
        let o = c.addMSIX(vectors: 4, tableBAR: 0, tableOffset: 0x2000, pbaBAR: 0, pbaOffset: 0x3000)
        c.set(0x04, 2, 0x6)
        _ = c.clientConfiguredIRQs(index: msix, enabledVectors: 4)
        #expect(c.raise(vector: 3) == [IRQSignal(index: msix, vector: 3)])

        // Per-vector mask in the table: vector 1's Vector Control at 0x2000 + 16 + 12.
        c.setMSIX(bar: 0, 0x2000 + 16 + 12, 4, 0xFFFF_FFFF)
        #expect(c.getMSIX(bar: 0, 0x2000 + 16 + 12, 4) == 1)  // only the mask bit is writable
        #expect(c.msixVectorMasked(1))
        #expect(c.raise(vector: 1).isEmpty)
        #expect(c.msixPending(1))
        #expect(c.getMSIX(bar: 0, 0x3000, 8) == 0b10)
        c.setMSIX(bar: 0, 0x3000, 8, 0)  // the PBA is read-only
        #expect(c.getMSIX(bar: 0, 0x3000, 8) == 0b10)
        #expect(c.setMSIX(bar: 0, 0x2000 + 16 + 12, 4, 0) == [IRQSignal(index: msix, vector: 1)])
        #expect(c.getMSIX(bar: 0, 0x3000, 8) == 0)

        // Function mask: everything pends, clearing it delivers the pending vectors.
        c.set(o + 2, 2, 0xC000)
        #expect(c.msixEnableBit && c.msixFunctionMasked)
        #expect(c.raise(vector: 0).isEmpty && c.raise(vector: 2).isEmpty)
        #expect(c.msixPending(0) && c.msixPending(2))
        #expect(c.set(o + 2, 2, 0x8000) == [IRQSignal(index: msix, vector: 0), IRQSignal(index: msix, vector: 2)])
        #expect(!c.msixPending(0) && !c.msixPending(2))

        // Table entries keep address and data.
        c.setMSIX(bar: 0, 0x2000, 8, 0x0000_0001_FEE0_0000)
        c.setMSIX(bar: 0, 0x2008, 4, 0x4021)
        #expect(c.getMSIX(bar: 0, 0x2000, 8) == 0x0000_0001_FEE0_0000)
        #expect(c.getMSIX(bar: 0, 0x2008, 4) == 0x4021)
        #expect(c.isMSIXAccess(bar: 0, offset: 0x2000, count: 4))
        #expect(!c.isMSIXAccess(bar: 0, offset: 0x1FFC, count: 8))
        #expect(!c.isMSIXAccess(bar: 1, offset: 0x2000, count: 4))
    }

    @Test func msixMaskedAtResetOption() {
        var c = sample()
        c.setBAR(0, .memory32(size: 0x4000))
        c.addMSIX(vectors: 2, tableBAR: 0, tableOffset: 0, pbaBAR: 0, pbaOffset: 0x800, msixVectorsMaskedAtReset: true)
        c.set(0x04, 2, 0x4)
        _ = c.clientConfiguredIRQs(index: msix, enabledVectors: 2)
        #expect(c.msixVectorMasked(0))
        #expect(c.raise(vector: 0).isEmpty)
        #expect(c.setMSIX(bar: 0, 12, 4, 0) == [IRQSignal(index: msix, vector: 0)])
        c.reset()
        #expect(c.msixVectorMasked(0) && !c.msixPending(0))
    }
}

@Suite struct KitConfigSpaceClientIRQTests {
    @Test func errAndReqDoNotChangeTheInterruptMode() {
        var c = sample()
        c.addMSI(vectors: 1, perVectorMasking: false)
        c.set(0x04, 2, 0x4)
        // QEMU's order: INTx eventfd, ERR eventfd.
        _ = c.clientConfiguredIRQs(index: intx, enabledVectors: 1)
        _ = c.clientConfiguredIRQs(index: PCIIRQIndex.err.rawValue, enabledVectors: 1)
        #expect(c.activeIRQIndex == intx)
        #expect(c.raise(vector: 0) == [IRQSignal(index: intx, vector: 0)])
        c.lower()
        // Switching to MSI: INTx disabled with count 0, MSI enabled.
        _ = c.clientConfiguredIRQs(index: intx, enabledVectors: 0)
        _ = c.clientConfiguredIRQs(index: msi, enabledVectors: 1)
        #expect(c.activeIRQIndex == msi)
        #expect(c.raise(vector: 0) == [IRQSignal(index: msi, vector: 0)])
        _ = c.clientConfiguredIRQs(index: msi, enabledVectors: 0)
        #expect(c.activeIRQIndex == nil)
    }
}
