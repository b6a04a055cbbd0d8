import Foundation
import Glibc
import Testing
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

/// iommufd beyond the IOAS against edu behind QEMU's emulated VT-d
/// (`intel-iommu,intremap=on,caching-mode=on`, legacy mode: no scalable mode, so no
/// nesting and no IOMMU dirty tracking) in the harness's 6.12 kernel: QEMU 7.2's edu
/// (`run.sh`) or the Swift model under QEMU 11.1 (`run-vfio-user.sh`). Skipped where the
/// kernel has no iommufd (Debian's 6.1).
@Suite(.serialized, .enabled(if: GuestEnvironment.enabled && GuestEnvironment.hasCdev,
                             "needs the guest harness's custom kernel (iommufd and the device cdev)"))
struct GuestIOMMUFDTests {
    /// Opens edu through its cdev (a new iommufd, attached to a new IOAS) and runs `body`.
    func withEdu<T>(_ body: (HostDevice, IOAS) async throws -> T) async throws -> T {
        try await withGuestDevice {
            let edu = try HostDevice.open(pciAddress: GuestEnvironment.edu, access: .iommufd)
            let ioas = try #require(try edu.dmaSpace() as? IOAS)
            return try await body(edu, ioas)
        }
    }

    /// Fills `count` bytes of `buffer` from `offset` with a pattern seeded by `seed`.
    func fill(_ buffer: DMABuffer, offset: Int = 0, count: Int, seed: UInt8) {
        for i in 0..<count { buffer.bytes[offset + i] = UInt8(truncatingIfNeeded: i &* 13 &+ Int(seed)) }
    }

    @Test func hardwareInfoDecodesQEMUsVTD() async throws {
        try await withEdu { edu, _ in
            let info = try edu.iommuHardwareInfo()
            #expect(info.dataType == .intelVTD)
            #expect(info.data.count == IOMMUFDHWInfoVTD.fixedSize)
            // Legacy-mode VT-d: no SLADS, so the kernel reports no dirty tracking.
            #expect(!info.capabilities.contains(.dirtyTracking))
            #expect(info.maxPASIDLog2 == 0)
            let vtd = try #require(try info.intelVTD())
            // 6.12's intel_iommu_hw_info() always sets the erratum flag.
            #expect(vtd.flags == .errata772415SPR17)
            // caching-mode=on and intremap=on as run.sh starts QEMU.
            #expect(vtd.capability.cachingMode)
            #expect(vtd.extendedCapability.interruptRemapping)
            #expect(vtd.extendedCapability.queuedInvalidation)
            #expect(!vtd.extendedCapability.scalableModeTranslation)
            #expect(!vtd.extendedCapability.allowsDirtyTracking && !vtd.extendedCapability.allowsNestingParent)
            // The default aw-bits: 39 in QEMU 7.2 (run.sh), 48 in QEMU 11.1 (run-vfio-user.sh).
            let qemu11 = ProcessInfo.processInfo.environment["SWIFT_VFIO_USER"] == "1"
            #expect(vtd.capability.maximumGuestAddressWidth == (qemu11 ? 48 : 39))
            #expect(vtd.capability.secondLevelAddressWidths == (qemu11 ? [39, 48] : [39]))
            print("GuestIOMMUFDTests: VT-d cap 0x\(String(vtd.capabilityRegister, radix: 16)) [\(vtd.capability.flagNames.joined(separator: " "))] MGAW \(vtd.capability.maximumGuestAddressWidth) SAGAW \(vtd.capability.secondLevelAddressWidths); ecap 0x\(String(vtd.extendedCapabilityRegister, radix: 16)) [\(vtd.extendedCapability.flagNames.joined(separator: " "))]")

            // A device id that is no bound device.
            let (iommufd, deviceID) = try edu.iommufdBinding("test")
            #expect(throws: VFIOError.errno("IOMMU_GET_HW_INFO", ENOENT)) { _ = try iommufd.hardwareInfo(deviceID: deviceID + 1000) }
        }
    }

