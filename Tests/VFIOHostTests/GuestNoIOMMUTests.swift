import Foundation
import Glibc
import Synchronization
import Testing
import CVFIO
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

/// VFIO's no-IOMMU mode against the harness's 6.12 kernel booted without an IOMMU and
/// with `vfio.enable_unsafe_noiommu_mode=1` (`run.sh --kernel custom --no-iommu`): edu
/// is in a no-IOMMU group and DMAs to physical addresses. Enabled only in that guest
/// (`SWIFT_VFIO_NOIOMMU=1`, which the harness sets there and nowhere else); in it every
/// other guest suite is disabled.
@Suite(.serialized, .enabled(if: GuestEnvironment.noIOMMU, "runs in the no-IOMMU guest (Tests/Guest/run.sh --kernel custom --no-iommu)"))
struct GuestNoIOMMUTests {
    /// edu's IOMMU group number (a no-IOMMU group's number, from sysfs).
    func eduGroup() throws -> Int {
        try #require(try Sysfs().pciDevice(GuestEnvironment.edu).iommuGroup)
    }

    @Test func theKernelIsInNoIOMMUModeTaintedAndEduIsInANoIOMMUGroup() throws {
        #expect(NoIOMMU.isEnabled())
        let group = try eduGroup()
        #expect(GuestEnvironment.eduNoIOMMUGroups.first == "/dev/vfio/noiommu-\(group)")
        #expect(NoIOMMU.isNoIOMMUGroup(group))
        #expect(access("/dev/vfio/\(group)", F_OK) != 0, "a no-IOMMU group has no /dev/vfio/N")
        let name = try String(contentsOfFile: "/sys/kernel/iommu_groups/\(group)/name", encoding: .utf8)
        #expect(name.trimmingCharacters(in: .whitespacesAndNewlines) == "vfio-noiommu")
        // TAINT_USER (bit 6) was set when vfio-pci made the no-IOMMU group.
        let tainted = try String(contentsOfFile: "/proc/sys/kernel/tainted", encoding: .utf8)
        #expect((UInt64(tainted.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) & (1 << 6) != 0)
    }

    @Test func aNoIOMMUContainerMapsNothingAndNeverAsksTheKernelTo() async throws {
        try await withGuestDevice {
            let requests = Mutex<[UInt]>([])
            var system = HostSystem.live
            let live = HostSystem.live
            system.ioctlPointer = { fd, request, argument in
                requests.withLock { $0.append(request) }
                return live.ioctlPointer(fd, request, argument)
            }
            let number = try eduGroup()
            let container = try VFIOContainer(system: system, model: .noIOMMU)
            #expect(try container.checkExtension(.noIOMMU))
            let group = try container.group(number)
            #expect(group.isNoIOMMU)
            #expect(try group.status().flags.contains([.viable, .containerSet]))
            // Only the no-IOMMU backend answers now.
            #expect(try container.checkExtension(.noIOMMU))
            #expect(try !container.checkExtension(.type1v2))

            let buffer = try DMABuffer(size: 4096)
            let refusals: [(String, () throws -> Void)] = [
                ("VFIO_IOMMU_MAP_DMA", { try container.map(buffer, offset: 0, size: 4096, iova: 0x10_0000, access: .readWrite) }),
                ("VFIO_IOMMU_MAP_DMA", { _ = try container.map(buffer, offset: 0, size: 4096, access: .readWrite, alignment: 4096, limit: .max) }),
                ("VFIO_IOMMU_UNMAP_DMA", { try container.unmap(iova: 0x10_0000, size: 4096) }),
                ("VFIO_IOMMU_UNMAP_DMA", { try container.unmapAll() }),
                ("VFIO_IOMMU_GET_INFO", { _ = try container.validIOVARanges() }),
                ("VFIO_IOMMU_DIRTY_PAGES", { try container.startDirtyTracking() }),
                ("VFIO_IOMMU_DIRTY_PAGES", { _ = try container.dirtyBitmap(iova: 0x10_0000, size: 4096) }),
            ]
            for (operation, call) in refusals {
                do {
                    try call()
                    Issue.record("\(operation) succeeded on a no-IOMMU container")
                } catch let error as VFIOError {
                    #expect(error.operation == operation)
                    if case .unsupported(let why) = error.reason {
                        #expect(why.contains("no-IOMMU mode (VFIO_NOIOMMU_IOMMU)"), "\(why)")
                    } else {
                        Issue.record("\(operation): \(error)")
                    }
                } catch {
                    Issue.record("\(operation): \(error)")
                }
            }
            let type1 = [CVFIO_VFIO_IOMMU_MAP_DMA, CVFIO_VFIO_IOMMU_UNMAP_DMA, CVFIO_VFIO_IOMMU_GET_INFO, CVFIO_VFIO_IOMMU_DIRTY_PAGES]
            #expect(requests.withLock { $0 }.filter { type1.contains($0) } == [], "a type1 ioctl reached the kernel")

            // A device of the group is open: EBUSY; closed, the group leaves the container.
            let device = try group.openDevice(GuestEnvironment.edu)
            #expect(throws: VFIOError.errno("VFIO_GROUP_UNSET_CONTAINER", EBUSY)) { try container.remove(group) }
            device.close()
            try container.remove(group)
            // Containers with an IOMMU take no no-IOMMU group, and find no /dev/vfio/N.
            let iommu = try VFIOContainer(model: .type1v2)
            let refused = #expect(throws: VFIOError.self) { try iommu.add(group) }
            if case .invalidArgument = refused?.reason {} else { Issue.record("expected .invalidArgument, got \(String(describing: refused))") }
            #expect(throws: VFIOError.errno("open(/dev/vfio/\(number))", ENOENT)) { try iommu.group(number) }
            try container.add(group)
            try container.remove(group)
        }
    }

