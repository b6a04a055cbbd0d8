import CVFIO
import Glibc
import Synchronization
import VFIO
import VFIOSystem
import TestSupport

/// A plain-Swift stand-in for an edu device behind `VFIODevice`, only to test the
/// conformance suite's own logic: each `Fault` breaks one behaviour a check must catch.
/// No mmap, no ioeventfd, no hot reset (those checks are skipped against it).
final class FakeEdu: VFIODevice {

    // MARK: Migration: this stand-in does not migrate (ENOTTY, as the kernel answers).

    func setMigrationState(_ state: MigrationState) throws(VFIOError) -> (any MigrationDataStream)? {
        throw .errno("VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE", ENOTTY)
    }

    func startDirtyLogging(ranges: [DMALoggingRange], pageSize: UInt64) throws(VFIOError) -> UInt64 {
        throw .errno("VFIO_DEVICE_FEATURE_DMA_LOGGING_START", ENOTTY)
    }

    func stopDirtyLogging() throws(VFIOError) {
        throw .errno("VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP", ENOTTY)
    }

    func reportDirtyPages(iova: UInt64, length: UInt64, pageSize: UInt64) throws(VFIOError) -> [UInt64] {
        throw .errno("VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT", ENOTTY)
    }

    struct Faults: OptionSet, Sendable {
        let rawValue: Int
        /// Liveness reads back what was written, not its inverse.
        static let livenessNotInverted = Faults(rawValue: 1 << 0)
        /// No VFIO_DEVICE_FLAGS_RESET; `reset()` is unsupported.
        static let noReset = Faults(rawValue: 1 << 1)
        /// Every open leaks a descriptor.
        static let leaksDescriptor = Faults(rawValue: 1 << 2)
        /// DMA still reaches memory after it was unmapped.
        static let dmaIgnoresUnmap = Faults(rawValue: 1 << 3)
        /// MSI never signals its eventfd.
        static let deafMSI = Faults(rawValue: 1 << 4)
        /// Every open maps a memfd page and never unmaps it (the descriptor is closed).
        static let leaksMapping = Faults(rawValue: 1 << 5)
    }

    private struct Mapping {
        let iova: UInt64
        let size: Int
        let memory: any DMAMemory
        let offset: Int
        func contains(_ address: UInt64, count: Int) -> Bool {
            address >= iova && address + UInt64(count) <= iova + UInt64(size)
        }
        func pointer(_ address: UInt64) -> UnsafeMutableRawPointer {
            memory.baseAddress + offset + Int(address - iova)
        }
    }

    private struct State {
        var config = [UInt8](repeating: 0, count: 256)
        var liveness: UInt32 = 0
        var factorial: UInt32 = 0
        var status: UInt32 = 0
        var irqStatus: UInt32 = 0
        var dmaSource: UInt64 = 0, dmaDestination: UInt64 = 0, dmaCount: UInt64 = 0, dmaCommand: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        var mappings: [Mapping] = []
        var everMapped: [Mapping] = []
        var msi: Int32 = -1
        var intx: Int32 = -1
        var intxMasked = false
    }

    let name: String
    let faults: Faults
    private let state = Mutex(State())

    init(name: String = "fake:edu", faults: Faults = []) {
        self.name = name
        self.faults = faults
        if faults.contains(.leaksDescriptor) { _ = open("/dev/null", O_RDONLY) }
        if faults.contains(.leaksMapping) {
            let fd = cvfio_memfd_create("conformance-leak", 0)
            _ = ftruncate(fd, 4096)
            _ = mmap(nil, 4096, PROT_READ, MAP_SHARED, fd, 0)
            _ = close(fd)
        }
        state.withLock { s in
            s.config[0] = 0x34; s.config[1] = 0x12; s.config[2] = 0xe8; s.config[3] = 0x11
        }
    }

    deinit {
        state.withLock { s in
            if s.msi >= 0 { close(s.msi) }
            if s.intx >= 0 { close(s.intx) }
        }
    }

    func deviceInfo() throws(VFIOError) -> DeviceInfo {
        DeviceInfo(flags: faults.contains(.noReset) ? [.pci] : [.pci, .reset], numRegions: 9, numIRQs: 5)
    }

