import Glibc
import VFIO
import VFIOSystem

/// The transport-independent conformance suite for an `edu` device (QEMU's, through the
/// kernel and vfio-pci, or the Swift model over vfio-user), written against `VFIODevice`
/// only. Both transports must give the same answers; a check is skipped only where the
/// transport has no such operation or the device lacks the flag the check needs.
///
/// ```swift
/// let report = await EduConformance.runner().run(deviceName: "model:edu") { try openTheDevice() }
/// print(report)            // one line per check, then "N passed, N failed, N skipped"
/// ```
public enum EduConformance {
    /// The checks, in the order they run.
    public static let checks: [ConformanceCheck] = [
        ConformanceCheck(name: "identity", summary: "device info (PCI, 9+ regions, 5+ IRQ indexes), vendor/device 1234:11e8 in config space, BAR0 1 MiB read/write", body: .device(identity)),
        ConformanceCheck(name: "registers-pio", summary: "identification and liveness registers through region read/write", body: .device(registersPIO)),
        ConformanceCheck(name: "registers-mmap", summary: "identification and liveness registers through an mmap of BAR0", body: .device(registersMmap)),
        ConformanceCheck(name: "factorial-poll", summary: "factorials computed, completion polled in the status register", body: .device(factorialPoll)),
        ConformanceCheck(name: "factorial-msi", summary: "factorial with its completion interrupt delivered by MSI to an eventfd", body: .device(factorialMSI)),
        ConformanceCheck(name: "factorial-intx", summary: "factorial with its completion interrupt delivered by INTx, unmasked, raised again", body: .device(factorialINTx)),
        ConformanceCheck(name: "raise-irq", summary: "the raise register interrupts by MSI; status reads the value; acknowledge clears it", body: .device(raiseIRQ)),
        ConformanceCheck(name: "dma", summary: "DMA RAM -> device buffer -> RAM, data verified, offsets within page and buffer", body: .device(dmaPolled)),
        ConformanceCheck(name: "dma-irq", summary: "DMA both ways with the DMA-done interrupt by MSI", body: .device(dmaInterrupt)),
        ConformanceCheck(name: "dma-unmapped", summary: "a DMA to an unmapped IOVA does not land; mapped again, it does", body: .device(dmaUnmapped)),
        ConformanceCheck(name: "ioeventfd", summary: "an ioeventfd on the liveness register writes it when signalled, and not once removed", body: .device(ioeventfd)),
        ConformanceCheck(name: "reset", summary: "device reset where offered; the device answers afterwards", body: .device(reset)),
        ConformanceCheck(name: "hot-reset-info", summary: "PCI hot-reset info lists the device itself", body: .device(hotResetInfo)),
        ConformanceCheck(name: "iova-ranges", summary: "valid IOVA ranges: non-empty, sorted, non-overlapping, room below 256 MiB", body: .device(iovaRanges)),
        ConformanceCheck(name: "leaks", summary: "open/mmap/DMA map/IRQs/close cycles leave descriptors and mappings at baseline", body: .factory(leaks)),
    ]

    /// The names of the checks, in order.
    public static var checkNames: [String] { checks.map(\.name) }

    /// A runner for the whole suite (narrow it with `selecting(_:)`).
    public static func runner(options: ConformanceOptions = ConformanceOptions()) -> ConformanceRunner {
        ConformanceRunner(checks: checks, options: options)
    }

    static let bar0 = PCIRegionIndex.bar0.rawValue
    static let msi = PCIIRQIndex.msi.rawValue
    static let intx = PCIIRQIndex.intx.rawValue

    // MARK: Identity and registers

