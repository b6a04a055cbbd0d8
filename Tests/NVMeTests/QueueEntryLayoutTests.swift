import NVMe
import Testing

/// Queue entries and registers against layouts written out from the specification.
@Suite struct QueueEntryLayoutTests {
    @Test func submissionEntryLayout() {
        let entry = SubmissionQueueEntry(opcode: 0x02, commandID: 0xBEEF, namespaceID: 0x0102_0304, prp1: 0x1122_3344_5566_7788,
                                         prp2: 0x99AA_BBCC_DDEE_FF00, cdw10: 0xA0A1_A2A3, cdw11: 0xB0B1_B2B3, cdw12: 0xC0C1_C2C3,
                                         cdw13: 0xD0D1_D2D3, cdw14: 0xE0E1_E2E3, cdw15: 0xF0F1_F2F3, fuse: 1, dataTransfer: 0,
                                         cdw2: 0x2222_2222, cdw3: 0x3333_3333, metadataPointer: 0x4444_4444_4444_4444)
        let expected: [UInt8] = [
            0x02, 0x01, 0xEF, 0xBE,  // CDW0: opcode, FUSE 1 in bits 9:8, CID
            0x04, 0x03, 0x02, 0x01,  // NSID
            0x22, 0x22, 0x22, 0x22, 0x33, 0x33, 0x33, 0x33,  // CDW2, CDW3
            0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44,  // MPTR
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // PRP1
            0x00, 0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99,  // PRP2
            0xA3, 0xA2, 0xA1, 0xA0, 0xB3, 0xB2, 0xB1, 0xB0, 0xC3, 0xC2, 0xC1, 0xC0,
            0xD3, 0xD2, 0xD1, 0xD0, 0xE3, 0xE2, 0xE1, 0xE0, 0xF3, 0xF2, 0xF1, 0xF0,
        ]
        #expect(entry.encoded == expected)
        #expect(SubmissionQueueEntry(expected) == entry)
        // PSDT lives in bits 15:14 of CDW0.
        var sgl = entry
        sgl.dataTransfer = 1
        #expect(sgl.encoded[1] == 0x41)
        #expect(SubmissionQueueEntry(sgl.encoded).dataTransfer == 1)
    }

    @Test func completionEntryLayout() {
        let entry = CompletionQueueEntry(dword0: 0x0000_0007, submissionQueueHead: 0x0011, submissionQueueID: 0x0003,
                                         commandID: 0x1234, phase: true, status: .lbaOutOfRange)
        // Status half-word: P = 1, SC 0x80 in bits 8:1, SCT 0 in 11:9, DNR bit 15.
        let expected: [UInt8] = [0x07, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x00, 0x03, 0x00, 0x34, 0x12, 0x01, 0x81]
        #expect(entry.encoded == expected)
        #expect(CompletionQueueEntry(expected) == entry)
        // Invalid Queue Identifier: SCT 1, SC 1, DNR; phase 0.
        let queue = CompletionQueueEntry(submissionQueueHead: 0, submissionQueueID: 0, commandID: 0, phase: false, status: .invalidQueueIdentifier)
        #expect(Array(queue.encoded[14...]) == [0x02, 0x82])
        #expect(NVMeStatus(completionHalfword: 0x8202) == .invalidQueueIdentifier)
        #expect(NVMeStatus(completionHalfword: 0x0001).isSuccess)
    }

    @Test func statusCodesAreTheSpecsNumbers() {
        let table: [(NVMeStatus, UInt8, UInt8)] = [
            (.invalidOpcode, 0, 0x01), (.invalidField, 0, 0x02), (.dataTransferError, 0, 0x04), (.abortRequested, 0, 0x07),
            (.invalidNamespaceOrFormat, 0, 0x0B), (.invalidPRPOffset, 0, 0x13), (.lbaOutOfRange, 0, 0x80),
            (.completionQueueInvalid, 1, 0x00), (.invalidQueueIdentifier, 1, 0x01), (.invalidQueueSize, 1, 0x02),
            (.asynchronousEventRequestLimitExceeded, 1, 0x05), (.invalidInterruptVector, 1, 0x08), (.invalidLogPage, 1, 0x09),
            (.invalidQueueDeletion, 1, 0x0C), (.featureIdentifierNotSaveable, 1, 0x0D), (.writeFault, 2, 0x80), (.unrecoveredReadError, 2, 0x81),
        ]
        for (status, type, code) in table {
            #expect(status.codeType == type && status.code == code, "\(status)")
        }
    }

    @Test func registerFields() {
        // CAP: MQES 1023, CQR, TO 20, DSTRD 0, CSS NVM, MPSMIN/MAX 0.
        let cap = ControllerCapabilities(maximumQueueEntries: 1023, contiguousQueuesRequired: true, timeout: 20)
        #expect(cap.rawValue == 0x0000_0020_1401_03FF)
        // CC as Linux writes it: EN, IOSQES 6, IOCQES 4, MPS 0, CSS 0.
        #expect(ControllerConfiguration(enable: true).rawValue == 0x0046_0001)
        let shutdown = ControllerConfiguration(rawValue: 0x0046_4001)
        #expect(shutdown.shutdown == .normal && shutdown.enable && shutdown.submissionEntrySize == 6 && shutdown.completionEntrySize == 4)
        #expect(ControllerStatus(rawValue: 0x9).shutdown == .complete)
        #expect(ControllerStatus(ready: true, fatal: true).rawValue == 0x3)
        #expect(AdminQueueAttributes(submissionQueueSize: 31, completionQueueSize: 31).rawValue == 0x001F_001F)
        #expect(ControllerVersion.v1_4.rawValue == 0x0001_0400)
        // Doorbells with stride 4 and 16.
        #expect(ControllerRegister.submissionTailDoorbell(queue: 0) == 0x1000)
        #expect(ControllerRegister.completionHeadDoorbell(queue: 0) == 0x1004)
        #expect(ControllerRegister.submissionTailDoorbell(queue: 3) == 0x1018)
        #expect(ControllerRegister.completionHeadDoorbell(queue: 3, dstrd: 2) == 0x1070)
        #expect(ControllerRegister.doorbell(at: 0x101C)! == (3, true))
        #expect(ControllerRegister.doorbell(at: 0x1002) == nil)
        #expect(ControllerRegister.doorbell(at: 0xFFC) == nil)
    }

    @Test func commandFieldAccessors() {
        let create = SubmissionQueueEntry(opcode: AdminOpcode.createIOCompletionQueue.rawValue, commandID: 1,
                                          cdw10: 0x03FF_0002, cdw11: 0x0005_0003)
        #expect(create.queueID == 2 && create.queueSizeMinusOne == 1023)
        #expect(create.physicallyContiguous && create.interruptsEnabled && create.interruptVector == 5)
        let read = SubmissionQueueEntry(opcode: NVMOpcode.read.rawValue, commandID: 1, cdw10: 0x89AB_CDEF, cdw11: 0x0123_4567, cdw12: 0x4000_00FF)
        #expect(read.startingLBA == 0x0123_4567_89AB_CDEF && read.blockCountMinusOne == 255 && read.forceUnitAccess)
        let log = SubmissionQueueEntry(opcode: AdminOpcode.getLogPage.rawValue, commandID: 1, cdw10: 0x007F_8002, cdw11: 0x0001, cdw12: 0x200)
        #expect(log.logPageID == 2 && log.retainAsynchronousEvent && log.logDwordsMinusOne == 0x1_007F && log.logOffset == 0x200)
        #expect(AsynchronousEvent(type: .notice, information: 0x02, logPage: 0x03).dword0 == 0x0003_0202)
    }
}
