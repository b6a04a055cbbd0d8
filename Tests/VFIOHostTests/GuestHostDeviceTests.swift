import Foundation
import Glibc
import Testing
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

/// QEMU's edu device (1234:11e8), BAR0 registers.
enum Edu {
    static let bar: UInt32 = 0
    static let identification: UInt64 = 0x00
    static let liveness: UInt64 = 0x04
    static let factorial: UInt64 = 0x08
    static let status: UInt64 = 0x20
    static let interruptStatus: UInt64 = 0x24
    static let raise: UInt64 = 0x60
    static let acknowledge: UInt64 = 0x64
    static let dmaSource: UInt64 = 0x80
    static let dmaDestination: UInt64 = 0x88
    static let dmaCount: UInt64 = 0x90
    static let dmaCommand: UInt64 = 0x98
    static let buffer: UInt64 = 0x40000
    static let id: UInt32 = 0x0100_00ed
    /// edu masks DMA addresses to 28 bits.
    static let dmaLimit: UInt64 = (1 << 28) - 1
    /// QEMU 7.2 aborts on a 4096-byte DMA.
    static let maximumTransfer = 4095
}

extension VFIODevice {
    func eduRead(_ register: UInt64) throws -> UInt32 { try read(UInt32.self, region: Edu.bar, offset: register) }
    func eduWrite(_ register: UInt64, _ value: UInt32) throws { try write(value, region: Edu.bar, offset: register) }

    /// Sets Memory Space and Bus Master in the command register.
    func enableBusMaster() throws {
        let command = try readConfig(UInt16.self, offset: 4)
        try writeConfig(command | 0x6, offset: 4)
    }

    /// Runs one edu DMA and waits for it to finish.
    func eduDMA(from source: UInt64, to destination: UInt64, count: Int, toRAM: Bool) throws {
        try eduWrite(Edu.dmaSource, UInt32(source))
        try eduWrite(Edu.dmaDestination, UInt32(destination))
        try eduWrite(Edu.dmaCount, UInt32(count))
        try eduWrite(Edu.dmaCommand, toRAM ? 0x3 : 0x1)
        guard try poll(for: .seconds(10), until: { try eduRead(Edu.dmaCommand) & 1 == 0 }) else {
            throw VFIOError.errno("edu DMA", ETIMEDOUT)
        }
    }
}

/// The kernel transport against QEMU's edu inside the harness's guest: through the
/// container (Debian's kernel and the custom one) and through iommufd and the cdev
/// (the custom kernel). Skipped outside the guest.
@Suite(.serialized, .enabled(if: GuestEnvironment.enabled, "runs inside the guest harness (SWIFT_VFIO_GUEST=1)"))
struct GuestHostDeviceTests {
    /// Opens edu through `access` holding the guest lock, and runs `body`.
    func withEdu<T>(_ access: HostDevice.Access, _ body: (HostDevice) async throws -> T) async throws -> T {
        try await withGuestDevice {
            let device = try HostDevice.open(pciAddress: GuestEnvironment.edu, access: access)
            #expect(device.access == access)
            return try await body(device)
        }
    }