    static func identity(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        let info = try device.deviceInfo()
        try require(info.flags.contains(.pci), "device info flags \(hex(info.flags.rawValue)) lack VFIO_DEVICE_FLAGS_PCI")
        try require(info.numRegions >= PCIRegionIndex.count, "device info has \(info.numRegions) regions, a PCI device has at least \(PCIRegionIndex.count)")
        try require(info.numIRQs >= PCIIRQIndex.count, "device info has \(info.numIRQs) IRQ indexes, a PCI device has at least \(PCIIRQIndex.count)")
        try expectHex(try device.readConfig(UInt16.self, offset: PCIConfig.vendorID), Edu.vendorID, "config vendor ID")
        try expectHex(try device.readConfig(UInt16.self, offset: PCIConfig.deviceID), Edu.deviceID, "config device ID")
        let region = try device.regionInfo(bar0)
        try expectEqual(region.index, bar0, "BAR0 region info index")
        try expectHex(region.size, Edu.bar0Size, "BAR0 size")
        try require(region.flags.isSuperset(of: [.read, .write]), "BAR0 flags \(hex(region.flags.rawValue)) lack READ and WRITE")
        let config = try device.regionInfo(PCIRegionIndex.config.rawValue)
        try require(config.size >= 256 && config.flags.isSuperset(of: [.read, .write]),
                    "config region: size \(config.size), flags \(hex(config.flags.rawValue)); expected 256+ bytes, read/write")
    }

    static let livenessPatterns: [UInt32] = [0, 0x1234_5678, 0xffff_ffff, 0xa5a5_5a5a]

    static func registersPIO(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        try device.enableMemoryAndBusMaster()
        try expectHex(try device.eduRead(Edu.identification), Edu.identificationValue, "identification register")
        for value in livenessPatterns {
            try device.eduWrite(Edu.liveness, value)
            try expectHex(try device.eduRead(Edu.liveness), ~value, "liveness after writing \(hex(value))")
            try expectHex(try device.eduRead(Edu.liveness), ~value, "liveness read again after writing \(hex(value))")
        }
    }

    static func registersMmap(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        let region = try device.regionInfo(bar0)
        guard region.flags.contains(.mmap) else { throw CheckSkipped("BAR0 has no VFIO_REGION_INFO_FLAG_MMAP") }
        let page = SystemCall.pageSize
        if let areas = region.sparseMmapAreas {
            guard areas.contains(where: { $0.offset == 0 && $0.size >= UInt64(page) }) else {
                throw CheckSkipped("BAR0's sparse-mmap areas \(areas) do not cover its first page")
            }
        }
        try device.enableMemoryAndBusMaster()
        let mapping = try device.mapRegion(bar0, offset: 0, size: page)
        try expectEqual(mapping.regionOffset, 0, "mapping's region offset")
        try require(mapping.size >= page, "mapping of \(mapping.size) bytes, asked for \(page)")
        try expectHex(MMIO.load32(mapping, at: Int(Edu.identification)), Edu.identificationValue, "identification register through mmap")
        for value in livenessPatterns {
            MMIO.store32(value, mapping, at: Int(Edu.liveness))
            try expectHex(MMIO.load32(mapping, at: Int(Edu.liveness)), ~value, "liveness through mmap after writing \(hex(value)) through mmap")
            try expectHex(try device.eduRead(Edu.liveness), ~value, "liveness through read after writing \(hex(value)) through mmap")
        }
        try device.eduWrite(Edu.liveness, 0x0f0f_0f0f)
        try expectHex(MMIO.load32(mapping, at: Int(Edu.liveness)), 0xf0f0_f0f0, "liveness through mmap after writing 0xf0f0f0f through write")
    }

    // MARK: Factorial and interrupts

    static func factorial(of n: UInt32) -> UInt32 {
        (1...max(n, 1)).reduce(1) { $0 &* $1 }
    }

