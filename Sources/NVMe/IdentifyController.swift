/// The Identify Controller data structure (CNS 01h; NVMe 1.4, figure 251), 4096 bytes,
/// with the fields Linux's driver and nvme-cli read. Fields not listed are zero.
public struct IdentifyController: Sendable, Hashable {
    public static let size = 4096

    /// OACS bits (Optional Admin Command Support, bytes 257:256).
    public struct OptionalAdminCommands: OptionSet, Sendable, Hashable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        public static let securitySendReceive = Self(rawValue: 1 << 0)
        public static let formatNVM = Self(rawValue: 1 << 1)
        public static let firmwareDownloadCommit = Self(rawValue: 1 << 2)
        public static let namespaceManagement = Self(rawValue: 1 << 3)
        public static let deviceSelfTest = Self(rawValue: 1 << 4)
        public static let directives = Self(rawValue: 1 << 5)
        public static let nvmeMI = Self(rawValue: 1 << 6)
        public static let virtualizationManagement = Self(rawValue: 1 << 7)
        public static let doorbellBufferConfig = Self(rawValue: 1 << 8)
    }

    /// ONCS bits (Optional NVM Command Support, bytes 521:520).
    public struct OptionalNVMCommands: OptionSet, Sendable, Hashable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        public static let compare = Self(rawValue: 1 << 0)
        public static let writeUncorrectable = Self(rawValue: 1 << 1)
        public static let datasetManagement = Self(rawValue: 1 << 2)
        public static let writeZeroes = Self(rawValue: 1 << 3)
        public static let saveAndSelectInFeatures = Self(rawValue: 1 << 4)
        public static let reservations = Self(rawValue: 1 << 5)
        public static let timestamp = Self(rawValue: 1 << 6)
        public static let verify = Self(rawValue: 1 << 7)
    }

    /// VID, bytes 1:0.
    public var vendorID: UInt16 = 0
    /// SSVID, bytes 3:2.
    public var subsystemVendorID: UInt16 = 0
    /// SN, bytes 23:4 (ASCII, space padded).
    public var serialNumber = ""
    /// MN, bytes 63:24.
    public var modelNumber = ""
    /// FR, bytes 71:64.
    public var firmwareRevision = ""
    /// RAB, byte 72: recommended arbitration burst, a power of two.
    public var arbitrationBurst: UInt8 = 0
    /// IEEE OUI, bytes 75:73 (least significant byte first).
    public var ieeeOUI: UInt32 = 0
    /// MDTS, byte 77: the largest transfer is `(1 << MDTS)` minimum pages (0: no limit).
    public var maximumDataTransferSize: UInt8 = 0
    /// CNTLID, bytes 79:78.
    public var controllerID: UInt16 = 0
    /// VER, bytes 83:80.
    public var version: ControllerVersion = .v1_4
    /// OAES, bytes 95:92 (Optional Asynchronous Events Supported).
    public var asynchronousEventsSupported: UInt32 = 0
    /// CNTRLTYPE, byte 111 (1: I/O controller).
    public var controllerType: UInt8 = 1
    /// OACS.
    public var optionalAdminCommands: OptionalAdminCommands = []
    /// ACL, byte 258: the Abort Command Limit, 0-based.
    public var abortCommandLimit: UInt8 = 0
    /// AERL, byte 259: the Asynchronous Event Request Limit, 0-based.
    public var asynchronousEventRequestLimit: UInt8 = 0
    /// FRMW, byte 260: bit 0 slot 1 read-only, bits 3:1 number of slots.
    public var firmwareUpdates: UInt8 = 0
    /// LPA, byte 261: log page attributes.
    public var logPageAttributes: UInt8 = 0
    /// ELPE, byte 262: error log page entries, 0-based.
    public var errorLogPageEntries: UInt8 = 0
    /// NPSS, byte 263: number of power states, 0-based.
    public var powerStates: UInt8 = 0
    /// WCTEMP, bytes 267:266, Kelvin.
    public var warningTemperature: UInt16 = 0
    /// CCTEMP, bytes 269:268, Kelvin.
    public var criticalTemperature: UInt16 = 0
    /// SQES, byte 512: required 3:0 and maximum 7:4 entry sizes, as powers of two.
    public var submissionEntrySizes: UInt8 = 0x66
    /// CQES, byte 513.
    public var completionEntrySizes: UInt8 = 0x44
    /// MAXCMD, bytes 515:514.
    public var maximumOutstandingCommands: UInt16 = 0
    /// NN, bytes 519:516: the largest namespace ID.
    public var numberOfNamespaces: UInt32 = 0
    /// ONCS.
    public var optionalNVMCommands: OptionalNVMCommands = []
    /// VWC, byte 525: bit 0 a volatile write cache is present.
    public var volatileWriteCache: UInt8 = 0
    /// AWUN, bytes 527:526, 0-based logical blocks.
    public var atomicWriteUnitNormal: UInt16 = 0
    /// AWUPF, bytes 529:528.
    public var atomicWriteUnitPowerFail: UInt16 = 0
    /// SGLS, bytes 539:536 (0: SGLs not supported).
    public var sglSupport: UInt32 = 0
    /// SUBNQN, bytes 1023:768 (NUL padded).
    public var subsystemNQN = ""
    /// PSD0, bytes 2079:2048: maximum power in centiwatts (MP), entry/exit latencies (µs).
    public var powerState0MaximumPower: UInt16 = 0
    public var powerState0EntryLatency: UInt32 = 0
    public var powerState0ExitLatency: UInt32 = 0

    public init() {}

    /// The 4096 bytes.
    public var encoded: [UInt8] {
        var b = [UInt8](repeating: 0, count: Self.size)
        b.putLE(UInt64(vendorID), at: 0, width: 2)
        b.putLE(UInt64(subsystemVendorID), at: 2, width: 2)
        b.putASCII(serialNumber, at: 4, width: 20)
        b.putASCII(modelNumber, at: 24, width: 40)
        b.putASCII(firmwareRevision, at: 64, width: 8)
        b[72] = arbitrationBurst
        b.putLE(UInt64(ieeeOUI), at: 73, width: 3)
        b[77] = maximumDataTransferSize
        b.putLE(UInt64(controllerID), at: 78, width: 2)
        b.putLE(UInt64(version.rawValue), at: 80, width: 4)
        b.putLE(UInt64(asynchronousEventsSupported), at: 92, width: 4)
        b[111] = controllerType
        b.putLE(UInt64(optionalAdminCommands.rawValue), at: 256, width: 2)
        b[258] = abortCommandLimit
        b[259] = asynchronousEventRequestLimit
        b[260] = firmwareUpdates
        b[261] = logPageAttributes
        b[262] = errorLogPageEntries
        b[263] = powerStates
        b.putLE(UInt64(warningTemperature), at: 266, width: 2)
        b.putLE(UInt64(criticalTemperature), at: 268, width: 2)
        b[512] = submissionEntrySizes
        b[513] = completionEntrySizes
        b.putLE(UInt64(maximumOutstandingCommands), at: 514, width: 2)
        b.putLE(UInt64(numberOfNamespaces), at: 516, width: 4)
        b.putLE(UInt64(optionalNVMCommands.rawValue), at: 520, width: 2)
        b[525] = volatileWriteCache
        b.putLE(UInt64(atomicWriteUnitNormal), at: 526, width: 2)
        b.putLE(UInt64(atomicWriteUnitPowerFail), at: 528, width: 2)
        b.putLE(UInt64(sglSupport), at: 536, width: 4)
        let nqn = Array(subsystemNQN.utf8.prefix(255))
        for (k, byte) in nqn.enumerated() { b[768 + k] = byte }
        b.putLE(UInt64(powerState0MaximumPower), at: 2048, width: 2)
        b.putLE(UInt64(powerState0EntryLatency), at: 2052, width: 4)
        b.putLE(UInt64(powerState0ExitLatency), at: 2056, width: 4)
        return b
    }
}