    func regionInfo(_ index: UInt32) throws(VFIOError) -> RegionInfo {
        switch index {
        case 0: return RegionInfo(flags: [.read, .write], index: 0, size: 1 << 20, offset: 0)
        case 7: return RegionInfo(flags: [.read, .write], index: 7, size: 256, offset: 7 << 40)
        case 1..<9: return RegionInfo(flags: [], index: index, size: 0, offset: UInt64(index) << 40)
        default: throw .errno("VFIO_DEVICE_GET_REGION_INFO", EINVAL)
        }
    }

    func irqInfo(_ index: UInt32) throws(VFIOError) -> IRQInfo {
        switch index {
        case 0: return IRQInfo(flags: [.eventfd, .maskable, .automasked], index: 0, count: 1)
        case 1: return IRQInfo(flags: [.eventfd, .noResize], index: 1, count: 1)
        case 2..<5: return IRQInfo(flags: [], index: index, count: 0)
        default: throw .errno("VFIO_DEVICE_GET_IRQ_INFO", EINVAL)
        }
    }

    func read(region index: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        switch index {
        case 7:
            guard offset + UInt64(buffer.count) <= 256 else { throw .errno("pread", EINVAL) }
            state.withLock { s in
                for i in 0..<buffer.count { buffer[i] = s.config[Int(offset) + i] }
            }
        case 0:
            guard buffer.count == 4 else {
                for i in 0..<buffer.count { buffer[i] = 0xff }
                return
            }
            let value = state.withLock { s -> UInt32 in
                switch offset {
                case 0x00: return 0x0100_00ed
                case 0x04: return s.liveness
                case 0x08: return s.factorial
                case 0x20: return s.status
                case 0x24: return s.irqStatus
                case 0x80: return UInt32(truncatingIfNeeded: s.dmaSource)
                case 0x88: return UInt32(truncatingIfNeeded: s.dmaDestination)
                case 0x90: return UInt32(truncatingIfNeeded: s.dmaCount)
                case 0x98: return UInt32(truncatingIfNeeded: s.dmaCommand)
                default: return 0xffff_ffff
                }
            }
            buffer.storeBytes(of: value.littleEndian, as: UInt32.self)
        default:
            throw .errno("pread", EINVAL)
        }
    }

    func write(region index: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        switch index {
        case 7:
            guard offset + UInt64(buffer.count) <= 256 else { throw .errno("pwrite", EINVAL) }
            state.withLock { s in
                for i in 0..<buffer.count where offset + UInt64(i) >= 4 { s.config[Int(offset) + i] = buffer[i] }
            }
        case 0:
            guard buffer.count == 4 else { return }
            let value = UInt32(littleEndian: buffer.loadUnaligned(as: UInt32.self))
            state.withLock { s in
                switch offset {
                case 0x04: s.liveness = faults.contains(.livenessNotInverted) ? value : ~value
                case 0x08:
                    s.factorial = value == 0 ? 1 : (1...value).reduce(1) { $0 &* $1 }
                    if s.status & 0x80 != 0 { raise(&s, 0x1) }
                case 0x20: s.status = value & 0x80
                case 0x60: raise(&s, value)
                case 0x64: s.irqStatus &= ~value
                case 0x80 where s.dmaCommand & 1 == 0: s.dmaSource = UInt64(value)
                case 0x88 where s.dmaCommand & 1 == 0: s.dmaDestination = UInt64(value)
                case 0x90 where s.dmaCommand & 1 == 0: s.dmaCount = UInt64(value)
                case 0x98 where value & 1 != 0 && s.dmaCommand & 1 == 0:
                    s.dmaCommand = UInt64(value)
                    runDMA(&s)
                default: break
                }
            }
        default:
            throw .errno("pwrite", EINVAL)
        }
    }