    /// Starts a factorial of `n` (after any running one finished), optionally asking for the
    /// completion interrupt.
    static func startFactorial(_ device: any VFIODevice, _ n: UInt32, interrupt: Bool, _ options: ConformanceOptions) async throws {
        try await waitUntil("the factorial unit going idle", timeout: options.timeout) {
            try device.eduRead(Edu.status) & Edu.statusComputing == 0
        }
        try device.eduWrite(Edu.status, interrupt ? Edu.statusRaiseIRQ : 0)
        try device.eduWrite(Edu.factorial, n)
    }

    static func factorialPoll(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        try device.enableMemoryAndBusMaster()
        for n: UInt32 in [0, 5, 10, 12] {
            try await startFactorial(device, n, interrupt: false, options)
            try await waitUntil("completion of \(n)!", timeout: options.timeout) {
                try device.eduRead(Edu.status) & Edu.statusComputing == 0
            }
            try expectEqual(try device.eduRead(Edu.factorial), factorial(of: n), "\(n)!")
        }
    }

    /// Requires an IRQ index with eventfd signalling and at least one vector.
    static func requireIRQ(_ device: any VFIODevice, _ index: UInt32, _ name: String) throws -> IRQInfo {
        let info = try device.irqInfo(index)
        try require(info.count >= 1, "\(name) IRQ index reports count 0; edu has \(name)")
        try require(info.flags.contains(.eventfd), "\(name) IRQ index flags \(hex(info.flags.rawValue)) lack VFIO_IRQ_INFO_EVENTFD")
        return info
    }

    /// Acknowledges every interrupt status bit, so nothing is pending before a test.
    static func acknowledgeAll(_ device: any VFIODevice) throws {
        try device.eduWrite(Edu.interruptAcknowledge, 0xffff_ffff)
        try expectHex(try device.eduRead(Edu.interruptStatus), 0, "interrupt status after acknowledging all")
    }

    static func factorialMSI(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        _ = try requireIRQ(device, msi, "MSI")
        try device.enableMemoryAndBusMaster()
        try acknowledgeAll(device)
        let event = try EventFD()
        try device.setIRQs(.enableEventfds(index: msi, [event.fd]))
        try await startFactorial(device, 10, interrupt: true, options)
        try await awaitInterrupt(event, "MSI (factorial done)", timeout: options.timeout)
        try expectHex(try device.eduRead(Edu.interruptStatus), Edu.factorialIRQ, "interrupt status after the factorial")
        try expectHex(try device.eduRead(Edu.status) & Edu.statusComputing, 0, "computing bit once interrupted")
        try expectEqual(try device.eduRead(Edu.factorial), factorial(of: 10), "10!")
        try device.eduWrite(Edu.interruptAcknowledge, Edu.factorialIRQ)
        try expectHex(try device.eduRead(Edu.interruptStatus), 0, "interrupt status after acknowledging")
        try device.eduWrite(Edu.status, 0)
        try device.setIRQs(.disable(index: msi))
    }

    static func factorialINTx(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        let info = try requireIRQ(device, intx, "INTx")
        try device.enableMemoryAndBusMaster()
        try acknowledgeAll(device)
        let event = try EventFD()
        try device.setIRQs(.enableEventfds(index: intx, [event.fd]))
        try await startFactorial(device, 12, interrupt: true, options)
        try await awaitInterrupt(event, "INTx (factorial done)", timeout: options.timeout)
        try expectHex(try device.eduRead(Edu.interruptStatus), Edu.factorialIRQ, "interrupt status after the factorial")
        try expectEqual(try device.eduRead(Edu.factorial), factorial(of: 12), "12!")
        try device.eduWrite(Edu.interruptAcknowledge, Edu.factorialIRQ)
        try device.eduWrite(Edu.status, 0)
        if info.flags.contains(.maskable) { try device.setIRQs(.unmaskINTx()) }
        // Once unmasked, the line interrupts again.
        let second: UInt32 = 0x0001_0000
        try device.eduWrite(Edu.interruptRaise, second)
        try await awaitInterrupt(event, "INTx (raised after unmask)", timeout: options.timeout)
        try expectHex(try device.eduRead(Edu.interruptStatus), second, "interrupt status after raising \(hex(second))")
        try device.eduWrite(Edu.interruptAcknowledge, second)
        try expectHex(try device.eduRead(Edu.interruptStatus), 0, "interrupt status after acknowledging")
        if info.flags.contains(.maskable) { try device.setIRQs(.unmaskINTx()) }
        try device.setIRQs(.disable(index: intx))
    }

