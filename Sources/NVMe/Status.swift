/// A completion's status: Status Code Type, Status Code, More and Do Not Retry (NVMe 1.4,
/// figures 124-129). `rawValue` is the 15-bit Status Field as it sits in CQE bits 31:17 of
/// DW3 (i.e. the CQE's upper 16 bits shifted right by one, without the phase tag).
public struct NVMeStatus: Error, Sendable, Hashable, CustomStringConvertible {
    /// SCT.
    public enum CodeType: UInt8, Sendable {
        case generic = 0
        case commandSpecific = 1
        case mediaAndDataIntegrity = 2
        case pathRelated = 3
        case vendorSpecific = 7
    }

    public var codeType: UInt8
    public var code: UInt8
    public var more: Bool
    public var doNotRetry: Bool

    public init(_ type: CodeType, _ code: UInt8, doNotRetry: Bool = false, more: Bool = false) {
        self.codeType = type.rawValue
        self.code = code
        self.more = more
        self.doNotRetry = doNotRetry
    }

    /// From the CQE's status half-word (bits 15:1; bit 0 is the phase tag and ignored).
    public init(completionHalfword v: UInt16) {
        code = UInt8(truncatingIfNeeded: v >> 1)
        codeType = UInt8(v >> 9 & 0x7)
        more = v >> 14 & 1 != 0
        doNotRetry = v >> 15 & 1 != 0
    }

    /// The CQE's status half-word with phase tag `phase`.
    public func completionHalfword(phase: Bool) -> UInt16 {
        (phase ? 1 : 0) | UInt16(code) << 1 | UInt16(codeType & 0x7) << 9 | (more ? 1 << 14 : 0) | (doNotRetry ? 1 << 15 : 0)
    }

    public var isSuccess: Bool { codeType == 0 && code == 0 }

    public var description: String { "SCT \(codeType) SC 0x\(String(code, radix: 16))\(doNotRetry ? " DNR" : "")" }

    // Generic command status (SCT 0).
    public static let success = NVMeStatus(.generic, 0x00)
    public static let invalidOpcode = NVMeStatus(.generic, 0x01, doNotRetry: true)
    public static let invalidField = NVMeStatus(.generic, 0x02, doNotRetry: true)
    public static let commandIDConflict = NVMeStatus(.generic, 0x03, doNotRetry: true)
    public static let dataTransferError = NVMeStatus(.generic, 0x04)
    public static let internalError = NVMeStatus(.generic, 0x06)
    public static let abortRequested = NVMeStatus(.generic, 0x07)
    public static let abortedSubmissionQueueDeleted = NVMeStatus(.generic, 0x08)
    public static let invalidNamespaceOrFormat = NVMeStatus(.generic, 0x0B, doNotRetry: true)
    public static let commandSequenceError = NVMeStatus(.generic, 0x0C, doNotRetry: true)
    public static let invalidPRPOffset = NVMeStatus(.generic, 0x13, doNotRetry: true)
    // Generic, NVM command set (0x80...).
    public static let lbaOutOfRange = NVMeStatus(.generic, 0x80, doNotRetry: true)
    public static let capacityExceeded = NVMeStatus(.generic, 0x81, doNotRetry: true)

    // Command specific status (SCT 1).
    public static let completionQueueInvalid = NVMeStatus(.commandSpecific, 0x00, doNotRetry: true)
    public static let invalidQueueIdentifier = NVMeStatus(.commandSpecific, 0x01, doNotRetry: true)
    public static let invalidQueueSize = NVMeStatus(.commandSpecific, 0x02, doNotRetry: true)
    public static let abortCommandLimitExceeded = NVMeStatus(.commandSpecific, 0x03, doNotRetry: true)
    public static let asynchronousEventRequestLimitExceeded = NVMeStatus(.commandSpecific, 0x05, doNotRetry: true)
    public static let invalidFirmwareSlot = NVMeStatus(.commandSpecific, 0x06, doNotRetry: true)
    public static let invalidInterruptVector = NVMeStatus(.commandSpecific, 0x08, doNotRetry: true)
    public static let invalidLogPage = NVMeStatus(.commandSpecific, 0x09, doNotRetry: true)
    public static let invalidQueueDeletion = NVMeStatus(.commandSpecific, 0x0C, doNotRetry: true)
    public static let featureIdentifierNotSaveable = NVMeStatus(.commandSpecific, 0x0D, doNotRetry: true)
    public static let featureNotChangeable = NVMeStatus(.commandSpecific, 0x0E, doNotRetry: true)

    // Media and data integrity errors (SCT 2).
    public static let unrecoveredReadError = NVMeStatus(.mediaAndDataIntegrity, 0x81)
    public static let writeFault = NVMeStatus(.mediaAndDataIntegrity, 0x80)
}
