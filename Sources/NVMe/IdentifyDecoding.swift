/// Decoding of the Identify data structures a driver reads back from a controller: the
/// fields `IdentifyController` and `IdentifyNamespace` describe, at the offsets their
/// `encoded` forms use (NVMe 1.4, figures 245 and 251).
extension IdentifyController {
    /// The fields of a 4096-byte Identify Controller data structure; shorter input is
    /// read as if zero-padded.
    public init(decoding input: [UInt8]) {
        var b = input
        if b.count < Self.size { b += [UInt8](repeating: 0, count: Self.size - b.count) }
        self.init()
        vendorID = UInt16(b.le(0, 2))
        subsystemVendorID = UInt16(b.le(2, 2))
        serialNumber = b.trimmedASCII(4, 20)
        modelNumber = b.trimmedASCII(24, 40)
        firmwareRevision = b.trimmedASCII(64, 8)
        arbitrationBurst = b[72]
        ieeeOUI = UInt32(b.le(73, 3))
        maximumDataTransferSize = b[77]
        controllerID = UInt16(b.le(78, 2))
        version = ControllerVersion(rawValue: UInt32(b.le(80, 4)))
        asynchronousEventsSupported = UInt32(b.le(92, 4))
        controllerType = b[111]
        optionalAdminCommands = OptionalAdminCommands(rawValue: UInt16(b.le(256, 2)))
        abortCommandLimit = b[258]
        asynchronousEventRequestLimit = b[259]
        firmwareUpdates = b[260]
        logPageAttributes = b[261]
        errorLogPageEntries = b[262]
        powerStates = b[263]
        warningTemperature = UInt16(b.le(266, 2))
        criticalTemperature = UInt16(b.le(268, 2))
        submissionEntrySizes = b[512]
        completionEntrySizes = b[513]
        maximumOutstandingCommands = UInt16(b.le(514, 2))
        numberOfNamespaces = UInt32(b.le(516, 4))
        optionalNVMCommands = OptionalNVMCommands(rawValue: UInt16(b.le(520, 2)))
        volatileWriteCache = b[525]
        atomicWriteUnitNormal = UInt16(b.le(526, 2))
        atomicWriteUnitPowerFail = UInt16(b.le(528, 2))
        sglSupport = UInt32(b.le(536, 4))
        subsystemNQN = String(decoding: b[768..<1024].prefix { $0 != 0 }, as: UTF8.self)
        powerState0MaximumPower = UInt16(b.le(2048, 2))
        powerState0EntryLatency = UInt32(b.le(2052, 4))
        powerState0ExitLatency = UInt32(b.le(2056, 4))
    }
}

extension LBAFormat {
    /// From its dword: MS 15:0, LBADS 23:16, RP 25:24.
    public init(dword: UInt32) {
        self.init(metadataSize: UInt16(truncatingIfNeeded: dword), dataSizeShift: UInt8(truncatingIfNeeded: dword >> 16),
                  relativePerformance: UInt8(dword >> 24 & 0x3))
    }
}

extension IdentifyNamespace {
    /// The fields of a 4096-byte Identify Namespace data structure (NLBAF + 1 formats,
    /// at most 16); shorter input is read as if zero-padded.
    public init(decoding input: [UInt8]) {
        var b = input
        if b.count < Self.size { b += [UInt8](repeating: 0, count: Self.size - b.count) }
        self.init()
        size = b.le(0, 8)
        capacity = b.le(8, 8)
        utilization = b.le(16, 8)
        features = b[24]
        formattedLBASize = b[26]
        deallocateFeatures = b[33]
        optimalIOBoundary = UInt16(b.le(46, 2))
        nguid = Array(b[104..<120])
        eui64 = Array(b[120..<128])
        let count = min(Int(b[25]) + 1, 16)
        formats = (0..<count).map { LBAFormat(dword: UInt32(b.le(128 + 4 * $0, 4))) }
    }

    /// The LBA format in use (FLBAS bits 3:0), `nil` when it names no listed format.
    public var formatInUse: LBAFormat? {
        let index = Int(formattedLBASize & 0xF)
        return index < formats.count ? formats[index] : nil
    }
}

extension Array where Element == UInt8 {
    /// The ASCII field of `width` bytes at `offset` without its space or NUL padding.
    package func trimmedASCII(_ offset: Int, _ width: Int) -> String {
        var field = self[offset..<(offset + width)]
        while let last = field.last, last == 0x20 || last == 0 { field = field.dropLast() }
        return String(decoding: field, as: UTF8.self)
    }
}
