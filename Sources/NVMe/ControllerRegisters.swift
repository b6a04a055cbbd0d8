/// The controller registers of BAR0 (NVMe base specification 1.4, section 3.1), as byte
/// offsets. Doorbells follow at `doorbellBase` with a stride of `4 << CAP.DSTRD` bytes:
/// submission queue y's tail doorbell at `doorbellBase + (2y) * stride`, completion queue
/// y's head doorbell at `doorbellBase + (2y + 1) * stride`.
public enum ControllerRegister {
    /// CAP, Controller Capabilities (64-bit, read-only).
    public static let capabilities: UInt64 = 0x00
    /// VS, Version.
    public static let version: UInt64 = 0x08
    /// INTMS, Interrupt Mask Set (pin-based and single-message MSI only).
    public static let interruptMaskSet: UInt64 = 0x0C
    /// INTMC, Interrupt Mask Clear.
    public static let interruptMaskClear: UInt64 = 0x10
    /// CC, Controller Configuration.
    public static let configuration: UInt64 = 0x14
    /// CSTS, Controller Status.
    public static let status: UInt64 = 0x1C
    /// NSSR, NVM Subsystem Reset (optional; write "NVMe" = 0x4E564D65 to reset).
    public static let subsystemReset: UInt64 = 0x20
    /// AQA, Admin Queue Attributes.
    public static let adminQueueAttributes: UInt64 = 0x24
    /// ASQ, Admin Submission Queue base address (64-bit, 4 KiB aligned).
    public static let adminSubmissionQueue: UInt64 = 0x28
    /// ACQ, Admin Completion Queue base address (64-bit, 4 KiB aligned).
    public static let adminCompletionQueue: UInt64 = 0x30
    /// CMBLOC, Controller Memory Buffer Location (0: no CMB).
    public static let memoryBufferLocation: UInt64 = 0x38
    /// CMBSZ, Controller Memory Buffer Size (0: no CMB).
    public static let memoryBufferSize: UInt64 = 0x3C
    /// The first doorbell (SQ 0 tail).
    public static let doorbellBase: UInt64 = 0x1000

    /// The offset of submission queue `queue`'s tail doorbell for a stride of `4 << dstrd`.
    public static func submissionTailDoorbell(queue: UInt16, dstrd: UInt8 = 0) -> UInt64 {
        doorbellBase + UInt64(2 * UInt32(queue)) * (4 << UInt64(dstrd))
    }

    /// The offset of completion queue `queue`'s head doorbell for a stride of `4 << dstrd`.
    public static func completionHeadDoorbell(queue: UInt16, dstrd: UInt8 = 0) -> UInt64 {
        doorbellBase + UInt64(2 * UInt32(queue) + 1) * (4 << UInt64(dstrd))
    }

    /// Which doorbell `offset` is (stride `4 << dstrd`): the queue and whether it is a
    /// completion queue head (else a submission queue tail); `nil` below `doorbellBase` or
    /// between doorbells.
    public static func doorbell(at offset: UInt64, dstrd: UInt8 = 0) -> (queue: UInt16, completion: Bool)? {
        guard offset >= doorbellBase else { return nil }
        let stride = UInt64(4) << UInt64(dstrd)
        let relative = offset - doorbellBase
        guard relative % stride == 0 else { return nil }
        let index = relative / stride
        guard index / 2 <= UInt64(UInt16.max) else { return nil }
        return (UInt16(index / 2), index % 2 == 1)
    }
}

/// CAP, Controller Capabilities.
public struct ControllerCapabilities: Sendable, Hashable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// - Parameters:
    ///   - maximumQueueEntries: MQES, 0-based (so the largest queue has MQES + 1 entries); at least 1.
    ///   - contiguousQueuesRequired: CQR.
    ///   - timeout: TO, in 500 ms units: the longest the host should wait for CSTS.RDY.
    ///   - doorbellStride: DSTRD, the doorbell stride is `4 << DSTRD` bytes.
    ///   - nvmCommandSet: CSS bit 0 (bit 37), the NVM command set.
    ///   - memoryPageSizeMinimum/Maximum: MPSMIN/MPSMAX, the page size is `1 << (12 + n)`.
    public init(maximumQueueEntries: UInt16, contiguousQueuesRequired: Bool, timeout: UInt8, doorbellStride: UInt8 = 0,
                nvmCommandSet: Bool = true, subsystemReset: Bool = false, memoryPageSizeMinimum: UInt8 = 0, memoryPageSizeMaximum: UInt8 = 0) {
        var v = UInt64(maximumQueueEntries)
        if contiguousQueuesRequired { v |= 1 << 16 }
        v |= UInt64(timeout) << 24
        v |= UInt64(doorbellStride & 0xF) << 32
        if subsystemReset { v |= 1 << 36 }
        if nvmCommandSet { v |= 1 << 37 }
        v |= UInt64(memoryPageSizeMinimum & 0xF) << 48
        v |= UInt64(memoryPageSizeMaximum & 0xF) << 52
        rawValue = v
    }

    public var maximumQueueEntries: UInt16 { UInt16(truncatingIfNeeded: rawValue) }
    public var contiguousQueuesRequired: Bool { rawValue >> 16 & 1 != 0 }
    public var arbitrationMechanisms: UInt8 { UInt8(rawValue >> 17 & 0x3) }
    public var timeout: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 24) }
    public var doorbellStride: UInt8 { UInt8(rawValue >> 32 & 0xF) }
    public var subsystemReset: Bool { rawValue >> 36 & 1 != 0 }
    /// CSS, bits 44:37.
    public var commandSets: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 37) }
    public var memoryPageSizeMinimum: UInt8 { UInt8(rawValue >> 48 & 0xF) }
    public var memoryPageSizeMaximum: UInt8 { UInt8(rawValue >> 52 & 0xF) }
}

