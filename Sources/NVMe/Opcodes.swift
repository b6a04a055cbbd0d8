/// Admin command set opcodes (NVMe 1.4, figure 139).
public enum AdminOpcode: UInt8, Sendable, CaseIterable {
    case deleteIOSubmissionQueue = 0x00
    case createIOSubmissionQueue = 0x01
    case getLogPage = 0x02
    case deleteIOCompletionQueue = 0x04
    case createIOCompletionQueue = 0x05
    case identify = 0x06
    case abort = 0x08
    case setFeatures = 0x09
    case getFeatures = 0x0A
    case asynchronousEventRequest = 0x0C
    case namespaceManagement = 0x0D
    case firmwareCommit = 0x10
    case firmwareImageDownload = 0x11
    case deviceSelfTest = 0x14
    case namespaceAttachment = 0x15
    case keepAlive = 0x18
    case directiveSend = 0x19
    case directiveReceive = 0x1A
    case virtualizationManagement = 0x1C
    case nvmeMISend = 0x1D
    case nvmeMIReceive = 0x1E
    case doorbellBufferConfig = 0x7C
    case formatNVM = 0x80
    case securitySend = 0x81
    case securityReceive = 0x82
    case sanitize = 0x84
    case getLBAStatus = 0x86
}

/// NVM command set opcodes (NVMe 1.4, figure 346).
public enum NVMOpcode: UInt8, Sendable, CaseIterable {
    case flush = 0x00
    case write = 0x01
    case read = 0x02
    case writeUncorrectable = 0x04
    case compare = 0x05
    case writeZeroes = 0x08
    case datasetManagement = 0x09
    case verify = 0x0C
    case reservationRegister = 0x0D
    case reservationReport = 0x0E
    case reservationAcquire = 0x11
    case reservationRelease = 0x15
}

/// Identify's CNS values (CDW10 bits 7:0) that Linux uses.
public enum IdentifyCNS: UInt8, Sendable {
    /// The Identify Namespace data structure of CDW1's NSID.
    case namespace = 0x00
    /// The Identify Controller data structure.
    case controller = 0x01
    /// The active namespace IDs greater than CDW1's NSID, ascending, up to 1024.
    case activeNamespaceList = 0x02
    /// The namespace identification descriptors of CDW1's NSID.
    case namespaceDescriptorList = 0x03
    /// The I/O command set specific Identify Controller data structure of the command
    /// set in CDW11 bits 31:24 (CSI; 0 = NVM: VSL, WZSL, WUSL, DMRL, DMRSL, DMSL).
    case ioCommandSetController = 0x06
}

/// Feature identifiers (Set/Get Features CDW10 bits 7:0; NVMe 1.4, figure 271).
public enum FeatureID: UInt8, Sendable, CaseIterable {
    case arbitration = 0x01
    case powerManagement = 0x02
    case lbaRangeType = 0x03
    case temperatureThreshold = 0x04
    case errorRecovery = 0x05
    case volatileWriteCache = 0x06
    case numberOfQueues = 0x07
    case interruptCoalescing = 0x08
    case interruptVectorConfiguration = 0x09
    case writeAtomicityNormal = 0x0A
    case asynchronousEventConfiguration = 0x0B
    case autonomousPowerStateTransition = 0x0C
    case hostMemoryBuffer = 0x0D
    case timestamp = 0x0E
    case keepAliveTimer = 0x0F
}

/// Log page identifiers (Get Log Page CDW10 bits 7:0; NVMe 1.4, figure 191).
public enum LogPageID: UInt8, Sendable, CaseIterable {
    case errorInformation = 0x01
    case smartHealth = 0x02
    case firmwareSlot = 0x03
    case changedNamespaceList = 0x04
    case commandsSupportedAndEffects = 0x05
}

/// Asynchronous event types (completion DW0 bits 2:0 of an Asynchronous Event Request).
public enum AsynchronousEventType: UInt8, Sendable {
    case errorStatus = 0
    case smartHealthStatus = 1
    case notice = 2
    case ioCommandSetSpecific = 6
    case vendorSpecific = 7
}

/// Asynchronous event information for the Error status type (event type 0); the
/// controller points the host at the Error Information log page (01h).
public enum ErrorStatusEventInformation: UInt8, Sendable {
    /// A doorbell of a queue that has not been created (or beyond the supported queues).
    case invalidDoorbellRegister = 0
    /// A doorbell value the queue cannot take: outside the queue, an SQ tail making it
    /// overflow, a CQ head past the entries posted.
    case invalidDoorbellWriteValue = 1
    case diagnosticFailure = 2
    case persistentInternalError = 3
    case transientInternalError = 4
    case firmwareImageLoadError = 5
}

/// The completion DW0 of an Asynchronous Event Request: type 2:0, information 15:8, the
/// log page to read 23:16.
public struct AsynchronousEvent: Sendable, Hashable {
    public var type: AsynchronousEventType
    public var information: UInt8
    public var logPage: UInt8
    public init(type: AsynchronousEventType, information: UInt8, logPage: UInt8) {
        self.type = type
        self.information = information
        self.logPage = logPage
    }
    public var dword0: UInt32 { UInt32(type.rawValue) | UInt32(information) << 8 | UInt32(logPage) << 16 }
}