    static func raiseIRQ(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        _ = try requireIRQ(device, msi, "MSI")
        try device.enableMemoryAndBusMaster()
        try acknowledgeAll(device)
        let event = try EventFD()
        try device.setIRQs(.enableEventfds(index: msi, [event.fd]))
        for value: UInt32 in [0x00c0_ffee, 0x8000_0000] {
            try device.eduWrite(Edu.interruptRaise, value)
            try await awaitInterrupt(event, "MSI (raise \(hex(value)))", timeout: options.timeout)
            try expectHex(try device.eduRead(Edu.interruptStatus), value, "interrupt status after raising \(hex(value))")
            try device.eduWrite(Edu.interruptAcknowledge, value)
            try expectHex(try device.eduRead(Edu.interruptStatus), 0, "interrupt status after acknowledging \(hex(value))")
        }
        try device.setIRQs(.disable(index: msi))
    }

    // MARK: DMA

    /// Runs one DMA transfer and waits for it: by polling the start bit, or (with
    /// `interrupt`) for the DMA-done interrupt, which it then checks and acknowledges.
    static func transfer(_ device: any VFIODevice, source: UInt64, destination: UInt64, count: Int,
                         toRAM: Bool, interrupt: EventFD?, _ options: ConformanceOptions) async throws {
        precondition(count > 0 && count <= Edu.maxTransfer)
        try await waitUntil("the DMA engine going idle", timeout: options.timeout) {
            try device.eduRead(Edu.dmaCommand) & Edu.dmaStart == 0
        }
        try device.eduWrite(Edu.dmaSource, UInt32(source))
        try device.eduWrite(Edu.dmaDestination, UInt32(destination))
        try device.eduWrite(Edu.dmaCount, UInt32(count))
        var command = Edu.dmaStart
        if toRAM { command |= Edu.dmaToRAM }
        if interrupt != nil { command |= Edu.dmaRaiseIRQ }
        try device.eduWrite(Edu.dmaCommand, command)
        let what = "DMA of \(count) bytes \(hex(source)) -> \(hex(destination))"
        if let interrupt {
            try await awaitInterrupt(interrupt, "MSI (\(what) done)", timeout: options.timeout)
            try expectHex(try device.eduRead(Edu.interruptStatus) & Edu.dmaIRQ, Edu.dmaIRQ, "interrupt status after the \(what)")
            try device.eduWrite(Edu.interruptAcknowledge, Edu.dmaIRQ)
        }
        try await waitUntil("completion of the \(what)", timeout: options.timeout) {
            try device.eduRead(Edu.dmaCommand) & Edu.dmaStart == 0
        }
    }

    /// The byte pattern the DMA checks move, different for each `seed`.
    static func pattern(_ index: Int, seed: UInt8) -> UInt8 {
        UInt8(truncatingIfNeeded: index &* 7 &+ index >> 8) ^ seed
    }

    static func fillPattern(_ buffer: DMABuffer, seed: UInt8) {
        for i in 0..<buffer.size { buffer.bytes[i] = pattern(i, seed: seed) }
    }

    /// Checks `buffer[range]` holds the pattern from `patternStart` and everything else `fill`.
    static func verify(_ buffer: DMABuffer, range: Range<Int>, seed: UInt8, patternStart: Int, fill: UInt8, _ what: String) throws {
        for i in 0..<buffer.size {
            let expected = range.contains(i) ? pattern(i - range.lowerBound + patternStart, seed: seed) : fill
            if buffer.bytes[i] != expected {
                throw CheckFailed("\(what): byte \(hex(i)) is \(hex(buffer.bytes[i])), expected \(hex(expected))\(range.contains(i) ? "" : " (outside the transfer)")")
            }
        }
    }

    static func dmaRoundTrips(_ device: any VFIODevice, interrupt: EventFD?, _ options: ConformanceOptions) async throws {
        let page = SystemCall.pageSize
        let scope = DMAScope(device)
        let iovas = try pickIOVAs(device, count: 2, size: page)
        // The device only reads the source: map it read-only. The destination is mapped
        // read/write, as write-only IOMMU mappings are not portable.
        let source = try scope.map(size: page, iova: iovas[0], access: .read)
        fillPattern(source, seed: 0x3c)
        let destination = try scope.map(size: page, iova: iovas[1], access: .readWrite, fill: 0xee)

        // The whole usable device buffer, RAM -> device -> RAM.
        try await transfer(device, source: iovas[0], destination: Edu.dmaBuffer, count: Edu.maxTransfer, toRAM: false, interrupt: interrupt, options)
        try await transfer(device, source: Edu.dmaBuffer, destination: iovas[1], count: Edu.maxTransfer, toRAM: true, interrupt: interrupt, options)
        try verify(destination, range: 0..<Edu.maxTransfer, seed: 0x3c, patternStart: 0, fill: 0xee, "RAM after a \(Edu.maxTransfer)-byte round trip")

        // A slice from inside the device buffer to the middle of the page.
        destination.bytes.initializeMemory(as: UInt8.self, repeating: 0xee)
        try await transfer(device, source: Edu.dmaBuffer + 0x100, destination: iovas[1] + 0x800, count: 0x200, toRAM: true, interrupt: interrupt, options)
        try verify(destination, range: 0x800..<0xa00, seed: 0x3c, patternStart: 0x100, fill: 0xee, "RAM after a 0x200-byte transfer from device buffer offset 0x100")

        // And into the device buffer at an offset, from an offset in RAM.
        fillPattern(source, seed: 0xc5)
        try await transfer(device, source: iovas[0] + 0x10, destination: Edu.dmaBuffer + 0x400, count: 0x100, toRAM: false, interrupt: interrupt, options)
        destination.bytes.initializeMemory(as: UInt8.self, repeating: 0xee)
        try await transfer(device, source: Edu.dmaBuffer + 0x400, destination: iovas[1], count: 0x100, toRAM: true, interrupt: interrupt, options)
        try verify(destination, range: 0..<0x100, seed: 0xc5, patternStart: 0x10, fill: 0xee, "RAM after 0x100 bytes into device buffer offset 0x400 and back")

        try scope.unmap(iova: iovas[0])
        try scope.unmap(iova: iovas[1])
    }

    static func dmaPolled(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        try device.enableMemoryAndBusMaster()
        try acknowledgeAll(device)
        try await dmaRoundTrips(device, interrupt: nil, options)
    }

    static func dmaInterrupt(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        _ = try requireIRQ(device, msi, "MSI")
        try device.enableMemoryAndBusMaster()
        try acknowledgeAll(device)
        let event = try EventFD()
        try device.setIRQs(.enableEventfds(index: msi, [event.fd]))
        try await dmaRoundTrips(device, interrupt: event, options)
        try device.setIRQs(.disable(index: msi))
    }

    static func dmaUnmapped(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        try device.enableMemoryAndBusMaster()
        try acknowledgeAll(device)
        let page = SystemCall.pageSize
        let count = 0x400
        let scope = DMAScope(device)
        let iovas = try pickIOVAs(device, count: 2, size: page)
        let source = try scope.map(size: page, iova: iovas[0], access: .read)
        fillPattern(source, seed: 0x77)
        try await transfer(device, source: iovas[0], destination: Edu.dmaBuffer, count: count, toRAM: false, interrupt: nil, options)

        let target = try scope.map(size: page, iova: iovas[1], access: .readWrite, fill: 0x5a)
        try scope.unmap(iova: iovas[1])
        try await transfer(device, source: Edu.dmaBuffer, destination: iovas[1], count: count, toRAM: true, interrupt: nil, options)
        try verify(target, range: 0..<0, seed: 0, patternStart: 0, fill: 0x5a, "memory unmapped from IOVA \(hex(iovas[1])) after a DMA there")

        // The same DMA lands once the memory is mapped again: the check above is not vacuous.
        try scope.remap(target, iova: iovas[1], access: .readWrite)
        try await transfer(device, source: Edu.dmaBuffer, destination: iovas[1], count: count, toRAM: true, interrupt: nil, options)
        try verify(target, range: 0..<count, seed: 0x77, patternStart: 0, fill: 0x5a, "memory mapped again at \(hex(iovas[1])) after the same DMA")
    }

    // MARK: ioeventfd, reset, hot reset, IOVA ranges

    static func ioeventfd(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        let region = try device.regionInfo(bar0)
        try device.enableMemoryAndBusMaster()
        try device.eduWrite(Edu.liveness, 0)
        let event = try EventFD()
        let value: UInt32 = 0x0bad_f00d
        let registration = IOEventfd(width: .bits32, offset: region.offset + Edu.liveness, data: UInt64(value), fd: event.fd)
        if case .failure(let error) = Result(catching: { () throws(VFIOError) in try device.setIOEventfd(registration) }) {
            if isUnsupported(error) { throw CheckSkipped("the transport has no ioeventfd (\(error))") }
            throw error
        }
        try event.signal()
        try await waitUntil("the ioeventfd's write of \(hex(value)) to liveness", timeout: options.timeout) {
            try device.eduRead(Edu.liveness) == ~value
        }
        var removal = registration
        removal.fd = -1
        try device.setIOEventfd(removal)
        try device.eduWrite(Edu.liveness, 0)
        try event.signal()
        try await Task.sleep(for: .milliseconds(50))
        try expectHex(try device.eduRead(Edu.liveness), 0xffff_ffff, "liveness after signalling a removed ioeventfd")
    }

    static func reset(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        let info = try device.deviceInfo()
        guard info.flags.contains(.reset) else { throw CheckSkipped("device info lacks VFIO_DEVICE_FLAGS_RESET") }
        try device.enableMemoryAndBusMaster()
        try device.eduWrite(Edu.liveness, 0x1357_9bdf)
        try device.reset()
        try device.enableMemoryAndBusMaster()
        try expectHex(try device.readConfig(UInt16.self, offset: PCIConfig.vendorID), Edu.vendorID, "config vendor ID after reset")
        try expectHex(try device.readConfig(UInt16.self, offset: PCIConfig.deviceID), Edu.deviceID, "config device ID after reset")
        try expectHex(try device.eduRead(Edu.identification), Edu.identificationValue, "identification register after reset")
        try device.eduWrite(Edu.liveness, 0x2468_ace0)
        try expectHex(try device.eduRead(Edu.liveness), ~UInt32(0x2468_ace0), "liveness after reset")
    }

    static func hotResetInfo(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        let answer: Result<PCIHotResetInfo, VFIOError> = Result { () throws(VFIOError) in try device.hotResetInfo() }
        if case .failure(let error) = answer {
            if isUnsupported(error) { throw CheckSkipped("the transport has no hot reset (\(error))") }
            if error.errnoValue == ENODEV { throw CheckSkipped("the device has neither slot nor bus reset (\(error))") }
        }
        let info = try answer.get()
        try require(!info.devices.isEmpty, "hot-reset info lists no device")
        if let address = pciAddress(forDeviceName: device.name) {
            try require(info.devices.contains { $0.address == address },
                        "hot-reset info lists \(info.devices.map(\.address)), not the device itself (\(address))")
        }
    }

    static func iovaRanges(_ device: any VFIODevice, _ options: ConformanceOptions) async throws {
        let ranges = try device.validIOVARanges()
        try require(!ranges.isEmpty, "no valid IOVA range")
        for (previous, next) in zip(ranges, ranges.dropFirst()) {
            try require(previous.start < next.start, "IOVA ranges not sorted: \(previous) before \(next)")
            try require(previous.last < next.start, "IOVA ranges overlap: \(previous) and \(next)")
        }
        _ = try pickIOVAs(device, count: 2, size: SystemCall.pageSize)
    }

    // MARK: Leaks

    /// One open-to-close cycle touching everything that holds a descriptor or a mapping.
    static func leakCycle(_ open: DeviceFactory) async throws {
        let device = try await open()
        try device.enableMemoryAndBusMaster()
        try expectHex(try device.eduRead(Edu.identification), Edu.identificationValue, "identification register")
        let region = try device.regionInfo(bar0)
        if region.flags.contains(.mmap) {
            let mapping = try device.mapRegion(bar0, offset: 0, size: SystemCall.pageSize)
            try expectHex(MMIO.load32(mapping, at: 0), Edu.identificationValue, "identification register through mmap")
        }
        do {
            let scope = DMAScope(device)
            let iova = try pickIOVAs(device, count: 1, size: SystemCall.pageSize)[0]
            try scope.map(size: SystemCall.pageSize, iova: iova, access: .readWrite)
            try scope.unmap(iova: iova)
        }
        for index in [msi, intx] {
            let event = try EventFD()
            try device.setIRQs(.enableEventfds(index: index, [event.fd]))
            try device.setIRQs(.disable(index: index))
        }
        let event = try EventFD()
        let registered = Result { () throws(VFIOError) in
            try device.setIOEventfd(IOEventfd(width: .bits32, offset: region.offset + Edu.liveness, data: 1, fd: event.fd))
        }
        switch registered {
        case .success:
            try device.setIOEventfd(IOEventfd(width: .bits32, offset: region.offset + Edu.liveness, data: 1, fd: -1))
        case .failure(let error) where isUnsupported(error):
            break   // nothing to leak on a transport without ioeventfds
        case .failure(let error):
            throw error
        }
    }

    static func leaks(_ open: @escaping DeviceFactory, _ options: ConformanceOptions) async throws {
        try await leakCycle(open)   // warm-up: thread pools, the eventfd poller, caches
        let baseline = try await ProcessResources.settled()
        for _ in 0..<options.leakCycles { try await leakCycle(open) }
        // Another part of the process (a test running in parallel, a transport's thread
        // finishing its close) may hold something for a moment: take the best of a few
        // samples. A leak stays, and grows with the cycles.
        let first = ProcessResources.current()
        var added = first.descriptorsAdded(since: baseline)
        var mappings = first.mappings
        for _ in 0..<20 {
            if added.isEmpty && mappings <= baseline.mappings + mappingSlack { return }
            try await Task.sleep(for: .milliseconds(25))
            let now = ProcessResources.current()
            let nowAdded = now.descriptorsAdded(since: baseline)
            if nowAdded.count < added.count { added = nowAdded }
            mappings = min(mappings, now.mappings)
        }
        var found: [String] = []
        if !added.isEmpty {
            found.append("descriptors open beyond the baseline's \(baseline.descriptors.count): \(added.joined(separator: ", "))")
        }
        if mappings > baseline.mappings + mappingSlack {
            found.append("\(mappings) file mappings, baseline \(baseline.mappings)")
        }
        throw CheckFailed("after \(options.leakCycles) open/close cycles: \(found.joined(separator: "; "))")
    }


    /// File mappings the leak check tolerates above baseline: none (anonymous mappings,
    /// which the runtime's threads make and drop, are not counted).
    static let mappingSlack = 0
}