    @Test func attachingAnIOASReportsTheDomainTheKernelMadeAndAHWPTReplacesIt() async throws {
        try await withEdu { edu, ioas in
            try edu.enableBusMaster()
            let (iommufd, _) = try edu.iommufdBinding("test")
            // The open attached edu to an IOAS: the kernel wrote back its auto domain's id.
            let autoDomain = try #require(edu.attachedPageTableID)
            #expect(autoDomain != ioas.id)

            let buffer = try DMABuffer(size: 8192)
            let iova = try edu.mapDMA(buffer, limit: Edu.dmaLimit)
            var hwpt: HWPT? = try edu.allocateHWPT()
            let hwptID = try #require(hwpt?.id)
            #expect(hwptID != ioas.id && hwptID != autoDomain)
            #expect(try edu.attach(try #require(hwpt)) == hwptID)
            #expect(edu.attachedPageTableID == hwptID)
            // While attached it is busy.
            #expect(throws: VFIOError.errno("IOMMU_DESTROY", EBUSY)) { try iommufd.destroy(hwptID) }

            // DMA through the HWPT sees the IOAS's mappings, including one made after.
            fill(buffer, count: 256, seed: 5)
            try edu.eduDMA(from: iova, to: Edu.buffer, count: 256, toRAM: false)
            try edu.eduDMA(from: Edu.buffer, to: iova + 4096, count: 256, toRAM: true)
            #expect(Array(buffer.bytes[4096..<4352]) == Array(buffer.bytes[0..<256]))
            let late = try DMABuffer(size: 4096)
            let lateIOVA = try edu.mapDMA(late, limit: Edu.dmaLimit)
            try edu.eduDMA(from: Edu.buffer, to: lateIOVA, count: 256, toRAM: true)
            #expect(Array(late.bytes[0..<256]) == Array(buffer.bytes[0..<256]))

            // Back to the IOAS: the kernel reports a domain again, not the HWPT.
            let again = try edu.attach(ioas)
            #expect(again != hwptID && again != ioas.id)
            #expect(edu.attachedPageTableID == again)
            // Released, the HWPT is destroyed: its id is gone.
            hwpt = nil
            #expect(throws: VFIOError.errno("IOMMU_DESTROY", ENOENT)) { try iommufd.destroy(hwptID) }
            try edu.eduDMA(from: iova, to: Edu.buffer, count: 64, toRAM: false)
            withExtendedLifetime(buffer) {}
        }
    }

    @Test func releasingADeviceAttachedToAHWPTDestroysTheHWPT() async throws {
        try await withGuestDevice {
            var edu: HostDevice? = try HostDevice.open(pciAddress: GuestEnvironment.edu, access: .iommufd)
            let (iommufd, _) = try #require(edu).iommufdBinding("test")
            let hwptID = try { () throws -> UInt32 in
                let hwpt = try #require(edu).allocateHWPT()
                return try #require(edu).attach(hwpt)
            }()
            // The device holds the HWPT; released, its descriptor closes before the HWPT goes.
            #expect(throws: VFIOError.errno("IOMMU_DESTROY", EBUSY)) { try iommufd.destroy(hwptID) }
            edu = nil
            #expect(throws: VFIOError.errno("IOMMU_DESTROY", ENOENT)) { try iommufd.destroy(hwptID) }
        }
    }

