import Synchronization
import VFIO

/// A project-specific test device showing the rest of the kit: a memory-backed, mmap-able
/// BAR with register space carved out of it, MSI-X with several vectors, and a PCI
/// Express function with an extended configuration space.
///
/// IDs 1234:5f10 (vendor 0x1234 as QEMU's `edu` uses it; the device id is this project's
/// own, registered nowhere — use it only with this model), class 0xff0000 (unassigned),
/// revision 1. Capabilities: PM, MSI-X (`vectorCount` vectors), PCI Express v2 endpoint.
/// No INTx (interrupt pin 0).
///
/// **BAR0** (64-bit prefetchable memory, 64 KiB, memory-backed): the server provides the
/// memory. Page 0 is register space served by callbacks; pages 1...15 (offset 0x1000,
/// size 0xF000) form one sparse-mmap area the client may map, and accesses there are
/// served from the memory without the model. Registers (4-byte aligned accesses, others
/// fail with `EINVAL`; offsets without a register read 0 and ignore writes):
/// - 0x000 (RO) magic 0x4b465653 ("SVFK").
/// - 0x004 (WO) doorbell: writing N raises MSI-X vector N (N < `vectorCount`, else ignored).
/// - 0x008 (RW) scratch.
/// - 0x00C (RO) number of doorbell writes.
/// - 0x010 (RO) checksum: the sum of the bytes of the mmap area, modulo 2^32 (the model
///   reads the server's memory).
/// - 0x014 (WO) fill: sets every byte of the mmap area to the low byte of the value.
/// - 0x800 MSI-X table (16 bytes per vector), 0xC00 PBA: any width.
///
/// **Migration** (`MigratableDevice`, identity `"memory-backed"` version 1; STOP_COPY,
/// P2P, PRE_COPY): the saved state is the mmap area's contents (60 KiB, first, so that
/// pre-copy deltas carry only the blocks written since), the scratch and doorbell-count
/// registers, the vector count (a destination with another count refuses the state) and
/// the config space with the MSI-X table. While stopped, register writes are ignored;
/// the client's stores to the mmapped area cannot be stopped by the model (the user is
/// told not to make them in STOP).
public final class MemoryBackedDevice: DeviceModel, MigratableDevice {
    public static let vendorID: UInt16 = 0x1234
    public static let deviceID: UInt16 = 0x5f10
    public static let magic: UInt32 = 0x4b46_5653
    public static let barSize: UInt64 = 0x10000
    public static let pageSize: UInt64 = 0x1000
    public static let mmapArea = SparseMmapArea(offset: 0x1000, size: 0xF000)
    public static let msixTableOffset: UInt32 = 0x800
    public static let msixPBAOffset: UInt32 = 0xC00

    public enum Register {
        public static let magic: UInt64 = 0x000
        public static let doorbell: UInt64 = 0x004
        public static let scratch: UInt64 = 0x008
        public static let doorbellCount: UInt64 = 0x00C
        public static let checksum: UInt64 = 0x010
        public static let fill: UInt64 = 0x014
    }

    private struct State: Sendable {
        var config: PCIConfigSpace
        var scratch: UInt32 = 0
        var doorbells: UInt32 = 0
        var runState = MigrationRunState.running
    }

    public let vectorCount: Int
    private let state: Mutex<State>
    private let contextBox = Mutex<(any DeviceContext)?>(nil)

    public let deviceFlags: DeviceInfoFlags = [.pci, .reset]
    public let regions: [RegionDescriptor]
    public let irqs: [IRQDescriptor]

