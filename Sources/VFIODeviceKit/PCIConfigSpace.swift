import VFIO

/// A PCI function's configuration space with a type-0 header, BARs, a capability list
/// (PM, MSI, MSI-X, PCI Express) and the interrupt logic that goes with them: INTx with
/// the Status register's Interrupt Status bit, MSI and MSI-X with masking and pending
/// bits. It is a value: a model keeps it inside its own `Mutex` and delivers the
/// `IRQSignal`s that calls return through its `DeviceContext` after releasing the lock.
///
/// **Size.** `.conventional` is the 256-byte space of a PCI device (QEMU's `edu` is one);
/// `.extended` is the 4 KiB space of a PCI Express function. The extended area holds no
/// extended capabilities: its first header reads 0, which the spec defines as "no
/// extended capabilities". A PCI Express capability is only allowed with `.extended`.
///
/// **Accesses.** Reads and writes of any length at any offset inside the space are served
/// byte by byte, so unaligned and register-crossing accesses behave as the sequence of
/// their bytes would. Each byte has a writable mask and a write-1-to-clear mask; bits in
/// neither are read-only and keep their value.
///
/// **Interrupts.** Which IRQ index the client enabled with `VFIO_DEVICE_SET_IRQS` (told
/// through `clientConfiguredIRQs`) decides how `raise(vector:)` is delivered, with VFIO's
/// index numbers: MSI-X (2) → the MSI-X path, MSI (1) → the MSI path, otherwise INTx (0).
/// The enable bits of the MSI and MSI-X capabilities do not decide: a userspace driver
/// on vfio-pci never writes them (the kernel does), while QEMU writes them through as
/// well as calling SET_IRQS. Masks do apply: MSI per-vector mask bits, the MSI-X Function
/// Mask and the per-vector Mask bit of the MSI-X table make a raised vector pend (MSI
/// Pending Bits / MSI-X PBA) until it is unmasked, and it is delivered then. Message
/// interrupts need Bus Master Enable (Command bit 2): without it an unmasked vector is
/// dropped (counted in `droppedMessages`), as a real function may not write memory.
///
/// MSI-X table entries come out of reset **unmasked** here by default, unlike the spec's
/// masked reset value: VFIO clients emulate the table themselves (QEMU never forwards the
/// guest's table writes; a userspace driver on vfio-pci never touches it) and mask through
/// SET_IRQS, so a table that starts masked would never deliver anything. Pass
/// `msixVectorsMaskedAtReset: true` to `addMSIX` for the spec's behaviour.
public struct PCIConfigSpace: Sendable {
    /// The size of the space.
    public enum Size: Int, Sendable {
        /// 256 bytes (conventional PCI).
        case conventional = 256
        /// 4096 bytes (PCI Express extended configuration space).
        case extended = 4096
    }

    /// A base address register's kind.
    public enum BAR: Sendable, Hashable {
        /// A 32-bit memory BAR; `size` a power of two, at least 16.
        case memory32(size: UInt32, prefetchable: Bool = false)
        /// A 64-bit memory BAR using this register and the next; `size` a power of two, at
        /// least 16.
        case memory64(size: UInt64, prefetchable: Bool = false)
        /// An I/O BAR; `size` a power of two, 4 to 256.
        case io(size: UInt32)

        public var size: UInt64 {
            switch self {
            case .memory32(let size, _): return UInt64(size)
            case .memory64(let size, _): return size
            case .io(let size): return UInt64(size)
            }
        }
    }

    /// The identity fields of the header.
    public struct Identity: Sendable, Hashable {
        public var vendorID: UInt16
        public var deviceID: UInt16
        public var revision: UInt8
        /// The 24-bit class code: base class << 16 | subclass << 8 | programming interface.
        public var classCode: UInt32
        public var subsystemVendorID: UInt16
        public var subsystemID: UInt16
        /// Interrupt Pin: 0 = no INTx, 1 = INTA# ... 4 = INTD#.
        public var interruptPin: UInt8

        public init(vendorID: UInt16, deviceID: UInt16, revision: UInt8, classCode: UInt32,
                    subsystemVendorID: UInt16 = 0, subsystemID: UInt16 = 0, interruptPin: UInt8 = 1) {
            self.vendorID = vendorID
            self.deviceID = deviceID
            self.revision = revision
            self.classCode = classCode
            self.subsystemVendorID = subsystemVendorID
            self.subsystemID = subsystemID
            self.interruptPin = interruptPin
        }
    }

