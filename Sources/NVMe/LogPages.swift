/// The SMART / Health Information log page (02h; NVMe 1.4, figure 196), 512 bytes.
public struct SMARTHealthLog: Sendable, Hashable {
    public static let size = 512
    /// Byte 0.
    public var criticalWarning: UInt8 = 0
    /// Bytes 2:1, Kelvin.
    public var compositeTemperature: UInt16 = 0
    /// Byte 3, percent.
    public var availableSpare: UInt8 = 0
    /// Byte 4, percent.
    public var availableSpareThreshold: UInt8 = 0
    /// Byte 5, percent.
    public var percentageUsed: UInt8 = 0
    /// Bytes 47:32, in thousands of 512-byte units, rounded up.
    public var dataUnitsRead: UInt64 = 0
    /// Bytes 63:48.
    public var dataUnitsWritten: UInt64 = 0
    /// Bytes 79:64.
    public var hostReadCommands: UInt64 = 0
    /// Bytes 95:80.
    public var hostWriteCommands: UInt64 = 0
    /// Bytes 127:112.
    public var powerCycles: UInt64 = 0
    /// Bytes 143:128.
    public var powerOnHours: UInt64 = 0
    /// Bytes 159:144.
    public var unsafeShutdowns: UInt64 = 0
    /// Bytes 175:160.
    public var mediaErrors: UInt64 = 0
    /// Bytes 191:176.
    public var errorLogEntries: UInt64 = 0

    public init() {}

    /// The 512 bytes (the 128-bit counters with their upper halves zero).
    public var encoded: [UInt8] {
        var b = [UInt8](repeating: 0, count: Self.size)
        b[0] = criticalWarning
        b.putLE(UInt64(compositeTemperature), at: 1, width: 2)
        b[3] = availableSpare
        b[4] = availableSpareThreshold
        b[5] = percentageUsed
        for (offset, value) in [(32, dataUnitsRead), (48, dataUnitsWritten), (64, hostReadCommands), (80, hostWriteCommands),
                                (112, powerCycles), (128, powerOnHours), (144, unsafeShutdowns), (160, mediaErrors),
                                (176, errorLogEntries)] {
            b.putLE(value, at: offset, width: 8)
        }
        return b
    }
}

/// The Firmware Slot Information log page (03h; NVMe 1.4, figure 197), 512 bytes: AFI
/// (byte 0; bits 2:0 the active slot) and FRS1..FRS7 (8 ASCII bytes each from byte 8).
public struct FirmwareSlotLog: Sendable, Hashable {
    public static let size = 512
    public var activeSlot: UInt8
    /// Revisions of slots 1...7 (missing ones are empty: all zero bytes).
    public var revisions: [String]
    public init(activeSlot: UInt8, revisions: [String]) {
        self.activeSlot = activeSlot
        self.revisions = revisions
    }
    public var encoded: [UInt8] {
        var b = [UInt8](repeating: 0, count: Self.size)
        b[0] = activeSlot & 0x7
        for (k, revision) in revisions.prefix(7).enumerated() where !revision.isEmpty {
            b.putASCII(revision, at: 8 + 8 * k, width: 8)
        }
        return b
    }
}

/// One Error Information log entry (01h; NVMe 1.4, figure 194), 64 bytes.
public struct ErrorLogEntry: Sendable, Hashable {
    public static let size = 64
    /// Bytes 7:0: a unique, increasing count (0 marks an empty entry).
    public var errorCount: UInt64
    /// Bytes 9:8.
    public var submissionQueueID: UInt16
    /// Bytes 11:10.
    public var commandID: UInt16
    /// Bytes 13:12: the status field (bits 15:1) as in the completion; bit 0 the phase.
    public var status: NVMeStatus
    /// Bytes 15:14: the byte (7:0) and bit (10:8) of the command in error, 0xFFFF unknown.
    public var parameterErrorLocation: UInt16
    /// Bytes 23:16.
    public var lba: UInt64
    /// Bytes 27:24.
    public var namespaceID: UInt32

    public init(errorCount: UInt64, submissionQueueID: UInt16, commandID: UInt16, status: NVMeStatus,
                parameterErrorLocation: UInt16 = 0xFFFF, lba: UInt64 = 0, namespaceID: UInt32 = 0) {
        self.errorCount = errorCount
        self.submissionQueueID = submissionQueueID
        self.commandID = commandID
        self.status = status
        self.parameterErrorLocation = parameterErrorLocation
        self.lba = lba
        self.namespaceID = namespaceID
    }

    public var encoded: [UInt8] {
        var b = [UInt8](repeating: 0, count: Self.size)
        b.putLE(errorCount, at: 0, width: 8)
        b.putLE(UInt64(submissionQueueID), at: 8, width: 2)
        b.putLE(UInt64(commandID), at: 10, width: 2)
        b.putLE(UInt64(status.completionHalfword(phase: false)), at: 12, width: 2)
        b.putLE(UInt64(parameterErrorLocation), at: 14, width: 2)
        b.putLE(lba, at: 16, width: 8)
        b.putLE(UInt64(namespaceID), at: 24, width: 4)
        return b
    }
}

/// A Dataset Management range (NVMe 1.4, figure 364), 16 bytes: context attributes 3:0,
/// length in logical blocks 7:4, starting LBA 15:8.
public struct DatasetRange: Sendable, Hashable {
    public static let size = 16
    public var attributes: UInt32
    public var blockCount: UInt32
    public var startingLBA: UInt64
    public init(attributes: UInt32 = 0, blockCount: UInt32, startingLBA: UInt64) {
        self.attributes = attributes
        self.blockCount = blockCount
        self.startingLBA = startingLBA
    }
    /// Decodes 16 bytes at `offset` of `bytes`.
    public init(_ bytes: [UInt8], at offset: Int = 0) {
        attributes = UInt32(bytes.le(offset, 4))
        blockCount = UInt32(bytes.le(offset + 4, 4))
        startingLBA = bytes.le(offset + 8, 8)
    }
    public var encoded: [UInt8] {
        var b = [UInt8](repeating: 0, count: Self.size)
        b.putLE(UInt64(attributes), at: 0, width: 4)
        b.putLE(UInt64(blockCount), at: 4, width: 4)
        b.putLE(startingLBA, at: 8, width: 8)
        return b
    }
}
