import Synchronization
import VFIO

/// A model of QEMU's educational PCI device `edu` (1234:11e8, class 0x00ff, revision
/// 0x10; QEMU's `docs/specs/edu.rst`), register for register, so that one test suite
/// gives the same answers against this model over vfio-user and against QEMU's `edu`
/// through the kernel.
///
/// **PCI.** Conventional PCI (256-byte config space), subsystem 1af4:1100 (QEMU's
/// default), interrupt pin INTA#, one MSI capability at 0x40 (1 vector, 64-bit address, no
/// per-vector masking). BAR0: 32-bit non-prefetchable memory, 1 MiB, served by callbacks
/// (not mmap-able here).
///
/// **BAR0 registers** (accesses of 4 or 8 bytes, naturally aligned; others fail with
/// `EINVAL`, as QEMU's memory core refuses them). Below 0x80 only 4-byte accesses act: an
/// 8-byte read there returns all-ones and an 8-byte write is ignored. An offset without a
/// register reads all-ones and ignores writes (so does the DMA buffer: it is reachable
/// only by DMA, not through the BAR).
/// - 0x00 (RO) identification 0x010000ed.
/// - 0x04 (RW) liveness: reads the bitwise inverse of the value written.
/// - 0x08 (RW) factorial: a write (ignored while computing) stores n and computes n!
///   (modulo 2^32); a read returns the result. QEMU computes on a thread; this model
///   computes **synchronously** inside the write, so status bit 0 (computing) never reads
///   1 here; drivers that poll it work unchanged. When status bit 7 is set, completion
///   raises interrupt status 0x1.
/// - 0x20 (RW) status: bit 0 computing (RO), bit 7 raise an interrupt after a factorial.
/// - 0x24 (RO) interrupt status. 0x60 (WO) raise: ORs the value into interrupt status and
///   raises the interrupt (MSI vector 0 if the client enabled MSI, else INTx). 0x64 (WO)
///   acknowledge: clears the value's bits; INTx is deasserted when none is left.
/// - 0x80 source, 0x88 destination, 0x90 count (RW; 4- or 8-byte accesses; writes are
///   ignored while a transfer runs). 0x98 command (RW): bit 0 start (a write without it is
///   ignored), bit 1 direction (0: RAM → device buffer, 1: device buffer → RAM), bit 2
///   raise interrupt status 0x100 when done.
///
/// **DMA.** The device buffer is 4 KiB at device address 0x40000; RAM addresses are
/// clamped to the DMA mask (28 bits by default, as QEMU's `dma_mask` property). QEMU runs
/// a transfer from a 100 ms timer; this model runs it in `afterReply` work, i.e. after the
/// reply to the command write, as the reply rule requires. When the transfer is done bit
/// 0 of the command clears and, with bit 2, interrupt status 0x100 is raised. A transfer
/// that would leave the device buffer is skipped (QEMU logs it and, in some versions,
/// overruns its buffer or aborts); a transfer whose RAM range is not mapped, or with Bus
/// Master Enable off, moves no byte (QEMU's DMA fails the same way). In all these cases
/// the command still completes and raises its interrupt, as QEMU's does; the failure is
/// kept in `lastDMAError`.
///
/// **Reset.** As QEMU's `edu`, which has no reset handler: a reset restores the PCI
/// configuration space (and deasserts INTx) but leaves the BAR0 registers and the DMA
/// buffer as they were.
public final class EduDevice: DeviceModel {
    public static let vendorID: UInt16 = 0x1234
    public static let deviceID: UInt16 = 0x11e8
    public static let revision: UInt8 = 0x10
    /// Base class 0x00, subclass 0xff (QEMU's `PCI_CLASS_OTHERS` written as 0x00ff).
    public static let classCode: UInt32 = 0x00_FF00
    public static let identification: UInt32 = 0x0100_00ed
    public static let barSize: UInt32 = 1 << 20
    public static let dmaBufferAddress: UInt64 = 0x40000
    public static let dmaBufferSize = 4096
    /// Interrupt status bit of a finished factorial.
    public static let factorialIRQ: UInt32 = 0x1
    /// Interrupt status bit of a finished DMA transfer.
    public static let dmaIRQ: UInt32 = 0x100

    /// Register offsets in BAR0.
    public enum Register {
        public static let identification: UInt64 = 0x00
        public static let liveness: UInt64 = 0x04
        public static let factorial: UInt64 = 0x08
        public static let status: UInt64 = 0x20
        public static let interruptStatus: UInt64 = 0x24
        public static let raiseInterrupt: UInt64 = 0x60
        public static let acknowledgeInterrupt: UInt64 = 0x64
        public static let dmaSource: UInt64 = 0x80
        public static let dmaDestination: UInt64 = 0x88
        public static let dmaCount: UInt64 = 0x90
        public static let dmaCommand: UInt64 = 0x98
    }

    /// Status register bits.
    public static let statusComputing: UInt32 = 0x01
    public static let statusIRQOnFactorial: UInt32 = 0x80
    /// DMA command bits.
    public static let dmaStart: UInt64 = 0x1
    public static let dmaToRAM: UInt64 = 0x2
    public static let dmaRaiseIRQ: UInt64 = 0x4

    private struct State: Sendable {
        var config: PCIConfigSpace
        var liveness: UInt32 = 0
        var factorial: UInt32 = 0
        var status: UInt32 = 0
        var interruptStatus: UInt32 = 0
        var dmaSource: UInt64 = 0
        var dmaDestination: UInt64 = 0
        var dmaCount: UInt64 = 0
        var dmaCommand: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: EduDevice.dmaBufferSize)
        var lastDMAError: VFIOError?
        var transfers = 0
    }

    /// The DMA address mask applied to RAM addresses.
    public let dmaMask: UInt64
    private let state: Mutex<State>
    private let contextBox = Mutex<(any DeviceContext)?>(nil)

    public let deviceFlags: DeviceInfoFlags = [.pci, .reset]
    public let regions: [RegionDescriptor]
    public let irqs: [IRQDescriptor] = IRQDescriptor.pci(intx: true, msiVectors: 1, msixVectors: 0)

    /// - Parameter dmaMask: QEMU's `dma_mask` property, `(1 << 28) - 1` by default.
    public init(dmaMask: UInt64 = (1 << 28) - 1) {
        self.dmaMask = dmaMask
        var config = PCIConfigSpace(
            identity: .init(vendorID: Self.vendorID, deviceID: Self.deviceID, revision: Self.revision,
                            classCode: Self.classCode, subsystemVendorID: 0x1af4, subsystemID: 0x1100, interruptPin: 1),
            size: .conventional)
        config.setBAR(0, .memory32(size: Self.barSize))
        config.addMSI(vectors: 1, perVectorMasking: false)
        state = Mutex(State(config: config))
        regions = PCIModelSupport.regions(
            bars: [0: RegionDescriptor(index: 0, size: UInt64(Self.barSize), flags: [.read, .write])],
            configSize: PCIConfigSpace.Size.conventional.rawValue)
    }

    public func attach(_ context: any DeviceContext) {
        contextBox.withLock { $0 = context }
    }

    private var context: (any DeviceContext)? { contextBox.withLock { $0 } }

    private func deliver(_ signals: [IRQSignal]) {
        guard !signals.isEmpty, let context else { return }
        for signal in signals { context.triggerIRQ(index: signal.index, vector: signal.vector) }
    }

    // MARK: Accesses

    public func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        switch region {
        case PCIRegionIndex.config.rawValue:
            try state.withLock { (s: inout State) throws(VFIOError) in try s.config.read(offset: offset, into: buffer) }
        case PCIRegionIndex.bar0.rawValue:
            let size = buffer.count
            guard size == 4 || size == 8, offset % UInt64(size) == 0 else {
                throw .errno("edu BAR0 read", DeviceErrno.EINVAL)
            }
            let value = state.withLock { s in Self.registerRead(&s, offset: offset, size: size) }
            PCIModelSupport.store(value, buffer)
        default:
            throw .errno("edu read", DeviceErrno.EINVAL)
        }
    }

    public func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        switch region {
        case PCIRegionIndex.config.rawValue:
            let signals = try state.withLock { (s: inout State) throws(VFIOError) -> [IRQSignal] in
                try s.config.write(offset: offset, from: buffer)
            }
            deliver(signals)
        case PCIRegionIndex.bar0.rawValue:
            let size = buffer.count
            guard size == 4 || size == 8, offset % UInt64(size) == 0 else {
                throw .errno("edu BAR0 write", DeviceErrno.EINVAL)
            }
            let value = PCIModelSupport.load(buffer)
            let (signals, startDMA) = state.withLock { s in Self.registerWrite(&s, offset: offset, size: size, value: value) }
            deliver(signals)
            if startDMA, let context {
                context.afterReply { [weak self] in self?.runDMA() }
            }
        default:
            throw .errno("edu write", DeviceErrno.EINVAL)
        }
    }

    private static func registerRead(_ s: inout State, offset: UInt64, size: Int) -> UInt64 {
        if offset < 0x80 && size != 4 { return ~0 }
        switch offset {
        case Register.identification: return UInt64(identification)
        case Register.liveness: return UInt64(s.liveness)
        case Register.factorial: return UInt64(s.factorial)
        case Register.status: return UInt64(s.status)
        case Register.interruptStatus: return UInt64(s.interruptStatus)
        case Register.dmaSource: return s.dmaSource
        case Register.dmaDestination: return s.dmaDestination
        case Register.dmaCount: return s.dmaCount
        case Register.dmaCommand: return s.dmaCommand
        default: return ~0
        }
    }

    /// n! modulo 2^32; 0 from n = 34 on (34! has 32 factors of two).
    static func factorial(_ n: UInt32) -> UInt32 {
        if n >= 34 { return 0 }
        var result: UInt32 = 1
        var k = n
        while k > 0 {
            result &*= k
            k -= 1
        }
        return result
    }

    private static func registerWrite(_ s: inout State, offset: UInt64, size: Int, value: UInt64) -> ([IRQSignal], Bool) {
        if offset < 0x80 && size != 4 { return ([], false) }
        let running = s.dmaCommand & dmaStart != 0
        switch offset {
        case Register.liveness:
            s.liveness = ~UInt32(truncatingIfNeeded: value)
        case Register.factorial:
            guard s.status & statusComputing == 0 else { break }
            s.factorial = factorial(UInt32(truncatingIfNeeded: value))
            if s.status & statusIRQOnFactorial != 0 { return (raise(&s, factorialIRQ), false) }
        case Register.status:
            if UInt32(truncatingIfNeeded: value) & statusIRQOnFactorial != 0 {
                s.status |= statusIRQOnFactorial
            } else {
                s.status &= ~statusIRQOnFactorial
            }
        case Register.raiseInterrupt:
            return (raise(&s, UInt32(truncatingIfNeeded: value)), false)
        case Register.acknowledgeInterrupt:
            lower(&s, UInt32(truncatingIfNeeded: value))
        case Register.dmaSource where !running: s.dmaSource = value
        case Register.dmaDestination where !running: s.dmaDestination = value
        case Register.dmaCount where !running: s.dmaCount = value
        case Register.dmaCommand:
            guard value & dmaStart != 0, !running else { break }
            s.dmaCommand = value
            return ([], true)
        default:
            break
        }
        return ([], false)
    }

    private static func raise(_ s: inout State, _ bits: UInt32) -> [IRQSignal] {
        s.interruptStatus |= bits
        guard s.interruptStatus != 0 else { return [] }
        return s.config.raise(vector: 0)
    }

    private static func lower(_ s: inout State, _ bits: UInt32) {
        s.interruptStatus &= ~bits
        if s.interruptStatus == 0 && s.config.activeIRQIndex != PCIIRQIndex.msi.rawValue {
            s.config.lower()
        }
    }

    // MARK: DMA

    private struct Transfer {
        var command: UInt64
        var source: UInt64
        var destination: UInt64
        var count: UInt64
        var busMaster: Bool
        var bufferSnapshot: [UInt8]
    }

    /// Whether `[start, start + count)` lies inside the device buffer.
    private static func insideBuffer(_ start: UInt64, _ count: UInt64) -> Bool {
        let (end, overflow) = start.addingReportingOverflow(count)
        return !overflow && start >= dmaBufferAddress && end <= dmaBufferAddress + UInt64(dmaBufferSize)
    }

    /// Runs the pending transfer (deferred work after the command write's reply).
    private func runDMA() {
        guard let context else { return }
        let job = state.withLock { s -> Transfer? in
            guard s.dmaCommand & Self.dmaStart != 0 else { return nil }
            return Transfer(command: s.dmaCommand, source: s.dmaSource, destination: s.dmaDestination,
                            count: s.dmaCount, busMaster: s.config.busMasterEnabled, bufferSnapshot: s.buffer)
        }
        guard let job else { return }
        var error: VFIOError?
        var incoming: (offset: Int, bytes: [UInt8])?
        let toRAM = job.command & Self.dmaToRAM != 0
        let deviceAddress = toRAM ? job.source : job.destination
        if !job.busMaster {
            error = .errno("edu DMA (bus master disabled)", DeviceErrno.EIO)
        } else if !Self.insideBuffer(deviceAddress, job.count) {
            error = .invalidArgument("edu DMA", "device range 0x\(String(deviceAddress, radix: 16)) + 0x\(String(job.count, radix: 16)) leaves the buffer at 0x40000-0x40fff")
        } else if job.count > 0 {
            let offset = Int(deviceAddress - Self.dmaBufferAddress)
            let count = Int(job.count)
            do {
                if toRAM {
                    let ram = job.destination & dmaMask
                    let slice = Array(job.bufferSnapshot[offset..<(offset + count)])
                    try slice.withUnsafeBytes { raw in
                        try context.dmaWrite(iova: ram, from: raw)
                    }
                } else {
                    let ram = job.source & dmaMask
                    var bytes = [UInt8](repeating: 0, count: count)
                    try bytes.withUnsafeMutableBytes { raw in
                        try context.dmaRead(iova: ram, into: raw)
                    }
                    incoming = (offset, bytes)
                }
            } catch let failure as VFIOError {
                error = failure
            } catch {
                preconditionFailure("only VFIOError is thrown here")
            }
        }
        let signals = state.withLock { s -> [IRQSignal] in
            if let incoming {
                s.buffer.replaceSubrange(incoming.offset..<(incoming.offset + incoming.bytes.count), with: incoming.bytes)
            }
            s.dmaCommand &= ~Self.dmaStart
            s.lastDMAError = error
            s.transfers += 1
            return s.dmaCommand & Self.dmaRaiseIRQ != 0 ? Self.raise(&s, Self.dmaIRQ) : []
        }
        deliver(signals)
    }

    // MARK: Lifecycle and notices

    public func reset() throws(VFIOError) {
        state.withLock { $0.config.reset() }
    }

    public func irqsConfigured(index: UInt32, enabledVectors: UInt32) {
        deliver(state.withLock { $0.config.clientConfiguredIRQs(index: index, enabledVectors: enabledVectors) })
    }

    public func irqMaskChanged(index: UInt32, vector: UInt32, masked: Bool) {
        deliver(state.withLock { $0.config.clientMaskChanged(index: index, vector: vector, masked: masked) })
    }

    // MARK: Inspection (tests, diagnostics)

    /// A copy of the configuration space.
    public var configSpace: PCIConfigSpace { state.withLock { $0.config } }
    /// A copy of the 4 KiB device buffer.
    public var deviceBuffer: [UInt8] { state.withLock { $0.buffer } }
    /// Why the last transfer moved nothing, or `nil` when it succeeded.
    public var lastDMAError: VFIOError? { state.withLock { $0.lastDMAError } }
    /// Number of transfers completed (successful or not).
    public var completedTransfers: Int { state.withLock { $0.transfers } }
}