    /// Register offsets of the type-0 header and capability ids.
    public enum Register {
        public static let vendorID = 0x00
        public static let deviceID = 0x02
        public static let command = 0x04
        public static let status = 0x06
        public static let revisionID = 0x08
        public static let classCode = 0x09
        public static let cacheLineSize = 0x0C
        public static let latencyTimer = 0x0D
        public static let headerType = 0x0E
        public static let bar0 = 0x10
        public static let subsystemVendorID = 0x2C
        public static let subsystemID = 0x2E
        public static let expansionROM = 0x30
        public static let capabilitiesPointer = 0x34
        public static let interruptLine = 0x3C
        public static let interruptPin = 0x3D
    }

    /// Command register bits.
    public struct Command: OptionSet, Sendable, Hashable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        public static let ioSpace = Command(rawValue: 1 << 0)
        public static let memorySpace = Command(rawValue: 1 << 1)
        public static let busMaster = Command(rawValue: 1 << 2)
        public static let parityErrorResponse = Command(rawValue: 1 << 6)
        public static let serrEnable = Command(rawValue: 1 << 8)
        public static let interruptDisable = Command(rawValue: 1 << 10)
        /// The bits a function implements here (the others read 0).
        public static let writable: Command = [.ioSpace, .memorySpace, .busMaster, .parityErrorResponse, .serrEnable, .interruptDisable]
    }

    /// Status register bits.
    public struct Status: OptionSet, Sendable, Hashable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// Interrupt Status (bit 3): INTx is asserted (whatever Interrupt Disable says).
        public static let interruptStatus = Status(rawValue: 1 << 3)
        /// Capabilities List (bit 4).
        public static let capabilitiesList = Status(rawValue: 1 << 4)
        /// The error bits, write-1-to-clear.
        public static let errorBits = Status(rawValue: 0xF900)
    }

    /// Capability ids.
    public enum CapabilityID {
        public static let powerManagement: UInt8 = 0x01
        public static let msi: UInt8 = 0x05
        public static let pciExpress: UInt8 = 0x10
        public static let msix: UInt8 = 0x11
    }

    // MARK: Storage

    public let size: Size
    private var bytes: [UInt8]
    private var writableMask: [UInt8]
    private var clearOnWriteMask: [UInt8]
    /// The bytes as built, restored by `reset()`.
    private var resetBytes: [UInt8]
    private var lastNextPointer = Register.capabilitiesPointer
    private var nextFree = 0x40

    /// The BARs, by number (a 64-bit BAR occupies its number and the next).
    public private(set) var bars: [Int: BAR] = [:]
    /// The capability list in order: (id, offset).
    public private(set) var capabilities: [(id: UInt8, offset: Int)] = []

    private struct MSI: Sendable {
        var offset: Int
        var vectors: Int
        var perVectorMasking: Bool
        var pending: UInt32 = 0
        var maskOffset: Int { offset + 0x10 }
        var pendingOffset: Int { offset + 0x14 }
    }

    private struct MSIX: Sendable {
        var offset: Int
        var vectors: Int
        var tableBAR: Int
        var tableOffset: UInt64
        var pbaBAR: Int
        var pbaOffset: UInt64
        var maskedAtReset: Bool
        var table: [UInt8]
        var pending: [UInt64]
        var tableSize: UInt64 { UInt64(vectors) * 16 }
        var pbaSize: UInt64 { UInt64((vectors + 63) / 64) * 8 }

        func vectorMasked(_ v: Int) -> Bool { table[v * 16 + 12] & 1 != 0 }
        func isPending(_ v: Int) -> Bool { pending[v / 64] >> UInt64(v % 64) & 1 != 0 }
        mutating func setPending(_ v: Int, _ on: Bool) {
            if on { pending[v / 64] |= 1 << UInt64(v % 64) } else { pending[v / 64] &= ~(1 << UInt64(v % 64)) }
        }
        mutating func resetTable() {
            table = [UInt8](repeating: 0, count: vectors * 16)
            if maskedAtReset { for v in 0..<vectors { table[v * 16 + 12] = 1 } }
            pending = [UInt64](repeating: 0, count: (vectors + 63) / 64)
        }
    }

    private var msi: MSI?
    private var msix: MSIX?
    private var pmOffset: Int?
    private var pcieOffset: Int?

    // Interrupt state.
    /// True while the device asserts INTx.
    public private(set) var intxAsserted = false
    /// True while the client has INTx masked (VFIO automask after a trigger, or an
    /// explicit `ACTION_MASK`); an unmask re-signals a still-asserted line.
    public private(set) var intxMaskedByClient = false
    /// VFIO's INTx automasking (`VFIO_IRQ_INFO_AUTOMASKED`): after signalling INTx the
    /// line counts as masked until the client unmasks it. Default true, as vfio-pci does
    /// and QEMU expects (it unmasks at the guest's EOI).
    public var intxAutomask = true
    /// Vectors with an eventfd, per index, as the client configured them (INTx, MSI,
    /// MSI-X only; other indices such as ERR and REQ do not carry device interrupts).
    private var clientVectors: [UInt32] = [0, 0, 0]
    /// The interrupt mode the client selected (`PCIIRQIndex` raw value: MSI-X, else MSI,
    /// else INTx, whichever has vectors enabled; vfio-pci enables only one at a time), or
    /// `nil` when none is enabled.
    public var activeIRQIndex: UInt32? {
        if clientVectors[2] > 0 { return PCIIRQIndex.msix.rawValue }
        if clientVectors[1] > 0 { return PCIIRQIndex.msi.rawValue }
        if clientVectors[0] > 0 { return PCIIRQIndex.intx.rawValue }
        return nil
    }
    /// Message interrupts dropped because Bus Master Enable was off.
    public private(set) var droppedMessages = 0

    // MARK: Building

    /// A header with `identity`, Command 0, no BARs and no capabilities.
    public init(identity: Identity, size: Size = .extended) {
        self.size = size
        bytes = [UInt8](repeating: 0, count: size.rawValue)
        writableMask = [UInt8](repeating: 0, count: size.rawValue)
        clearOnWriteMask = [UInt8](repeating: 0, count: size.rawValue)
        resetBytes = []
        put16(Register.vendorID, identity.vendorID)
        put16(Register.deviceID, identity.deviceID)
        bytes[Register.revisionID] = identity.revision
        bytes[0x09] = UInt8(truncatingIfNeeded: identity.classCode)
        bytes[0x0A] = UInt8(truncatingIfNeeded: identity.classCode >> 8)
        bytes[0x0B] = UInt8(truncatingIfNeeded: identity.classCode >> 16)
        put16(Register.subsystemVendorID, identity.subsystemVendorID)
        put16(Register.subsystemID, identity.subsystemID)
        bytes[Register.interruptPin] = identity.interruptPin
        setWritable16(Register.command, Command.writable.rawValue)
        setClearOnWrite16(Register.status, Status.errorBits.rawValue)
        writableMask[Register.cacheLineSize] = 0xFF
        writableMask[Register.interruptLine] = 0xFF
        resetBytes = bytes
    }

    /// Declares BAR `number` (0...5; a 64-bit BAR also takes `number + 1`, so 0...4).
    /// The address bits at or above the size are writable, the rest read-only, which is
    /// the sizing protocol: write all-ones, read back `~(size - 1)` plus the type bits.
    /// - Precondition: a valid number, a free register, a power-of-two size in range.
    public mutating func setBAR(_ number: Int, _ bar: BAR) {
        let offset = Register.bar0 + 4 * number
        switch bar {
        case .memory32(let size, let prefetchable):
            precondition((0...5).contains(number) && bars[number] == nil, "BAR \(number) not free")
            precondition(size >= 16 && size.nonzeroBitCount == 1, "BAR size must be a power of two >= 16")
            put32(offset, prefetchable ? 0x8 : 0x0)
            setWritable32(offset, ~(size - 1) & ~0xF)
        case .memory64(let size, let prefetchable):
            precondition((0...4).contains(number) && bars[number] == nil && bars[number + 1] == nil, "BARs \(number), \(number + 1) not free")
            precondition(size >= 16 && size.nonzeroBitCount == 1, "BAR size must be a power of two >= 16")
            put32(offset, (prefetchable ? 0x8 : 0x0) | 0x4)
            let mask = ~(size - 1)
            setWritable32(offset, UInt32(truncatingIfNeeded: mask) & ~0xF)
            setWritable32(offset + 4, UInt32(truncatingIfNeeded: mask >> 32))
        case .io(let size):
            precondition((0...5).contains(number) && bars[number] == nil, "BAR \(number) not free")
            precondition(size >= 4 && size <= 256 && size.nonzeroBitCount == 1, "I/O BAR size must be a power of two in 4...256")
            put32(offset, 0x1)
            setWritable32(offset, ~(size - 1) & ~0x3)
        }
        bars[number] = bar
        resetBytes = bytes
    }

    /// Adds a capability of `length` bytes (id and next pointer included) at the next free
    /// DWORD-aligned offset, links it and sets the Capabilities List status bit.
    private mutating func appendCapability(id: UInt8, length: Int) -> Int {
        let offset = nextFree
        precondition(offset + length <= 0x100, "capabilities do not fit in the first 256 bytes")
        bytes[offset] = id
        bytes[offset + 1] = 0
        bytes[lastNextPointer] = UInt8(offset)
        lastNextPointer = offset + 1
        nextFree = (offset + length + 3) & ~3
        put16(Register.status, get16(Register.status) | Status.capabilitiesList.rawValue)
        capabilities.append((id, offset))
        return offset
    }

    /// Adds a Power Management capability (version 3, D0 and D3hot only, No_Soft_Reset
    /// clear). PowerState (PMCSR bits 1:0) is writable; writes of the unsupported D1/D2
    /// are ignored. Returns its offset.
    @discardableResult
    public mutating func addPowerManagement() -> Int {
        precondition(pmOffset == nil, "one PM capability")
        let offset = appendCapability(id: CapabilityID.powerManagement, length: 8)
        put16(offset + 2, 0x0003)  // PMC: version 3
        setWritable16(offset + 4, 0x0103)  // PowerState, PME_En
        setClearOnWrite16(offset + 4, 0x8000)  // PME_Status
        pmOffset = offset
        resetBytes = bytes
        return offset
    }

    /// Adds an MSI capability with a 64-bit address and `vectors` (1, 2, 4, ... 32)
    /// vectors, with or without per-vector masking. Returns its offset.
    @discardableResult
    public mutating func addMSI(vectors: Int = 1, perVectorMasking: Bool = true) -> Int {
        precondition(msi == nil, "one MSI capability")
        precondition(vectors >= 1 && vectors <= 32 && vectors.nonzeroBitCount == 1, "MSI vectors: a power of two, 1...32")
        let offset = appendCapability(id: CapabilityID.msi, length: perVectorMasking ? 24 : 14)
        let mmc = UInt16(vectors.trailingZeroBitCount)
        put16(offset + 2, mmc << 1 | 1 << 7 | (perVectorMasking ? 1 << 8 : 0))
        setWritable16(offset + 2, 0x0071)  // enable, multiple message enable
        setWritable32(offset + 4, 0xFFFF_FFFC)
        setWritable32(offset + 8, 0xFFFF_FFFF)
        setWritable16(offset + 12, 0xFFFF)
        if perVectorMasking {
            setWritable32(offset + 16, vectors == 32 ? 0xFFFF_FFFF : (UInt32(1) << UInt32(vectors)) - 1)
        }
        msi = MSI(offset: offset, vectors: vectors, perVectorMasking: perVectorMasking)
        resetBytes = bytes
        return offset
    }

    /// Adds an MSI-X capability of `vectors` (1...2048) vectors with the table at
    /// `tableOffset` of BAR `tableBAR` and the PBA at `pbaOffset` of BAR `pbaBAR` (offsets
    /// 8-byte aligned). The model routes accesses there to `readMSIX`/`writeMSIX`.
    /// Returns the capability's offset.
    @discardableResult
    public mutating func addMSIX(vectors: Int, tableBAR: Int, tableOffset: UInt32, pbaBAR: Int, pbaOffset: UInt32,
                                 msixVectorsMaskedAtReset: Bool = false) -> Int {
        precondition(msix == nil, "one MSI-X capability")
        precondition((1...2048).contains(vectors), "MSI-X vectors: 1...2048")
        precondition(tableOffset & 7 == 0 && pbaOffset & 7 == 0, "table and PBA offsets are 8-byte aligned")
        precondition(bars[tableBAR] != nil && bars[pbaBAR] != nil, "table and PBA live in declared BARs")
        let offset = appendCapability(id: CapabilityID.msix, length: 12)
        put16(offset + 2, UInt16(vectors - 1))
        setWritable16(offset + 2, 0xC000)  // enable, function mask
        put32(offset + 4, tableOffset | UInt32(tableBAR))
        put32(offset + 8, pbaOffset | UInt32(pbaBAR))
        var state = MSIX(offset: offset, vectors: vectors, tableBAR: tableBAR, tableOffset: UInt64(tableOffset),
                         pbaBAR: pbaBAR, pbaOffset: UInt64(pbaOffset), maskedAtReset: msixVectorsMaskedAtReset,
                         table: [], pending: [])
        state.resetTable()
        msix = state
        resetBytes = bytes
        return offset
    }

    /// Adds a PCI Express capability, version 2, device/port type Endpoint, link 2.5 GT/s
    /// x1, max payload 128 bytes, no FLR (reset goes through VFIO). Needs `.extended`.
    /// Returns its offset.
    @discardableResult
    public mutating func addPCIExpress() -> Int {
        precondition(pcieOffset == nil, "one PCI Express capability")
        precondition(size == .extended, "a PCI Express function has the 4 KiB configuration space")
        let offset = appendCapability(id: CapabilityID.pciExpress, length: 0x3C)
        put16(offset + 0x02, 0x0002)  // capability version 2, type 0 (PCI Express Endpoint)
        put32(offset + 0x04, 1 << 15)  // Device Capabilities: role-based error reporting
        setWritable16(offset + 0x08, 0x7CFF)  // Device Control (bit 15, Initiate FLR, not implemented)
        put16(offset + 0x08, 0x2810)  // max read request 512, relaxed ordering, no snoop
        setClearOnWrite16(offset + 0x0A, 0x000F)  // Device Status error bits
        put32(offset + 0x0C, 0x0000_0011)  // Link Capabilities: 2.5 GT/s, x1
        setWritable16(offset + 0x10, 0x01C3)  // Link Control: ASPM, RCB, common clock, ext sync
        put16(offset + 0x12, 0x0011)  // Link Status: 2.5 GT/s, x1
        setWritable16(offset + 0x28, 0x0000)  // Device Control 2: nothing implemented
        put32(offset + 0x2C, 0x0000_0002)  // Link Capabilities 2: 2.5 GT/s supported
        put16(offset + 0x30, 0x0001)  // Link Control 2: target link speed 2.5 GT/s
        pcieOffset = offset
        resetBytes = bytes
        return offset
    }

    // MARK: Byte helpers

    private func get16(_ o: Int) -> UInt16 { UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8 }
    private func get32(_ o: Int) -> UInt32 { UInt32(get16(o)) | UInt32(get16(o + 2)) << 16 }
    private mutating func put16(_ o: Int, _ v: UInt16) {
        bytes[o] = UInt8(truncatingIfNeeded: v)
        bytes[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
    }
    private mutating func put32(_ o: Int, _ v: UInt32) {
        put16(o, UInt16(truncatingIfNeeded: v))
        put16(o + 2, UInt16(truncatingIfNeeded: v >> 16))
    }
    private mutating func setWritable16(_ o: Int, _ m: UInt16) {
        writableMask[o] = UInt8(truncatingIfNeeded: m)
        writableMask[o + 1] = UInt8(truncatingIfNeeded: m >> 8)
    }
    private mutating func setWritable32(_ o: Int, _ m: UInt32) {
        setWritable16(o, UInt16(truncatingIfNeeded: m))
        setWritable16(o + 2, UInt16(truncatingIfNeeded: m >> 16))
    }
    private mutating func setClearOnWrite16(_ o: Int, _ m: UInt16) {
        clearOnWriteMask[o] = UInt8(truncatingIfNeeded: m)
        clearOnWriteMask[o + 1] = UInt8(truncatingIfNeeded: m >> 8)
    }

    // MARK: Typed views

    /// The byte at `offset` (tests, diagnostics).
    public func byte(at offset: Int) -> UInt8 { bytes[offset] }
    /// The little-endian 16-bit value at `offset`.
    public func read16(_ offset: Int) -> UInt16 { get16(offset) }
    /// The little-endian 32-bit value at `offset`.
    public func read32(_ offset: Int) -> UInt32 { get32(offset) }

    public var command: Command { Command(rawValue: get16(Register.command)) }
    public var status: Status { Status(rawValue: get16(Register.status)) }
    public var busMasterEnabled: Bool { command.contains(.busMaster) }
    public var memorySpaceEnabled: Bool { command.contains(.memorySpace) }
    public var interruptDisabled: Bool { command.contains(.interruptDisable) }

    /// The address programmed into BAR `number` (both registers for a 64-bit BAR), type
    /// bits removed; `nil` for an undeclared BAR.
    public func barAddress(_ number: Int) -> UInt64? {
        guard let bar = bars[number] else { return nil }
        let offset = Register.bar0 + 4 * number
        switch bar {
        case .memory32: return UInt64(get32(offset) & ~0xF)
        case .memory64: return UInt64(get32(offset) & ~0xF) | UInt64(get32(offset + 4)) << 32
        case .io: return UInt64(get32(offset) & ~0x3)
        }
    }

    public var powerManagementOffset: Int? { pmOffset }
    public var msiOffset: Int? { msi?.offset }
    public var msixOffset: Int? { msix?.offset }
    public var pciExpressOffset: Int? { pcieOffset }

    /// MSI Enable (control bit 0) as the client wrote it.
    public var msiEnableBit: Bool { msi.map { get16($0.offset + 2) & 1 != 0 } ?? false }
    /// MSI-X Enable (control bit 15) as the client wrote it.
    public var msixEnableBit: Bool { msix.map { get16($0.offset + 2) & 0x8000 != 0 } ?? false }
    /// MSI-X Function Mask (control bit 14).
    public var msixFunctionMasked: Bool { msix.map { get16($0.offset + 2) & 0x4000 != 0 } ?? false }
    /// The MSI per-vector mask bit of `vector` (false without per-vector masking).
    public func msiVectorMasked(_ vector: Int) -> Bool {
        guard let msi, msi.perVectorMasking, vector < msi.vectors else { return false }
        return get32(msi.maskOffset) >> UInt32(vector) & 1 != 0
    }
    /// The MSI pending bit of `vector`.
    public func msiPending(_ vector: Int) -> Bool {
        guard let msi, vector < msi.vectors else { return false }
        return msi.pending >> UInt32(vector) & 1 != 0
    }
    /// The Mask bit of MSI-X table entry `vector`.
    public func msixVectorMasked(_ vector: Int) -> Bool {
        guard let msix, vector < msix.vectors else { return false }
        return msix.vectorMasked(vector)
    }
    /// The PBA bit of `vector`.
    public func msixPending(_ vector: Int) -> Bool {
        guard let msix, vector < msix.vectors else { return false }
        return msix.isPending(vector)
    }
    /// Number of MSI-X vectors (0 without the capability).
    public var msixVectorCount: Int { msix?.vectors ?? 0 }

    // MARK: Config accesses

    private func checkRange(_ offset: UInt64, _ count: Int, _ operation: String) throws(VFIOError) -> Int {
        guard count > 0, offset < UInt64(size.rawValue), UInt64(count) <= UInt64(size.rawValue) - offset else {
            throw .errno(operation, DeviceErrno.EINVAL)
        }
        return Int(offset)
    }

    /// Reads `buffer.count` bytes at `offset`.
    /// - Throws: `EINVAL` when the access is empty or leaves the space.
    public func read(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        let start = try checkRange(offset, buffer.count, "config read")
        for k in 0..<buffer.count { buffer[k] = bytes[start + k] }
    }

    /// Writes `buffer` at `offset`, byte by byte through the masks, then applies what
    /// the new values mean (INTx re-signalling when Interrupt Disable clears, pending
    /// MSI vectors delivered when unmasked, MSI-X Function Mask). Returns the interrupts
    /// to signal.
    /// - Throws: `EINVAL` when the access is empty or leaves the space.
    public mutating func write(offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) -> [IRQSignal] {
        let start = try checkRange(offset, buffer.count, "config write")
        let oldCommand = command
        let oldPowerState = pmOffset.map { get16($0 + 4) & 3 }
        for k in 0..<buffer.count {
            let o = start + k
            let value = buffer[k]
            let w = writableMask[o]
            var b = (bytes[o] & ~w) | (value & w)
            b &= ~(value & clearOnWriteMask[o])
            bytes[o] = b
        }
        var signals: [IRQSignal] = []
        // Power state: D1/D2 are not supported, such writes leave the state alone.
        if let pm = pmOffset, let old = oldPowerState {
            let new = get16(pm + 4) & 3
            if new == 1 || new == 2 { put16(pm + 4, get16(pm + 4) & ~3 | old) }
        }
        // MSI: Multiple Message Enable cannot exceed Multiple Message Capable.
        if let msi {
            let control = get16(msi.offset + 2)
            let mmc = (control >> 1) & 7, mme = (control >> 4) & 7
            if mme > mmc { put16(msi.offset + 2, control & ~0x70 | mmc << 4) }
        }
        if oldCommand.contains(.interruptDisable) && !interruptDisabled {
            signals += intxSignalIfDeliverable()
        }
        // Unmasked MSI/MSI-X vectors, or Bus Master just turned on.
        signals += deliverUnmaskedPending()
        return signals
    }

    /// Restores the power-on state: header, BARs, capabilities, MSI-X table, pending bits,
    /// INTx deasserted. The client's IRQ configuration (`activeIRQIndex`) is kept: it
    /// belongs to the server, not the device.
    public mutating func reset() {
        bytes = resetBytes
        msi?.pending = 0
        msix?.resetTable()
        intxAsserted = false
        intxMaskedByClient = false
    }

    // MARK: MSI-X table and PBA

    /// Where the MSI-X table is: (BAR, byte range), or `nil` without MSI-X.
    public var msixTableLocation: (bar: Int, range: Range<UInt64>)? {
        msix.map { ($0.tableBAR, $0.tableOffset..<($0.tableOffset + $0.tableSize)) }
    }

    /// Where the PBA is: (BAR, byte range), or `nil` without MSI-X.
    public var msixPBALocation: (bar: Int, range: Range<UInt64>)? {
        msix.map { ($0.pbaBAR, $0.pbaOffset..<($0.pbaOffset + $0.pbaSize)) }
    }

    /// True when `[offset, offset + count)` of BAR `bar` lies inside the MSI-X table or PBA.
    public func isMSIXAccess(bar: Int, offset: UInt64, count: Int) -> Bool {
        guard let msix else { return false }
        let end = offset + UInt64(count)
        if bar == msix.tableBAR && offset >= msix.tableOffset && end <= msix.tableOffset + msix.tableSize { return true }
        if bar == msix.pbaBAR && offset >= msix.pbaOffset && end <= msix.pbaOffset + msix.pbaSize { return true }
        return false
    }

    /// Reads the MSI-X table or PBA (any width, byte by byte).
    /// - Throws: `EINVAL` when the access is not inside the table or the PBA.
    public func readMSIX(bar: Int, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        guard let msix, isMSIXAccess(bar: bar, offset: offset, count: buffer.count) else {
            throw .errno("MSI-X read", DeviceErrno.EINVAL)
        }
        if bar == msix.tableBAR && offset >= msix.tableOffset && offset + UInt64(buffer.count) <= msix.tableOffset + msix.tableSize {
            let start = Int(offset - msix.tableOffset)
            for k in 0..<buffer.count { buffer[k] = msix.table[start + k] }
        } else {
            let start = Int(offset - msix.pbaOffset)
            for k in 0..<buffer.count {
                let byteIndex = start + k
                buffer[k] = UInt8(truncatingIfNeeded: msix.pending[byteIndex / 8] >> UInt64(8 * (byteIndex % 8)))
            }
        }
    }

    /// Writes the MSI-X table (the PBA is read-only: writes to it are ignored). Only bit 0
    /// of Vector Control is writable. A vector unmasked while pending is delivered (when
    /// the function is not masked). Returns the interrupts to signal.
    /// - Throws: `EINVAL` when the access is not inside the table or the PBA.
    public mutating func writeMSIX(bar: Int, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) -> [IRQSignal] {
        guard var state = msix, isMSIXAccess(bar: bar, offset: offset, count: buffer.count) else {
            throw .errno("MSI-X write", DeviceErrno.EINVAL)
        }
        guard bar == state.tableBAR && offset >= state.tableOffset && offset + UInt64(buffer.count) <= state.tableOffset + state.tableSize else {
            return []  // PBA: read-only
        }
        let start = Int(offset - state.tableOffset)
        for k in 0..<buffer.count {
            let index = start + k
            switch index % 16 {
            case 12: state.table[index] = buffer[k] & 1
            case 13, 14, 15: break
            default: state.table[index] = buffer[k]
            }
        }
        msix = state
        return deliverUnmaskedPending()
    }

    // MARK: Interrupts

    /// The client enabled (`enabledVectors > 0`) or disabled (0) IRQ index `index` with
    /// `VFIO_DEVICE_SET_IRQS`; see `activeIRQIndex`. Indices other than INTx, MSI and
    /// MSI-X (ERR, REQ) are ignored. Enabling INTx while the line is asserted signals it
    /// (INTx is level-triggered); enabling MSI/MSI-X delivers pending unmasked vectors.
    /// Returns the interrupts to signal.
    public mutating func clientConfiguredIRQs(index: UInt32, enabledVectors: UInt32) -> [IRQSignal] {
        guard index < 3 else { return [] }
        clientVectors[Int(index)] = enabledVectors
        guard enabledVectors > 0 else { return [] }
        if index == PCIIRQIndex.intx.rawValue {
            intxMaskedByClient = false
            return intxSignalIfDeliverable()
        }
        return deliverUnmaskedPending()
    }

    /// The client masked or unmasked INTx (`ACTION_MASK` / `ACTION_UNMASK` on index 0).
    /// Unmasking while the line is still asserted signals it again. Other indices are
    /// ignored (vfio-pci masks only INTx). Returns the interrupts to signal.
    public mutating func clientMaskChanged(index: UInt32, vector: UInt32, masked: Bool) -> [IRQSignal] {
        guard index == PCIIRQIndex.intx.rawValue else { return [] }
        intxMaskedByClient = masked
        return masked ? [] : intxSignalIfDeliverable()
    }

    private mutating func intxSignalIfDeliverable() -> [IRQSignal] {
        guard intxAsserted, !interruptDisabled, activeIRQIndex == PCIIRQIndex.intx.rawValue, !intxMaskedByClient else { return [] }
        if intxAutomask { intxMaskedByClient = true }
        return [IRQSignal(index: PCIIRQIndex.intx.rawValue, vector: 0)]
    }

    /// Asserts INTx: sets Status bit 3 and signals the line unless Interrupt Disable
    /// (Command bit 10) is set, the client has not enabled INTx, or the client has it
    /// masked. Asserting an asserted line signals nothing (it is level-triggered). A
    /// function without an interrupt pin does nothing.
    public mutating func assertINTx() -> [IRQSignal] {
        guard bytes[Register.interruptPin] != 0, !intxAsserted else { return [] }
        intxAsserted = true
        put16(Register.status, get16(Register.status) | Status.interruptStatus.rawValue)
        return intxSignalIfDeliverable()
    }

    /// Deasserts INTx and clears Status bit 3.
    public mutating func deassertINTx() {
        intxAsserted = false
        put16(Register.status, get16(Register.status) & ~Status.interruptStatus.rawValue)
    }

    /// Raises `vector` the way the client's active IRQ index says: MSI-X, MSI, or (INTx or
    /// nothing enabled) asserting INTx, where `vector` is ignored. A masked MSI/MSI-X
    /// vector pends; a vector beyond the capability's count is ignored. Returns the
    /// interrupts to signal.
    public mutating func raise(vector: Int) -> [IRQSignal] {
        switch activeIRQIndex {
        case PCIIRQIndex.msix.rawValue?:
            guard var state = msix, vector >= 0, vector < state.vectors else { return [] }
            if msixFunctionMasked || state.vectorMasked(vector) {
                state.setPending(vector, true)
                msix = state
                return []
            }
            return message(PCIIRQIndex.msix, vector)
        case PCIIRQIndex.msi.rawValue?:
            guard var state = msi, vector >= 0, vector < state.vectors else { return [] }
            if msiVectorMasked(vector) {
                state.pending |= 1 << UInt32(vector)
                msi = state
                put32(state.pendingOffset, state.pending)
                return []
            }
            return message(PCIIRQIndex.msi, vector)
        default:
            return assertINTx()
        }
    }

    /// Ends a raise: deasserts INTx (message interrupts are edge events and need nothing).
    public mutating func lower() {
        deassertINTx()
    }

    private mutating func message(_ index: PCIIRQIndex, _ vector: Int) -> [IRQSignal] {
        guard busMasterEnabled else {
            droppedMessages += 1
            return []
        }
        return [IRQSignal(index: index.rawValue, vector: UInt32(vector))]
    }

    /// Delivers the pending vectors that are now unmasked, for the active index.
    private mutating func deliverUnmaskedPending() -> [IRQSignal] {
        var signals: [IRQSignal] = []
        guard busMasterEnabled else { return [] }
        if activeIRQIndex == PCIIRQIndex.msi.rawValue, var state = msi, state.pending != 0 {
            for v in 0..<state.vectors where state.pending >> UInt32(v) & 1 != 0 && !msiVectorMasked(v) {
                state.pending &= ~(1 << UInt32(v))
                signals.append(IRQSignal(index: PCIIRQIndex.msi.rawValue, vector: UInt32(v)))
            }
            msi = state
            put32(state.pendingOffset, state.pending)
        }
        if activeIRQIndex == PCIIRQIndex.msix.rawValue, var state = msix, !msixFunctionMasked,
           state.pending.contains(where: { $0 != 0 }) {
            for v in 0..<state.vectors where state.isPending(v) && !state.vectorMasked(v) {
                state.setPending(v, false)
                signals.append(IRQSignal(index: PCIIRQIndex.msix.rawValue, vector: UInt32(v)))
            }
            msix = state
        }
        return signals
    }
}
