import NVMe
import Synchronization
import VFIO
import VFIODeviceKit
import VFIOSystem

/// An NVMe 1.4 controller served through VFIO (a `DeviceModel`), with namespaces on
/// `NamespaceStorage` (RAM, a file, a block device).
///
/// **PCI.** Class 01:08:02 (mass storage, NVM, NVM Express), vendor/device 1234:11ee
/// (0x1234: the unassigned vendor QEMU's test devices use), extended configuration space
/// with PM, MSI-X and PCI Express capabilities, interrupt pin INTA#.
/// BAR0 (64-bit, non-prefetchable, 16 KiB, served by callbacks): the controller
/// registers at 0x0000, the doorbells at 0x1000 (CAP.DSTRD 0), the MSI-X table at 0x2000
/// and the PBA at 0x3000. One MSI-X vector per I/O queue plus the admin queue's.
///
/// **Registers** accept naturally aligned 4-byte accesses, and 8-byte ones at CAP, ASQ
/// and ACQ; other widths fail with `EINVAL`. AQA/ASQ/ACQ are writable only while CC.EN
/// is 0. Setting CC.EN checks the admin queue (sizes, 4 KiB aligned bases) and CC (CSS
/// 0, MPS 0, I/O entry sizes 6/4 or 0): a bad configuration sets CSTS.CFS instead of
/// RDY. Clearing CC.EN resets the controller (queues deleted, outstanding commands
/// dropped); RDY clears once the command in flight, if any, has finished. CC.SHN sets
/// SHST to processing; the worker flushes every namespace, then SHST reads complete.
///
/// **Queues** are processed by one worker thread, woken by doorbell writes (no polling):
/// it fetches a command by DMA, executes it (data by DMA through PRPs), posts the
/// completion by DMA and raises the completion queue's vector. A completion queue that is
/// full holds the worker until the host frees an entry. A submission or completion
/// queue whose memory cannot be reached is a fatal controller error (CSTS.CFS).
///
/// **Doorbells** come as BAR0 writes, as ioeventfd signals of the SQ tail doorbells
/// (`ioEventSignalled`: the values then come from the shadow doorbell buffer), or through
/// the shadow buffer alone. Bad ones raise Error status asynchronous events.
///
/// **Sessions.** A client that leaves takes its memory with it: `sessionClosed` resets
/// the controller, and the next client brings it up again on the same namespaces.
///
/// Not implemented (refused as Invalid Opcode / Invalid Field): SGLs, metadata,
/// namespace management, firmware download, format, security, reservations, fused
/// commands, weighted round robin arbitration (Set Features stores it), interrupt
/// coalescing (stored, not applied).
public final class NVMeDevice: DeviceModel, @unchecked Sendable {
    public static let vendorID: UInt16 = 0x1234
    public static let deviceID: UInt16 = 0x11EE
    /// Base class 01h, subclass 08h, programming interface 02h.
    public static let classCode: UInt32 = 0x01_0802
    public static let barSize: UInt64 = 0x4000
    public static let msixTableOffset: UInt32 = 0x2000
    public static let msixPBAOffset: UInt32 = 0x3000
    /// CAP.MQES: queues hold up to 1024 entries.
    public static let maximumQueueEntries: UInt16 = 1023
    /// MDTS = 5: transfers up to 32 pages of 4 KiB (128 KiB).
    public static let maximumDataTransferShift: UInt8 = 5
    public static var maximumTransferBytes: Int { 4096 << Int(maximumDataTransferShift) }
    /// The I/O submission queues whose tail doorbells BAR0 offers as ioeventfds
    /// (`IOEventArea`, 4 bytes, no data match): queues 1...16. A client takes at most
    /// `max_msg_fds` descriptors in a reply (16 for QEMU and this project's client).
    public static let ioEventDoorbells = 16

    public let deviceFlags: DeviceInfoFlags = [.pci, .reset]
    public let regions: [RegionDescriptor]
    public let irqs: [IRQDescriptor]
    let core: ControllerCore

    /// - Parameters:
    ///   - namespaces: namespace 1, 2, ... in order (at least one, at most 16).
    ///   - ioQueues: the I/O queue pairs offered (1...64); MSI-X has one vector more.
    ///   - serialNumber: Identify's SN.
    public init(namespaces: [any NamespaceStorage], ioQueues: Int = 16, serialNumber: String = "SWIFTVFIO0001") {
        precondition((1...16).contains(namespaces.count), "1...16 namespaces")
        precondition((1...64).contains(ioQueues), "1...64 I/O queues")
        var config = PCIConfigSpace(
            identity: .init(vendorID: Self.vendorID, deviceID: Self.deviceID, revision: 0x02, classCode: Self.classCode,
                            subsystemVendorID: Self.vendorID, subsystemID: Self.deviceID, interruptPin: 1),
            size: .extended)
        config.setBAR(0, .memory64(size: Self.barSize))
        config.addPowerManagement()
        config.addMSIX(vectors: ioQueues + 1, tableBAR: 0, tableOffset: Self.msixTableOffset, pbaBAR: 0, pbaOffset: Self.msixPBAOffset)
        config.addPCIExpress()
        core = ControllerCore(config: config, namespaces: namespaces, ioQueues: ioQueues, serialNumber: serialNumber)
        var bars: [Int: RegionDescriptor] = [:]
        let doorbellEvents = (1...min(ioQueues, Self.ioEventDoorbells)).map {
            IOEventArea(offset: ControllerRegister.submissionTailDoorbell(queue: UInt16($0)), width: 4)
        }
        bars[0] = RegionDescriptor(index: PCIRegionIndex.bar0.rawValue, size: Self.barSize, flags: [.read, .write],
                                   ioEventAreas: doorbellEvents)
        regions = (0..<PCIRegionIndex.count).map { index in
            if index == 0 { return bars[0]! }
            if index == PCIRegionIndex.config.rawValue {
                return RegionDescriptor(index: index, size: UInt64(PCIConfigSpace.Size.extended.rawValue), flags: [.read, .write])
            }
            return .absent(index)
        }
        irqs = IRQDescriptor.pci(intx: true, msiVectors: 0, msixVectors: UInt32(ioQueues + 1), err: 1, req: 1)
    }