    public init(vectorCount: Int = 8) {
        precondition((1...64).contains(vectorCount))
        self.vectorCount = vectorCount
        var config = PCIConfigSpace(
            identity: .init(vendorID: Self.vendorID, deviceID: Self.deviceID, revision: 1, classCode: 0xFF_0000,
                            subsystemVendorID: Self.vendorID, subsystemID: Self.deviceID, interruptPin: 0),
            size: .extended)
        config.setBAR(0, .memory64(size: Self.barSize, prefetchable: true))
        config.addPowerManagement()
        config.addMSIX(vectors: vectorCount, tableBAR: 0, tableOffset: Self.msixTableOffset, pbaBAR: 0, pbaOffset: Self.msixPBAOffset)
        config.addPCIExpress()
        state = Mutex(State(config: config))
        regions = PCIModelSupport.regions(
            bars: [0: RegionDescriptor(index: 0, size: Self.barSize, flags: [.read, .write],
                                       backing: .memory(mmapAreas: [Self.mmapArea]))],
            configSize: PCIConfigSpace.Size.extended.rawValue)
        irqs = IRQDescriptor.pci(intx: false, msiVectors: 0, msixVectors: UInt32(vectorCount))
    }

    public func attach(_ context: any DeviceContext) {
        contextBox.withLock { $0 = context }
    }

    private var context: (any DeviceContext)? { contextBox.withLock { $0 } }

    private func deliver(_ signals: [IRQSignal]) {
        guard !signals.isEmpty, let context else { return }
        for signal in signals { context.triggerIRQ(index: signal.index, vector: signal.vector) }
    }

    /// The mmap area's memory, when the server provided the region's memory.
    private var areaMemory: UnsafeMutableRawBufferPointer? {
        guard let memory = context?.memory(forRegion: PCIRegionIndex.bar0.rawValue),
              UInt64(memory.count) >= Self.mmapArea.offset + Self.mmapArea.size else { return nil }
        return UnsafeMutableRawBufferPointer(rebasing: memory.bytes[Int(Self.mmapArea.offset)..<Int(Self.mmapArea.offset + Self.mmapArea.size)])
    }