    @Test func replacingWithAHWPTOfAnotherIOASMovesTheDevicesDMA() async throws {
        try await withEdu { edu, ioas in
            try edu.enableBusMaster()
            let (iommufd, _) = try edu.iommufdBinding("test")
            let buffer = try DMABuffer(size: 4096)
            let iova = try ioas.map(buffer, limit: Edu.dmaLimit)
            let other = try iommufd.allocateIOAS()
            let hwpt = try edu.allocateHWPT(on: other)
            #expect(try edu.attach(hwpt) == hwpt.id)
            #expect(try edu.dmaSpace() === other)
            // edu's buffer loaded from memory mapped in the new IOAS only (edu's buffer is
            // reached by DMA alone).
            let source = try DMABuffer(size: 4096)
            fill(source, count: 64, seed: 11)
            let sourceIOVA: UInt64 = 0x10_0000, bufferIOVA: UInt64 = 0x20_0000
            #expect(iova != sourceIOVA && iova != bufferIOVA)
            try other.map(source, offset: 0, size: 4096, iova: sourceIOVA, access: .readWrite)
            try edu.eduDMA(from: sourceIOVA, to: Edu.buffer, count: 64, toRAM: false)
            // The first IOAS's mapping is no longer the device's: the DMA does not land.
            try edu.eduDMA(from: Edu.buffer, to: iova, count: 64, toRAM: true)
            #expect(buffer.bytes.allSatisfy { $0 == 0 }, "a DMA after the replace reached the old IOAS")
            // The same memory mapped in the new IOAS is reached.
            try other.map(buffer, offset: 0, size: 4096, iova: bufferIOVA, access: .readWrite)
            try edu.eduDMA(from: Edu.buffer, to: bufferIOVA, count: 64, toRAM: true)
            #expect(Array(buffer.bytes[0..<64]) == Array(source.bytes[0..<64]))
            try edu.detach()
            #expect(edu.attachedPageTableID == nil)
            #expect(throws: VFIOError.unsupported("DMA", "the device is attached to no IOAS")) { _ = try edu.dmaSpace() }
        }
    }