    /// A controller with one RAM namespace of `bytes` bytes (64 MiB by default).
    public convenience init(ramBytes bytes: Int = 64 << 20, blockSize: Int = 512, ioQueues: Int = 16) throws(VFIOError) {
        self.init(namespaces: [try RAMNamespaceStorage(bytes: bytes, blockSize: blockSize)], ioQueues: ioQueues)
    }

    deinit { core.shutDownWorker() }

    public func attach(_ context: any DeviceContext) { core.attach(context) }

    public func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        switch region {
        case PCIRegionIndex.config.rawValue:
            try core.monitor.withLock { (s: inout ControllerState) throws(VFIOError) in try s.config.read(offset: offset, into: buffer) }
        case PCIRegionIndex.bar0.rawValue:
            try core.readBAR(offset: offset, into: buffer)
        default:
            throw .errno("NVMe read", DeviceErrno.EINVAL)
        }
    }

    public func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        switch region {
        case PCIRegionIndex.config.rawValue:
            let signals = try core.monitor.withLock { (s: inout ControllerState) throws(VFIOError) -> [IRQSignal] in
                try s.config.write(offset: offset, from: buffer)
            }
            core.deliver(signals)
        case PCIRegionIndex.bar0.rawValue:
            try core.writeBAR(offset: offset, from: buffer)
        default:
            throw .errno("NVMe write", DeviceErrno.EINVAL)
        }
    }

    /// Function level reset: the configuration space and the controller (as CC.EN = 0).
    /// Returns once the command in flight, if any, has finished (CSTS reads 0 then), or
    /// after 10 s (its DMA may wait for the server's device lock, held by the caller,
    /// with a client whose memory is reached through messages: RDY then clears when it
    /// finishes).
    public func reset() throws(VFIOError) {
        core.monitor.update { s in
            s.config.reset()
            ControllerCore.resetController(&s)
        }
        _ = core.waitUntilIdle(seconds: 10)
    }

    /// The client left: its memory and its queues' addresses mean nothing to the next
    /// client, so the controller resets as at CC.EN 1 -> 0 (queues, shadow doorbells and
    /// outstanding commands forgotten, nothing more fetched; RDY clears once the command
    /// in flight, if any, has finished). Namespaces, the error log and the configuration
    /// space stay: the next client finds a disabled controller and enables it again.
    public func sessionClosed() {
        core.monitor.update { ControllerCore.resetController(&$0) }
    }

    /// A signal of an SQ tail doorbell's ioeventfd (see `ioEventDoorbells`). The value
    /// written is lost with an ioeventfd: the worker takes the tail from the shadow
    /// doorbell buffer (Doorbell Buffer Config), as SPDK's vfio-user NVMe controller does.
    /// A client should register these eventfds only for a driver that sets up Doorbell
    /// Buffer Config before it rings I/O doorbells: a signal without a shadow buffer loses
    /// the tail, and raises the Error status event Invalid Doorbell Write Value.
    public func ioEventSignalled(region: UInt32, area: IOEventArea, count: UInt64) throws(VFIOError) {
        guard region == PCIRegionIndex.bar0.rawValue, let doorbell = ControllerRegister.doorbell(at: area.offset) else { return }
        core.monitor.update { s in core.doorbellSignalled(&s, queue: doorbell.queue, completion: doorbell.completion) }
    }

    public func irqsConfigured(index: UInt32, enabledVectors: UInt32) {
        core.deliver(core.monitor.withLock { $0.config.clientConfiguredIRQs(index: index, enabledVectors: enabledVectors) })
    }

    public func irqMaskChanged(index: UInt32, vector: UInt32, masked: Bool) {
        core.deliver(core.monitor.withLock { $0.config.clientMaskChanged(index: index, vector: vector, masked: masked) })
    }

    // MARK: Inspection (tests, diagnostics)

    /// Waits until the I/O worker has gone to sleep with nothing it can do after every
    /// register, doorbell and configuration change made before the call (it may be
    /// waiting for room in a full completion queue), at most `seconds`; false when it
    /// has not. For a caller that needs each step to finish before the next (the fuzz
    /// target, deterministic tests); a device needs no such wait.
    package func waitUntilQuiescent(seconds: UInt64) -> Bool { core.waitUntilQuiescent(seconds: seconds) }

    /// A copy of the configuration space.
    public var configSpace: PCIConfigSpace { core.monitor.withLock { $0.config } }
    /// CSTS.
    public var controllerStatus: ControllerStatus { core.monitor.withLock { $0.status } }
    /// Why CSTS.CFS is set, or `nil`.
    public var fatalReason: String? { core.monitor.withLock { $0.fatalReason } }
}