    @Test(.enabled(if: GuestEnvironment.enabled))
    func automaticAccessPrefersTheCdevWhenTheKernelOffersIt() async throws {
        try await withGuestDevice {
            let edu = try HostDevice.open(pciAddress: GuestEnvironment.edu)
            #expect(edu.access == (GuestEnvironment.hasCdev ? .iommufd : .container))
            #expect(try edu.eduRead(Edu.identification) == Edu.id)
        }
        try await withGuestDevice {
            let group = try #require(try Sysfs().pciDevice(GuestEnvironment.edu).iommuGroup)
            let byGroup = try HostDevice.open(path: "/dev/vfio/\(group)")
            #expect(byGroup.access == .container && byGroup.address == GuestEnvironment.edu)
            #expect(try byGroup.eduRead(Edu.identification) == Edu.id)
        }
        if let cdev = try Sysfs().pciDevice(GuestEnvironment.edu).cdevPath, GuestEnvironment.hasCdev {
            try await withGuestDevice {
                let byCdev = try HostDevice.open(path: cdev)
                #expect(byCdev.access == .iommufd && byCdev.address == GuestEnvironment.edu)
                #expect(try byCdev.eduRead(Edu.identification) == Edu.id)
            }
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func identificationAndLivenessThroughPreadAndPwrite(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            #expect(try edu.eduRead(Edu.identification) == Edu.id)
            for value: UInt32 in [0x1234_5678, 0, 0xffff_ffff, 0xa5a5_0f0f] {
                try edu.eduWrite(Edu.liveness, value)
                #expect(try edu.eduRead(Edu.liveness) == ~value)
            }
            // Widths reach the device exactly: edu answers only 4- and 8-byte accesses
            // below 0x80, so 1- and 2-byte reads do not see the identification's low bytes.
            let byte = try edu.read(UInt8.self, region: Edu.bar, offset: 0)
            let half = try edu.read(UInt16.self, region: Edu.bar, offset: 0)
            print("edu: 1-byte read of 0x00 = \(hex(byte)), 2-byte = \(hex(half)) (4-byte = \(hex(Edu.id)))")
            #expect(byte != 0xed)
            #expect(half != 0x00ed)
            // Bulk: 8 bytes in one call cover identification and liveness.
            try edu.eduWrite(Edu.liveness, 0x0f0f_0f0f)
            let bulk = try edu.readBytes(region: Edu.bar, offset: 0, count: 8)
            print("edu: 8-byte read of 0x00 = \(bulk.map { hex($0) })")
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func identificationAndLivenessThroughMmap(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            let info = try edu.regionInfo(Edu.bar)
            #expect(info.flags.contains([.read, .write, .mmap]))
            let mapping = try edu.mapping(region: Edu.bar, offset: 0, size: 4096)
            #expect(mapping.load(UInt32.self, at: 0) == Edu.id)
            mapping.store(UInt32(0xdead_beef), at: 4)
            #expect(mapping.load(UInt32.self, at: 4) == ~UInt32(0xdead_beef))
            // The same register through pread sees what mmap wrote.
            #expect(try edu.eduRead(Edu.liveness) == ~UInt32(0xdead_beef))
            let all = try edu.mapAll(region: Edu.bar)
            #expect(all.map(\.size).reduce(0, +) == Int(info.size))
            withExtendedLifetime(mapping) {}
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func deviceRegionAndIRQInfo(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            let info = try edu.deviceInfo()
            #expect(info.flags.contains(.pci))
            #expect(info.flags.contains(.reset), "edu behind a root port has a bus reset")
            #expect(info.numRegions >= PCIRegionIndex.count)
            #expect(info.numIRQs >= PCIIRQIndex.count)
            let bar0 = try edu.regionInfo(0)
            #expect(bar0.size == 1 << 20)
            for index: UInt32 in 1...5 { #expect(try edu.regionInfo(index).size == 0, "edu has BAR0 only") }
            let config = try edu.regionInfo(PCIRegionIndex.config.rawValue)
            #expect(config.size >= 256 && config.flags.contains([.read, .write]))
            #expect(try edu.readConfig(UInt16.self, offset: 0) == 0x1234)
            #expect(try edu.readConfig(UInt16.self, offset: 2) == 0x11e8)
            let intx = try edu.irqInfo(PCIIRQIndex.intx.rawValue)
            #expect(intx.count == 1 && intx.flags.contains([.eventfd, .maskable, .automasked]))
            let msi = try edu.irqInfo(PCIIRQIndex.msi.rawValue)
            #expect(msi.count == 1 && msi.flags.contains(.eventfd))
            #expect(try edu.irqInfo(PCIIRQIndex.msix.rawValue).count == 0)
            #expect(try edu.irqInfo(PCIIRQIndex.req.rawValue).count == 1)
            #expect(throws: VFIOError.self) { try edu.regionInfo(info.numRegions + 10) }
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func iovaRangesAreReportedAndExcludeTheMSIWindow(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            let ranges = try edu.validIOVARanges()
            print("IOVA ranges (\(access)): \(ranges)")
            #expect(!ranges.isEmpty)
            #expect(ranges.contains { $0.contains(0x10_0000) })
            #expect(!ranges.contains { $0.contains(0xfee0_0000) }, "the MSI window is reserved")
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func factorialWithAndWithoutInterrupt(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            try edu.enableBusMaster()
            try edu.eduWrite(Edu.status, 0)
            try edu.eduWrite(Edu.factorial, 10)
            // Without the interrupt: the status register's busy bit says when it is done.
            #expect(try await poll(for: .seconds(10)) { try edu.eduRead(Edu.status) & 1 == 0 }, "the factorial was not done within 10 s")
            #expect(try edu.eduRead(Edu.factorial) == 3_628_800)

            let event = try EventFD()
            try edu.enableInterrupts(.msi, eventfds: [event.fd])
            try edu.eduWrite(Edu.status, 0x80)
            try edu.eduWrite(Edu.factorial, 6)
            #expect(try await event.wait(timeout: .seconds(10)) >= 1)
            #expect(try edu.eduRead(Edu.factorial) == 720)
            #expect(try edu.eduRead(Edu.interruptStatus) & 1 == 1)
            try edu.eduWrite(Edu.acknowledge, 1)
            try edu.eduWrite(Edu.status, 0)
            try edu.disableInterrupts(.msi)
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func dmaToAndFromHostMemoryAndNotToAnUnmappedIOVA(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            try edu.enableBusMaster()
            let buffer = try DMABuffer(size: 8192)
            let iova = try edu.mapDMA(buffer, limit: Edu.dmaLimit)
            #expect(iova + 8192 - 1 <= Edu.dmaLimit)
            let count = Edu.maximumTransfer
            for i in 0..<count { buffer.bytes[i] = UInt8(truncatingIfNeeded: i &* 7 &+ 3) }
            try edu.eduDMA(from: iova, to: Edu.buffer, count: count, toRAM: false)
            try edu.eduDMA(from: Edu.buffer, to: iova + 4096, count: count, toRAM: true)
            #expect(Array(buffer.bytes[4096..<(4096 + count)]) == Array(buffer.bytes[0..<count]), "the data made the round trip")

            // A buffer mapped, then unmapped: a DMA to its IOVA must not land in it.
            let other = try DMABuffer(size: 4096)
            let otherIOVA = try edu.mapDMA(other, limit: Edu.dmaLimit)
            try edu.unmapDMA(iova: otherIOVA, size: 4096)
            try edu.eduDMA(from: Edu.buffer, to: otherIOVA, count: 256, toRAM: true)
            #expect(other.bytes.allSatisfy { $0 == 0 }, "a DMA to an unmapped IOVA landed")
            #expect(try edu.eduRead(Edu.identification) == Edu.id)
            try edu.unmapDMA(iova: iova, size: 8192)
            withExtendedLifetime(buffer) {}
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func dmaFromAnonymousAndHugePageBuffers(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            try edu.enableBusMaster()
            // Reserve a few 2 MiB pages (root in the guest). A kernel without hugetlbfs
            // (the harness's custom one) has no nr_hugepages: only anonymous memory then.
            let fd = Glibc.open("/proc/sys/vm/nr_hugepages", O_WRONLY)
            let hugePagesExpected = fd >= 0
            if fd >= 0 {
                _ = Glibc.write(fd, "4", 1)
                _ = Glibc.close(fd)
            }
            var buffers: [DMABuffer] = [try DMABuffer(size: 8192, backing: .anonymous)]
            do {
                buffers.append(try DMABuffer(size: 2 << 20, backing: .hugePages))
            } catch {
                print("huge pages (\(access)): not available: \(error)")
            }
            for buffer in buffers {
                let alignment = UInt64(DMABuffer.granule(for: buffer.backing))
                let iova = try edu.mapDMA(buffer, alignment: alignment, limit: Edu.dmaLimit)
                #expect(iova % alignment == 0)
                for i in 0..<256 { buffer.bytes[i] = UInt8(truncatingIfNeeded: i ^ 0x5a) }
                try edu.eduDMA(from: iova, to: Edu.buffer, count: 256, toRAM: false)
                try edu.eduDMA(from: Edu.buffer, to: iova + 4096, count: 256, toRAM: true)
                #expect(Array(buffer.bytes[4096..<4352]) == Array(buffer.bytes[0..<256]), "\(buffer.backing)")
                try edu.unmapDMA(iova: iova, size: UInt64(buffer.size))
            }
            #expect(buffers.count == (hugePagesExpected ? 2 : 1), "a 2 MiB huge page could not be had")
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func msiIsDeliveredThroughAnEventfd(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            try edu.enableBusMaster()
            let event = try EventFD()
            try edu.enableInterrupts(.msi, eventfds: [event.fd])
            for round in 0..<3 {
                let start = ContinuousClock.now
                try edu.eduWrite(Edu.raise, 0x1 << round)
                #expect(try await event.wait(timeout: .seconds(10)) == 1)
                print("MSI (\(access)) round \(round): \(ContinuousClock.now - start)")
                #expect(try edu.eduRead(Edu.interruptStatus) == 0x1 << round)
                try edu.eduWrite(Edu.acknowledge, 0x1 << round)
            }
            // Disabling frees the interrupt handler before it returns: nothing signals the
            // eventfd from then on, so the raise (read back: edu took it) is checked at once.
            try edu.disableInterrupts(.msi)
            try edu.eduWrite(Edu.raise, 1)
            #expect(try edu.eduRead(Edu.interruptStatus) & 1 == 1)
            #expect(try event.consume() == nil, "MSI disabled, yet the eventfd was signalled")
            try edu.eduWrite(Edu.acknowledge, 1)
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func intxIsDeliveredMaskedAndUnmasked(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            try edu.enableBusMaster()
            let event = try EventFD()
            try edu.enableInterrupts(.intx, eventfds: [event.fd])
            try edu.eduWrite(Edu.raise, 1)
            #expect(try await event.wait(timeout: .seconds(10)) == 1)
            // Automasked now: lower the line, unmask, raise again.
            try edu.eduWrite(Edu.acknowledge, 1)
            try edu.unmaskINTx()
            try edu.eduWrite(Edu.raise, 2)
            #expect(try await event.wait(timeout: .seconds(10)) == 1)
            try edu.eduWrite(Edu.acknowledge, 2)

            // Unmasking through an eventfd (the resample path).
            let unmask = try EventFD()
            try edu.setINTxUnmaskEventfd(unmask.fd)
            try unmask.signal()
            try edu.eduWrite(Edu.raise, 4)
            #expect(try await event.wait(timeout: .seconds(10)) == 1)
            try edu.eduWrite(Edu.acknowledge, 4)

            // Masked by the user: nothing arrives until unmasked. Unmasked by the ioctl here
            // (an unmask through the eventfd lands later, and could undo the mask), then
            // masked: the mask holds once the ioctl returns, so the raise (read back: edu
            // took it) is checked at once.
            try edu.unmaskINTx()
            try edu.maskINTx()
            try edu.eduWrite(Edu.raise, 8)
            #expect(try edu.eduRead(Edu.interruptStatus) & 8 == 8)
            #expect(try event.consume() == nil, "INTx masked, yet the eventfd was signalled")
            try edu.unmaskINTx()
            #expect(try await event.wait(timeout: .seconds(10)) == 1)
            try edu.eduWrite(Edu.acknowledge, 8)
            try edu.setINTxUnmaskEventfd(-1)
            try edu.disableInterrupts(.intx)
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func errAndReqIRQsTakeEventfds(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            let event = try EventFD()
            try edu.enableInterrupts(.req, eventfds: [event.fd])
            try edu.disableInterrupts(.req)
            // edu is conventional PCI: vfio-pci offers the ERR interrupt on PCIe devices only.
            #expect(throws: VFIOError.errno("VFIO_DEVICE_GET_IRQ_INFO", EINVAL)) { try edu.irqInfo(PCIIRQIndex.err.rawValue) }
            #expect(throws: VFIOError.errno("VFIO_DEVICE_SET_IRQS", EINVAL)) { try edu.enableInterrupts(.err, eventfds: [event.fd]) }
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func anIOEventfdWritesTheLivenessRegister(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            let event = try EventFD()
            let offset = try edu.deviceOffset(region: Edu.bar, offset: Edu.liveness)
            let ioeventfd = IOEventfd(width: .bits32, offset: offset, data: 0x0bad_cafe, fd: event.fd)
            try edu.setIOEventfd(ioeventfd)
            try edu.eduWrite(Edu.liveness, 0)
            try event.signal()
            // The kernel writes from the eventfd's wakeup, or from a work item when it cannot.
            #expect(try await poll(for: .seconds(5)) { try edu.eduRead(Edu.liveness) == ~UInt32(0x0bad_cafe) },
                    "the ioeventfd did not write within 5 s")
            var removal = ioeventfd
            removal.fd = -1
            // Removal tears the eventfd's handler down (and waits for its work) before the
            // ioctl returns: a signal after it reaches nothing, so it is checked at once.
            try edu.setIOEventfd(removal)
            try edu.eduWrite(Edu.liveness, 0)
            try event.signal()
            #expect(try edu.eduRead(Edu.liveness) == ~UInt32(0), "a removed ioeventfd still wrote")
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func resetHotResetInfoAndHotReset(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            try edu.reset()
            #expect(try edu.eduRead(Edu.identification) == Edu.id)
            let info = try edu.hotResetInfo()
            print("hot reset (\(access)): flags \(info.flags.rawValue), \(info.devices.map { "\($0.address) id \($0.rawID)" })")
            let mine = info.devices.first { $0.address == GuestEnvironment.edu }
            #expect(mine != nil, "the device itself is among those a bus reset affects")
            if access == .container {
                #expect(!info.flags.contains(.devID))
                #expect(mine.map { Int($0.groupID) } == (try Sysfs().pciDevice(GuestEnvironment.edu)).iommuGroup)
            } else {
                #expect(info.flags.contains(.devID))
                if case .iommufd(_, let deviceID) = edu.binding { #expect(mine?.rawID == deviceID) }
            }
            try edu.hotReset()
            #expect(try edu.eduRead(Edu.identification) == Edu.id)
            try edu.eduWrite(Edu.liveness, 5)
            #expect(try edu.eduRead(Edu.liveness) == ~UInt32(5))
        }
    }

    @Test(arguments: GuestEnvironment.accesses)
    func featuresAreProbedWithTypedAnswers(access: HostDevice.Access) async throws {
        try await withEdu(access) { edu in
            // What vfio-pci answers for edu on 6.1 and 6.12 alike: the three low-power
            // features (SET) are there; every other one is ENOTTY (no SR-IOV PF for the VF
            // token, no migration or DMA logging driver, BUS_MASTER is vfio-cdx's).
            let offered: Set<DeviceFeatureID> = [.lowPowerEntry, .lowPowerEntryWithWakeup, .lowPowerExit]
            for id in DeviceFeatureID.allCases {
                let ops = id.supportedOperations
                let probe = DeviceFeature.probe(id, get: ops.contains(.get), set: ops.contains(.set))
                if offered.contains(id) {
                    #expect(throws: Never.self, "\(id)") { _ = try edu.feature(probe) }
                } else {
                    #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE", ENOTTY), "\(id)") { _ = try edu.feature(probe) }
                }
            }
            // A probe of an operation the feature lacks: EINVAL (vfio_check_feature()).
            #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE", EINVAL)) { _ = try edu.feature(.probe(.lowPowerEntry, get: true)) }
            #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE", ENOTTY)) { try edu.feature(.probe(.migration, get: true)) }
            #expect(throws: VFIOError.errno("VFIO_DEVICE_FEATURE", ENOTTY)) { try edu.feature(.get(.migration(MigrationFeatureInfo()))) }
        }
    }

    @Test(.enabled(if: GuestEnvironment.enabled && GuestEnvironment.hasCdev))
    func iommufdDetachAttachAndReplace() async throws {
        try await withEdu(.iommufd) { edu in
            guard case .iommufd(let iommufd, _) = edu.binding, let first = try edu.dmaSpace() as? IOAS else {
                Issue.record("not an iommufd device"); return
            }
            try edu.enableBusMaster()
            let second = try iommufd.allocateIOAS()
            #expect(second.id != first.id)
            // Replace: attach to the second IOAS while attached to the first.
            try edu.attach(second)
            #expect((try edu.dmaSpace() as? IOAS) === second)
            let buffer = try DMABuffer(size: 4096)
            for i in 0..<32 { buffer.bytes[i] = 0x40 + UInt8(i) }
            let iova = try edu.mapDMA(buffer, limit: Edu.dmaLimit)
            try edu.eduDMA(from: iova, to: Edu.buffer, count: 32, toRAM: false)
            try edu.eduDMA(from: Edu.buffer, to: iova + 2048, count: 32, toRAM: true)
            #expect(Array(buffer.bytes[2048..<2080]) == Array(buffer.bytes[0..<32]))
            // Detach, then attach back to the first.
            try edu.detach()
            #expect(throws: VFIOError.self) { try edu.dmaSpace() }
            try edu.attach(first)
            try second.unmapAll()
            #expect(try edu.eduRead(Edu.identification) == Edu.id)
        }
    }

    /// Open/map/DMA/IRQ/close cycles leave nothing behind, counted by what only this test
    /// makes: descriptors and mappings of VFIO files (the container, group, device, cdev
    /// and /dev/iommu), and the cycles' eventfds and DMA memfds by identity.
    @Test(arguments: GuestEnvironment.accesses)
    func nothingLeaks(access: HostDevice.Access) async throws {
        try await withGuestDevice {
            var tracked: [TrackedFile] = []
            func cycle() async throws {
                let edu = try HostDevice.open(pciAddress: GuestEnvironment.edu, access: access)
                try edu.enableBusMaster()
                let mapping = try edu.mapping(region: Edu.bar, offset: 0, size: 4096)
                #expect(mapping.load(UInt32.self, at: 0) == Edu.id)
                #expect(!vfioDescriptors().isEmpty && !vfioMappings().isEmpty, "what is counted below is there while the device is open")
                let buffer = try DMABuffer(size: 4096)
                tracked.append(try TrackedFile(try #require(buffer.sharedDescriptor).fd, name: "DMA memfd"))
                let iova = try edu.mapDMA(buffer, limit: Edu.dmaLimit)
                let event = try EventFD()
                tracked.append(try TrackedFile(event.fd, name: "MSI eventfd"))
                try edu.enableInterrupts(.msi, eventfds: [event.fd])
                try edu.eduWrite(Edu.raise, 1)
                _ = try await event.wait(timeout: .seconds(10))
                try edu.eduWrite(Edu.acknowledge, 1)
                try edu.disableInterrupts(.msi)
                // Error paths on the way.
                #expect(throws: VFIOError.self) { try edu.mapping(region: Edu.bar, offset: 0, size: 2 << 20) }
                #expect(throws: VFIOError.self) { try edu.mapDMA(buffer, offset: 0, size: 4096, iova: iova, access: .readWrite) }
                #expect(throws: VFIOError.self) { try HostDevice.open(pciAddress: GuestEnvironment.edu, access: access) }
                try edu.unmapDMA(iova: iova, size: 4096)
                withExtendedLifetime(mapping) {}
            }
            let descriptors = vfioDescriptors(), mappings = vfioMappings()
            for _ in 0..<3 { try await cycle() }
            #expect(vfioDescriptors() == descriptors, "VFIO descriptors leaked")
            #expect(vfioMappings() == mappings, "VFIO mappings leaked")
            #expect(tracked.compactMap { $0.stillReferenced() } == [])
            // Opening a device that does not exist leaks nothing either.
            #expect(throws: VFIOError.self) { try HostDevice.open(pciAddress: "0000:7f:1f.7", access: access) }
            #expect(vfioDescriptors() == descriptors)
        }
    }
}

/// What the descriptors of VFIO and iommufd files in this process refer to (the targets of
/// their /proc/self/fd links, sorted): only device tests open those.
func vfioDescriptors() -> [String] {
    openDescriptorNames().compactMap { name in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + name),
              isVFIOFile(target) else { return nil }
        return target
    }.sorted()
}

/// The mappings of VFIO files in this process (device regions), without their addresses.
func vfioMappings() -> [String] {
    procSelfMaps().compactMap { line in
        // address perms offset dev inode, then the pathname after padding.
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count == 6 else { return nil }
        let path = String(fields[5].drop { $0 == " " })
        guard isVFIOFile(path) else { return nil }
        return fields[1..<5].joined(separator: " ") + " " + path
    }.sorted()
}

/// `/dev/vfio/vfio`, `/dev/vfio/N`, `/dev/vfio/devices/vfioN`, `/dev/iommu`, and the
/// device descriptor a group gives (`anon_inode:[vfio-device]`).
func isVFIOFile(_ target: String) -> Bool {
    target.hasPrefix("/dev/vfio/") || target == "/dev/iommu" || target == "anon_inode:[vfio-device]"
}

/// A second `mmap` of a shared DMA buffer's memfd: the same pages at another address.
final class SecondMapping: DMAMemory, @unchecked Sendable {
    let baseAddress: UnsafeMutableRawPointer
    let size: Int
    var sharedDescriptor: (fd: Int32, offset: Int64)? { nil }
    var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: baseAddress, count: size) }

    init(of buffer: DMABuffer) throws {
        guard let shared = buffer.sharedDescriptor else { throw VFIOError.invalidArgument("SecondMapping", "not a shared buffer") }
        let mapped = mmap(nil, buffer.size, PROT_READ | PROT_WRITE, MAP_SHARED, shared.fd, off_t(shared.offset))
        guard let mapped, mapped != MAP_FAILED else { throw VFIOError.errno("mmap", errno) }
        baseAddress = mapped
        size = buffer.size
    }

    deinit { munmap(baseAddress, size) }
}

func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }
