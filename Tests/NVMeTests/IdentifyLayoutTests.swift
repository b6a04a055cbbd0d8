import NVMe
import Testing

/// Identify data structures and log pages at the byte offsets the specification gives.
@Suite struct IdentifyLayoutTests {
    @Test func identifyController() {
        var c = IdentifyController()
        c.vendorID = 0x1234
        c.subsystemVendorID = 0x5678
        c.serialNumber = "SN1"
        c.modelNumber = "Model"
        c.firmwareRevision = "1.2"
        c.arbitrationBurst = 6
        c.ieeeOUI = 0x00AB_CDEF
        c.maximumDataTransferSize = 5
        c.controllerID = 0x0102
        c.asynchronousEventsSupported = 0x100
        c.optionalAdminCommands = [.doorbellBufferConfig, .formatNVM]
        c.abortCommandLimit = 3
        c.asynchronousEventRequestLimit = 3
        c.firmwareUpdates = 3
        c.logPageAttributes = 4
        c.errorLogPageEntries = 15
        c.warningTemperature = 0x157
        c.criticalTemperature = 0x175
        c.maximumOutstandingCommands = 0x400
        c.numberOfNamespaces = 2
        c.optionalNVMCommands = [.datasetManagement, .writeZeroes]
        c.volatileWriteCache = 7
        c.subsystemNQN = "nqn.x"
        c.powerState0MaximumPower = 2500
        let b = c.encoded
        var expected = [UInt8](repeating: 0, count: 4096)
        expected[0...3] = [0x34, 0x12, 0x78, 0x56]
        expected[4..<24] = ArraySlice(Array("SN1".utf8) + [UInt8](repeating: 0x20, count: 17))
        expected[24..<64] = ArraySlice(Array("Model".utf8) + [UInt8](repeating: 0x20, count: 35))
        expected[64..<72] = ArraySlice(Array("1.2".utf8) + [UInt8](repeating: 0x20, count: 5))
        expected[72] = 6
        expected[73...75] = [0xEF, 0xCD, 0xAB]
        expected[77] = 5
        expected[78...79] = [0x02, 0x01]
        expected[80...83] = [0x00, 0x04, 0x01, 0x00]  // VER 1.4.0
        expected[92...95] = [0x00, 0x01, 0x00, 0x00]
        expected[111] = 1  // I/O controller
        expected[256...257] = [0x02, 0x01]  // OACS: format (bit 1), doorbell buffer config (bit 8)
        expected[258...263] = [3, 3, 3, 4, 15, 0]
        expected[266...269] = [0x57, 0x01, 0x75, 0x01]
        expected[512...513] = [0x66, 0x44]
        expected[514...515] = [0x00, 0x04]
        expected[516...519] = [2, 0, 0, 0]
        expected[520...521] = [0x0C, 0x00]  // ONCS: DSM (bit 2), Write Zeroes (bit 3)
        expected[525] = 7
        expected[768..<773] = ArraySlice(Array("nqn.x".utf8))
        expected[2048...2049] = [0xC4, 0x09]
        #expect(b == expected)
    }

    @Test func identifyNamespace() {
        var n = IdentifyNamespace()
        n.size = 0x1_0000_0000
        n.capacity = 0x1_0000_0000
        n.utilization = 0x8000
        n.formats = [LBAFormat(dataSizeShift: 9), LBAFormat(metadataSize: 8, dataSizeShift: 12, relativePerformance: 1)]
        n.formattedLBASize = 1
        n.deallocateFeatures = 0x09
        n.nguid = Array(1...16)
        n.eui64 = Array(21...28)
        let b = n.encoded
        var expected = [UInt8](repeating: 0, count: 4096)
        expected[0..<8] = [0, 0, 0, 0, 1, 0, 0, 0]
        expected[8..<16] = [0, 0, 0, 0, 1, 0, 0, 0]
        expected[16..<24] = [0, 0x80, 0, 0, 0, 0, 0, 0]
        expected[25] = 1  // NLBAF, 0-based
        expected[26] = 1
        expected[33] = 0x09
        expected[104..<120] = ArraySlice(Array(1...16))
        expected[120..<128] = ArraySlice(Array(21...28))
        expected[128..<132] = [0, 0, 9, 0]
        expected[132..<136] = [8, 0, 12, 1]
        #expect(b == expected)
    }

    @Test func namespaceListsAndDescriptors() {
        let list = ActiveNamespaceList.encoded(active: [3, 1, 2, 7], after: 1)
        #expect(Array(list[0..<16]) == [2, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0])
        #expect(list.count == 4096)
        let descriptors = NamespaceIdentifier.encodedList([.eui64(Array(1...8)), .nguid(Array(11...26)), .commandSet(0)])
        var expected = [UInt8](repeating: 0, count: 4096)
        expected[0...3] = [1, 8, 0, 0]
        expected[4..<12] = ArraySlice(Array(1...8))
        expected[12...15] = [2, 16, 0, 0]
        expected[16..<32] = ArraySlice(Array(11...26))
        expected[32...36] = [4, 1, 0, 0, 0]
        #expect(descriptors == expected)
    }

    @Test func logPages() {
        var smart = SMARTHealthLog()
        smart.criticalWarning = 0x02
        smart.compositeTemperature = 0x013B
        smart.availableSpare = 100
        smart.availableSpareThreshold = 10
        smart.percentageUsed = 3
        smart.dataUnitsRead = 0x0102
        smart.hostWriteCommands = 7
        smart.errorLogEntries = 9
        let s = smart.encoded
        #expect(s.count == 512)
        #expect(Array(s[0..<6]) == [0x02, 0x3B, 0x01, 100, 10, 3])
        #expect(Array(s[32..<34]) == [0x02, 0x01])
        #expect(s[80] == 7 && s[176] == 9)
        #expect(s.enumerated().filter { ![0, 1, 2, 3, 4, 5, 32, 33, 80, 176].contains($0.offset) }.allSatisfy { $0.element == 0 })

        let fw = FirmwareSlotLog(activeSlot: 1, revisions: ["1.0", "", "abcdefghij"]).encoded
        #expect(fw[0] == 1)
        #expect(Array(fw[8..<16]) == Array("1.0     ".utf8))
        #expect(Array(fw[16..<24]) == [UInt8](repeating: 0, count: 8))
        #expect(Array(fw[24..<32]) == Array("abcdefgh".utf8))

        let error = ErrorLogEntry(errorCount: 5, submissionQueueID: 1, commandID: 0x22, status: .lbaOutOfRange,
                                  parameterErrorLocation: 0x0128, lba: 0x99, namespaceID: 1).encoded
        #expect(Array(error[0..<28]) == [5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x22, 0, 0x00, 0x81, 0x28, 0x01,
                                         0x99, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])

        let range = DatasetRange(attributes: 1, blockCount: 0x10, startingLBA: 0x1_0000_0002)
        #expect(range.encoded == [1, 0, 0, 0, 0x10, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0])
        #expect(DatasetRange(range.encoded) == range)
    }
}