/// VS, Version: major 31:16, minor 15:8, tertiary 7:0.
public struct ControllerVersion: Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(major: UInt16, minor: UInt8, tertiary: UInt8 = 0) {
        rawValue = UInt32(major) << 16 | UInt32(minor) << 8 | UInt32(tertiary)
    }
    public static let v1_4 = ControllerVersion(major: 1, minor: 4)
    public var major: UInt16 { UInt16(rawValue >> 16) }
    public var minor: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 8) }
}

/// CC, Controller Configuration.
public struct ControllerConfiguration: Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// CC.SHN, Shutdown Notification.
    public enum ShutdownNotification: UInt8, Sendable {
        case none = 0
        case normal = 1
        case abrupt = 2
    }

    public init(enable: Bool, commandSet: UInt8 = 0, memoryPageSize: UInt8 = 0, arbitration: UInt8 = 0,
                shutdown: ShutdownNotification = .none, submissionEntrySize: UInt8 = 6, completionEntrySize: UInt8 = 4) {
        var v: UInt32 = enable ? 1 : 0
        v |= UInt32(commandSet & 0x7) << 4
        v |= UInt32(memoryPageSize & 0xF) << 7
        v |= UInt32(arbitration & 0x7) << 11
        v |= UInt32(shutdown.rawValue) << 14
        v |= UInt32(submissionEntrySize & 0xF) << 16
        v |= UInt32(completionEntrySize & 0xF) << 20
        rawValue = v
    }

    /// EN.
    public var enable: Bool { rawValue & 1 != 0 }
    /// CSS, bits 6:4 (0: the NVM command set).
    public var commandSet: UInt8 { UInt8(rawValue >> 4 & 0x7) }
    /// MPS, bits 10:7: the memory page size is `1 << (12 + MPS)`.
    public var memoryPageSize: UInt8 { UInt8(rawValue >> 7 & 0xF) }
    /// AMS, bits 13:11.
    public var arbitration: UInt8 { UInt8(rawValue >> 11 & 0x7) }
    /// SHN, bits 15:14 (3 is reserved and read as `nil`).
    public var shutdown: ShutdownNotification? { ShutdownNotification(rawValue: UInt8(rawValue >> 14 & 0x3)) }
    /// IOSQES, bits 19:16: an I/O submission queue entry is `1 << IOSQES` bytes (6: 64).
    public var submissionEntrySize: UInt8 { UInt8(rawValue >> 16 & 0xF) }
    /// IOCQES, bits 23:20: an I/O completion queue entry is `1 << IOCQES` bytes (4: 16).
    public var completionEntrySize: UInt8 { UInt8(rawValue >> 20 & 0xF) }
}

/// CSTS, Controller Status.
public struct ControllerStatus: Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// CSTS.SHST, Shutdown Status.
    public enum ShutdownStatus: UInt8, Sendable {
        case normal = 0
        case processing = 1
        case complete = 2
    }

    public init(ready: Bool, fatal: Bool = false, shutdown: ShutdownStatus = .normal) {
        rawValue = (ready ? 1 : 0) | (fatal ? 2 : 0) | UInt32(shutdown.rawValue) << 2
    }

    /// RDY.
    public var ready: Bool { rawValue & 1 != 0 }
    /// CFS, Controller Fatal Status.
    public var fatal: Bool { rawValue & 2 != 0 }
    /// SHST, bits 3:2 (3 is reserved and read as `nil`).
    public var shutdown: ShutdownStatus? { ShutdownStatus(rawValue: UInt8(rawValue >> 2 & 0x3)) }
}

/// AQA, Admin Queue Attributes: queue sizes, 0-based.
public struct AdminQueueAttributes: Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(submissionQueueSize: UInt16, completionQueueSize: UInt16) {
        rawValue = UInt32(submissionQueueSize & 0xFFF) | UInt32(completionQueueSize & 0xFFF) << 16
    }
    /// ASQS, bits 11:0, 0-based.
    public var submissionQueueSize: UInt16 { UInt16(rawValue & 0xFFF) }
    /// ACQS, bits 27:16, 0-based.
    public var completionQueueSize: UInt16 { UInt16(rawValue >> 16 & 0xFFF) }
}