    @Test func hwptFlagsTheEmulatedVTDLacksAreRefusedByName() async throws {
        try await withEdu { edu, _ in
            #expect(throws: VFIOError.unsupported("IOMMU_HWPT_ALLOC", "the IOMMU lacks dirty tracking (IOMMU_HW_CAP_DIRTY_TRACKING is clear); the kernel answered EOPNOTSUPP")) {
                _ = try edu.allocateHWPT(flags: .dirtyTracking)
            }
            let vtd = try #require(try edu.iommuHardwareInfo().intelVTD())
            let names = vtd.extendedCapability.flagNames.joined(separator: " ")
            #expect(throws: VFIOError.unsupported("IOMMU_HWPT_ALLOC", "the IOMMU cannot be a nesting parent (VT-d ECAP needs SMTS and NEST; has: \(names)); the kernel answered EOPNOTSUPP")) {
                _ = try edu.allocateHWPT(flags: .nestParent)
            }
            #expect(throws: VFIOError.self) { _ = try edu.allocateHWPT(flags: .faultIDValid) }
        }
    }

    @Test func dirtyTrackingIsAnsweredAsMissingFromTheIOMMU() async throws {
        try await withEdu { edu, ioas in
            let buffer = try DMABuffer(size: 4 * 4096)
            let iova = try ioas.map(buffer, limit: Edu.dmaLimit)
            let hwpt = try edu.allocateHWPT()
            try edu.attach(hwpt)
            let refusal = "the IOMMU lacks dirty tracking (IOMMU_HW_CAP_DIRTY_TRACKING is clear); the kernel answered EOPNOTSUPP"
            #expect(throws: VFIOError.unsupported("IOMMU_HWPT_SET_DIRTY_TRACKING", refusal)) { try hwpt.setDirtyTracking(true) }
            #expect(throws: VFIOError.unsupported("IOMMU_HWPT_SET_DIRTY_TRACKING", refusal)) { try hwpt.setDirtyTracking(false) }
            #expect(throws: VFIOError.unsupported("IOMMU_HWPT_GET_DIRTY_BITMAP", refusal)) {
                _ = try hwpt.dirtyBitmap(iova: iova, length: 4 * 4096, pageSize: 4096)
            }
            // The kernel checks the range before the domain: a range off the IOMMU page size is EINVAL.
            #expect(throws: VFIOError.errno("IOMMU_HWPT_GET_DIRTY_BITMAP", EINVAL)) {
                _ = try hwpt.dirtyBitmap(iova: iova + 2048, length: 2048, pageSize: 2048)
            }
            try edu.attach(ioas)
        }
    }

    @Test func ioasCopyGivesASecondIOASTheSameMemoryForDMA() async throws {
        try await withEdu { edu, ioas in
            try edu.enableBusMaster()
            let (iommufd, _) = try edu.iommufdBinding("test")
            let buffer = try DMABuffer(size: 8192)
            let sourceIOVA = try ioas.map(buffer, limit: Edu.dmaLimit)
            let copy = try iommufd.allocateIOAS()
            let fixed: UInt64 = 0x20_0000
            #expect(try copy.copy(from: ioas, sourceIOVA: sourceIOVA, length: 8192, to: fixed) == fixed)
            // Where the kernel chooses: inside the valid ranges, not over the fixed copy.
            let chosen = try copy.copy(from: ioas, sourceIOVA: sourceIOVA, length: 4096)
            #expect(try copy.validIOVARanges().contains { $0.contains(chosen) })
            #expect(chosen + 4096 <= fixed || chosen >= fixed + 8192)
            try copy.unmap(iova: chosen, size: 4096)
            // An occupied fixed IOVA.
            #expect(throws: VFIOError.errno("IOMMU_IOAS_COPY", EEXIST)) {
                try copy.copy(from: ioas, sourceIOVA: sourceIOVA, length: 4096, to: fixed)
            }

            // edu moved to the copy's IOAS reads and writes the buffer through the copied mapping.
            try edu.attach(copy)
            fill(buffer, count: 512, seed: 9)
            try edu.eduDMA(from: fixed, to: Edu.buffer, count: 512, toRAM: false)
            try edu.eduDMA(from: Edu.buffer, to: fixed + 4096, count: 512, toRAM: true)
            #expect(Array(buffer.bytes[4096..<4608]) == Array(buffer.bytes[0..<512]))
            // The copy outlives the source mapping: the pages stay pinned for it.
            try ioas.unmap(iova: sourceIOVA, size: 8192)
            fill(buffer, count: 512, seed: 77)
            try edu.eduDMA(from: fixed, to: Edu.buffer, count: 512, toRAM: false)
            try edu.eduDMA(from: Edu.buffer, to: fixed + 4096, count: 512, toRAM: true)
            #expect(Array(buffer.bytes[4096..<4608]) == Array(buffer.bytes[0..<512]))
            // No mapping of the source covers that range any more.
            #expect(throws: VFIOError.self) { try copy.copy(from: ioas, sourceIOVA: sourceIOVA, length: 4096) }
        }
    }

    @Test func allowedIOVAsBoundKernelChosenMapsAndClashWithReservedRegions() async throws {
        try await withEdu { edu, ioas in
            let (iommufd, _) = try edu.iommufdBinding("test")
            let fresh = try iommufd.allocateIOAS()
            let window = try IOVARange(start: 0x10_0000, last: 0x10_ffff)
            try fresh.allowIOVAs([window])
            let big = try DMABuffer(size: 0x1_0000)
            #expect(try fresh.mapAtKernelChosenIOVA(big) == window.start)
            let small = try DMABuffer(size: 4096)
            // The window is full: the kernel finds no room.
            #expect(throws: VFIOError.errno("IOMMU_IOAS_MAP", ENOSPC)) { _ = try fresh.mapAtKernelChosenIOVA(small) }
            // Fixed IOVAs are not bound by the allowed ranges.
            try fresh.map(small, offset: 0, size: 4096, iova: 0x40_0000, access: .readWrite)
            // IOMMU_IOAS_IOVA_RANGES reports the holes between reserved regions, not the allowed list.
            #expect(try fresh.validIOVARanges() == [try IOVARange(start: 0, last: .max)])
            // An empty list allows everything again.
            try fresh.allowIOVAs([])
            let anywhere = try fresh.mapAtKernelChosenIOVA(small)
            #expect(!window.contains(anywhere))

            // edu's IOAS reserves VT-d's interrupt window: allowing it clashes.
            let msi = try IOVARange(start: 0xfee0_0000, last: 0xfeef_ffff)
            #expect(try !ioas.validIOVARanges().contains { $0.overlaps(msi) })
            #expect(throws: VFIOError.errno("IOMMU_IOAS_ALLOW_IOVAS", EADDRINUSE)) { try ioas.allowIOVAs([msi]) }
            // And a device whose reserved regions overlap an IOAS's allowed ranges cannot attach.
            let guarded = try iommufd.allocateIOAS()
            try guarded.allowIOVAs([try IOVARange(start: 0xfe00_0000, last: 0xfeff_ffff)])
            #expect(throws: VFIOError.errno("VFIO_DEVICE_ATTACH_IOMMUFD_PT", EADDRINUSE)) { try edu.attach(guarded) }
            #expect(try edu.dmaSpace() === ioas, "a refused replace keeps the old attachment")
        }
    }

    @Test func optionsRlimitModeAndHugePages() async throws {
        try await withEdu { edu, ioas in
            // RLIMIT_MODE is per iommufd and settable (as root) only while it holds no object.
            let fresh = try IOMMUFD()
            #expect(try fresh.rlimitMode() == .perUser)
            try fresh.setRlimitMode(.perProcess)
            #expect(try fresh.rlimitMode() == .perProcess)
            let space = try fresh.allocateIOAS()
            #expect(throws: VFIOError.errno("IOMMU_OPTION", EBUSY)) { try fresh.setRlimitMode(.perUser) }
            #expect(try fresh.rlimitMode() == .perProcess)

            // HUGE_PAGES per IOAS.
            #expect(try space.hugePages())
            try space.setHugePages(false)
            #expect(try !space.hugePages())
            try space.setHugePages(true)
            #expect(try space.hugePages())
            // Not off once a device's domain has memory mapped.
            let buffer = try DMABuffer(size: 4096)
            _ = try ioas.map(buffer, limit: Edu.dmaLimit)
            #expect(throws: VFIOError.errno("IOMMU_OPTION", EINVAL)) { try ioas.setHugePages(false) }
            #expect(try ioas.hugePages())
            // An IOAS id that does not exist.
            let (iommufd, _) = try edu.iommufdBinding("test")
            let stale = try iommufd.allocateIOAS()
            let staleID = stale.id
            try iommufd.destroy(staleID)
            #expect(throws: VFIOError.errno("IOMMU_OPTION", ENOENT)) {
                _ = try iommufd.option(IOMMUFDOption(option: .hugePages, operation: .get, objectID: staleID))
            }
        }
    }

    @Test func faultQueueAllocatesReadsEmptyAndIsDestroyedWhenReleased() async throws {
        try await withEdu { edu, _ in
            let (iommufd, _) = try edu.iommufdBinding("test")
            var queue: IOMMUFDFaultQueue? = try iommufd.allocateFaultQueue()
            let id = try #require(queue?.id)
            #expect(try #require(queue).descriptor.raw >= 0)
            #expect(try #require(queue).pendingFaults().isEmpty)
            // 6.12 takes a fault queue only on a nested HWPT: a paging one refuses the flag.
            #expect(throws: VFIOError.errno("IOMMU_HWPT_ALLOC", EOPNOTSUPP)) { _ = try edu.allocateHWPT(faultQueue: queue) }
            // Its open file keeps the object busy.
            #expect(throws: VFIOError.errno("IOMMU_DESTROY", EBUSY)) { try iommufd.destroy(id) }
            queue = nil
            #expect(throws: VFIOError.errno("IOMMU_DESTROY", ENOENT)) { try iommufd.destroy(id) }
        }
    }
}