    @Test func aNoIOMMUContainerRefusesAGroupWithoutANoIOMMUFile() throws {
        let container = try VFIOContainer(model: .noIOMMU)
        let error = #expect(throws: VFIOError.self) { try container.group(4242) }
        if case .unsupported(let why) = error?.reason {
            #expect(why.contains("not a no-IOMMU group"))
        } else {
            Issue.record("expected .unsupported, got \(String(describing: error))")
        }
    }

    /// edu copies between its buffer and memory at a physical address: from page 0 of a
    /// locked buffer into the device, and back into page 1; MSI still works.
    @Test func eduDMAReachesPhysicalAddressesFromPagemap() async throws {
        try await withGuestDevice {
            let edu = try HostDevice.open(pciAddress: GuestEnvironment.edu)
            guard case .group(let container, let group) = edu.binding else { Issue.record("not a container device"); return }
            #expect(edu.access == .container)
            #expect(container.model == .noIOMMU && group.isNoIOMMU)
            #expect(try edu.eduRead(Edu.identification) == Edu.id)
            let refusal = #expect(throws: VFIOError.self) { try edu.mapDMA(try DMABuffer(size: 4096)) }
            #expect(refusal?.description.contains("no-IOMMU") == true)

            try edu.enableBusMaster()
            let buffer = try DMABuffer(size: 8192)
            let physical = try PhysicalDMAMemory(buffer)
            #expect(physical.physicalAddresses.count == 2)
            print("no-IOMMU DMA buffer: physical pages \(physical.physicalAddresses.map { hex($0) })")
            for address in physical.physicalAddresses {
                #expect(address % 4096 == 0 && address != 0)
                #expect(address + 4096 <= 0xffff_ffff, "edu is given 32 bits of DMA address here (run.sh: dma_mask)")
            }
            #expect(physical.physicalAddress(at: 4096 + 12) == physical.physicalAddresses[1] + 12)
            #expect(physical.contiguousBytes(from: 100) >= 4096 - 100)

            let count = Edu.maximumTransfer
            for i in 0..<count { buffer.bytes[i] = UInt8(truncatingIfNeeded: i &* 13 &+ 7) }
            try edu.eduDMA(from: physical.physicalAddress(at: 0), to: Edu.buffer, count: count, toRAM: false)
            try edu.eduDMA(from: Edu.buffer, to: physical.physicalAddress(at: 4096), count: count, toRAM: true)
            #expect(Array(buffer.bytes[4096..<(4096 + count)]) == Array(buffer.bytes[0..<count]), "the data made the round trip")

            let event = try EventFD()
            try edu.enableInterrupts(.msi, eventfds: [event.fd])
            try edu.eduWrite(Edu.raise, 1)
            _ = try await event.wait(timeout: .seconds(10))
            try edu.eduWrite(Edu.acknowledge, 1)
            try edu.disableInterrupts(.msi)
            withExtendedLifetime(physical) {}
        }
    }
}