    private func signal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }

    private func raise(_ s: inout State, _ value: UInt32) {
        s.irqStatus |= value
        guard s.irqStatus != 0 else { return }
        if s.msi >= 0 {
            if !faults.contains(.deafMSI) { signal(s.msi) }
        } else if s.intx >= 0 && !s.intxMasked {
            signal(s.intx)
            s.intxMasked = true
        }
    }

    private func runDMA(_ s: inout State) {
        let count = Int(s.dmaCount)
        let toRAM = s.dmaCommand & 2 != 0
        let ram = toRAM ? s.dmaDestination : s.dmaSource
        let device = toRAM ? s.dmaSource : s.dmaDestination
        let pool = faults.contains(.dmaIgnoresUnmap) ? s.everMapped : s.mappings
        if device >= 0x40000, device + UInt64(count) <= 0x41000,
           let mapping = pool.first(where: { $0.contains(ram, count: count) }) {
            let pointer = mapping.pointer(ram)
            let start = Int(device - 0x40000)
            if toRAM {
                s.buffer.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress! + start, byteCount: count) }
            } else {
                s.buffer.withUnsafeMutableBytes { ($0.baseAddress! + start).copyMemory(from: pointer, byteCount: count) }
            }
        }
        s.dmaCommand &= ~1
        if s.dmaCommand & 4 != 0 { raise(&s, 0x100) }
    }

    func mapRegion(_ index: UInt32, offset: UInt64, size: Int) throws(VFIOError) -> any MappedRegion {
        throw .unsupported("mmap", "the fake has no mmap-able region")
    }

    func setIRQs(_ set: IRQSet) throws(VFIOError) {
        try state.withLock { s throws(VFIOError) in
            switch (set.index, set.action, set.data) {
            case (0, .trigger, .eventfds(let fds)), (1, .trigger, .eventfds(let fds)):
                guard fds.count == 1 else { throw .errno("VFIO_DEVICE_SET_IRQS", EINVAL) }
                let copy = fds[0] >= 0 ? dup(fds[0]) : -1
                if set.index == 0 {
                    if s.intx >= 0 { close(s.intx) }
                    s.intx = copy
                    s.intxMasked = false
                } else {
                    if s.msi >= 0 { close(s.msi) }
                    s.msi = copy
                }
            case (0, .trigger, .none(count: 0)):
                if s.intx >= 0 { close(s.intx) }
                s.intx = -1
            case (1, .trigger, .none(count: 0)):
                if s.msi >= 0 { close(s.msi) }
                s.msi = -1
            case (0, .unmask, .none(count: 1)):
                s.intxMasked = false
                if s.irqStatus != 0 && s.intx >= 0 && s.msi < 0 {
                    signal(s.intx)
                    s.intxMasked = true
                }
            case (0, .mask, .none(count: 1)):
                s.intxMasked = true
            default:
                throw .errno("VFIO_DEVICE_SET_IRQS", EINVAL)
            }
        }
    }

    func reset() throws(VFIOError) {
        guard !faults.contains(.noReset) else { throw .unsupported("VFIO_DEVICE_RESET", "no reset") }
        state.withLock { s in
            s.liveness = 0
            s.status = 0
            s.irqStatus = 0
        }
    }

    func feature(_ request: DeviceFeature) throws(VFIOError) -> DeviceFeaturePayload? {
        throw .errno("VFIO_DEVICE_FEATURE", ENOTTY)
    }

    func validIOVARanges() throws(VFIOError) -> [IOVARange] {
        [try IOVARange(start: 0, last: 0xfedf_ffff), try IOVARange(start: 0xfef0_0000, last: (1 << 39) - 1)]
    }

    func mapDMA(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError) {
        let mapping = Mapping(iova: iova, size: size, memory: memory, offset: offset)
        try state.withLock { s throws(VFIOError) in
            if s.mappings.contains(where: { $0.iova < iova + UInt64(size) && iova < $0.iova + UInt64($0.size) }) {
                throw .errno("VFIO_IOMMU_MAP_DMA", EEXIST)
            }
            s.mappings.append(mapping)
            s.everMapped.append(mapping)
        }
    }

    func unmapDMA(iova: UInt64, size: UInt64) throws(VFIOError) {
        state.withLock { s in s.mappings.removeAll { $0.iova == iova && UInt64($0.size) == size } }
    }

    func hotResetInfo() throws(VFIOError) -> PCIHotResetInfo {
        throw .unsupported("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", "the fake has no hot reset")
    }

    func setIOEventfd(_ ioeventfd: IOEventfd) throws(VFIOError) {
        throw .unsupported("VFIO_DEVICE_IOEVENTFD", "the fake has no ioeventfd")
    }
}