    public func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        switch region {
        case PCIRegionIndex.config.rawValue:
            try state.withLock { (s: inout State) throws(VFIOError) in try s.config.read(offset: offset, into: buffer) }
        case PCIRegionIndex.bar0.rawValue:
            let handled = try state.withLock({ (s: inout State) throws(VFIOError) -> Bool in
                guard s.config.isMSIXAccess(bar: 0, offset: offset, count: buffer.count) else { return false }
                try s.config.readMSIX(bar: 0, offset: offset, into: buffer)
                return true
            })
            if handled { return }
            if offset >= Self.mmapArea.offset {
                // Outside the register page but not wholly inside the area (DeviceAccess
                // serves whole-area accesses from memory): serve from memory when there is.
                guard let memory = context?.memory(forRegion: region) else { throw .errno("BAR0 read", DeviceErrno.EINVAL) }
                try memory.read(at: offset, into: buffer)
                return
            }
            guard buffer.count == 4, offset % 4 == 0, offset + 4 <= Self.pageSize else {
                throw .errno("BAR0 read", DeviceErrno.EINVAL)
            }
            let value: UInt32
            switch offset {
            case Register.magic: value = Self.magic
            case Register.scratch: value = state.withLock { $0.scratch }
            case Register.doorbellCount: value = state.withLock { $0.doorbells }
            case Register.checksum:
                var sum: UInt32 = 0
                if let area = areaMemory { for byte in area { sum &+= UInt32(byte) } }
                value = sum
            default: value = 0
            }
            PCIModelSupport.store(UInt64(value), buffer)
        default:
            throw .errno("read", DeviceErrno.EINVAL)
        }
    }

    public func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        switch region {
        case PCIRegionIndex.config.rawValue:
            deliver(try state.withLock { (s: inout State) throws(VFIOError) -> [IRQSignal] in
                try s.config.write(offset: offset, from: buffer)
            })
        case PCIRegionIndex.bar0.rawValue:
            if let signals = try state.withLock({ (s: inout State) throws(VFIOError) -> [IRQSignal]? in
                guard s.config.isMSIXAccess(bar: 0, offset: offset, count: buffer.count) else { return nil }
                return try s.config.writeMSIX(bar: 0, offset: offset, from: buffer)
            }) {
                deliver(signals)
                return
            }
            if offset >= Self.mmapArea.offset {
                guard let memory = context?.memory(forRegion: region) else { throw .errno("BAR0 write", DeviceErrno.EINVAL) }
                try memory.write(at: offset, from: buffer)
                return
            }
            guard buffer.count == 4, offset % 4 == 0, offset + 4 <= Self.pageSize else {
                throw .errno("BAR0 write", DeviceErrno.EINVAL)
            }
            let value = UInt32(truncatingIfNeeded: PCIModelSupport.load(buffer))
            if state.withLock({ $0.runState == .stopped }) { return }  // a stopped device changes nothing
            switch offset {
            case Register.doorbell:
                deliver(state.withLock { s -> [IRQSignal] in
                    s.doorbells &+= 1
                    return Int(value) < vectorCount ? s.config.raise(vector: Int(value)) : []
                })
            case Register.scratch:
                state.withLock { $0.scratch = value }
            case Register.fill:
                if let area = areaMemory { area.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: value)) }
            default:
                break
            }
        default:
            throw .errno("write", DeviceErrno.EINVAL)
        }
    }

    public func reset() throws(VFIOError) {
        state.withLock { s in
            s.config.reset()
            s.scratch = 0
            s.doorbells = 0
        }
    }

    public func irqsConfigured(index: UInt32, enabledVectors: UInt32) {
        deliver(state.withLock { $0.config.clientConfiguredIRQs(index: index, enabledVectors: enabledVectors) })
    }

    public func irqMaskChanged(index: UInt32, vector: UInt32, masked: Bool) {
        deliver(state.withLock { $0.config.clientMaskChanged(index: index, vector: vector, masked: masked) })
    }

    /// A copy of the configuration space.
    public var configSpace: PCIConfigSpace { state.withLock { $0.config } }

    // MARK: Migration

    public let migrationFeatures: MigrationFeatures = [.stopCopy, .p2p, .preCopy]
    public let migrationIdentity = MigrationIdentity(name: "memory-backed", version: 1)
    public var migration: (any MigratableDevice)? { self }

    public func setMigrationRunState(_ runState: MigrationRunState) throws(VFIOError) {
        state.withLock { $0.runState = runState }
    }

    /// The memory area and about 512 bytes of registers and config space.
    public var stateSizeHint: Int? { Int(Self.mmapArea.size) + 512 }

    public func saveState() throws(VFIOError) -> [UInt8] {
        var w = ByteWriter(capacity: Int(Self.mmapArea.size) + 512)
        if let area = areaMemory {
            w.u32(UInt32(area.count))
            w.append(contentsOf: UnsafeRawBufferPointer(area))
        } else {
            w.u32(0)
        }
        state.withLock { s in
            w.u32(s.scratch)
            w.u32(s.doorbells)
            w.u32(UInt32(vectorCount))
            s.config.saveMigrationState(into: &w)
        }
        return w.bytes
    }

    public func loadState(_ bytes: [UInt8], version: UInt32) throws(VFIOError) {
        let what = "memory-backed state"
        guard version == 1 else { throw .malformed(what, "version \(version) is not supported (this model reads version 1)") }
        var r = ByteReader(bytes, context: what)
        let areaLength = Int(try r.u32())
        let area = areaMemory
        guard areaLength == 0 || areaLength == Int(Self.mmapArea.size) else {
            throw .malformed(what, "memory area of \(areaLength) bytes, this device has \(Self.mmapArea.size)")
        }
        guard areaLength == 0 || area != nil else {
            throw .malformed(what, "the state holds the BAR0 memory but the server provided none for it")
        }
        let contents = try r.bytes(areaLength)
        let scratch = try r.u32()
        let doorbells = try r.u32()
        let vectors = try r.u32()
        guard vectors == UInt32(vectorCount) else {
            throw .malformed(what, "saved with \(vectors) MSI-X vectors, this device has \(vectorCount)")
        }
        var config = configSpace
        r.context = "memory-backed state (config space)"
        try config.loadMigrationState(from: &r)
        guard r.remaining == 0 else { throw .malformed(what, "\(r.remaining) byte(s) after the config space") }
        if let area, areaLength > 0 {
            contents.withUnsafeBytes { area.copyMemory(from: $0) }
        }
        state.withLock { s in
            s.scratch = scratch
            s.doorbells = doorbells
            s.config = config
        }
    }
}
