import Glibc
import NVMe
import NVMeController
import Testing
import TestSupport
import VFIO

/// Error status asynchronous events for bad doorbells: the outstanding Asynchronous Event
/// Request completes with type, information and log page; the error log has the entry;
/// the type stays masked until its log page is read.
@Suite struct AsynchronousEventTests {
    static let data = NVMeTestHost.dataOffset
    static let aer = SubmissionQueueEntry(opcode: AdminOpcode.asynchronousEventRequest.rawValue, commandID: 0)

    private func readyHost(ioQueues: Int = 16) throws -> NVMeTestHost {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20, ioQueues: ioQueues))
        try host.enable()
        return host
    }

    /// Places and rings an Asynchronous Event Request, then proves it is outstanding: an
    /// Identify rung after it completes first.
    private func outstandingRequest(_ host: NVMeTestHost) throws -> UInt16 {
        let id = host.place(Self.aer, queue: 0)
        try host.ring(0)
        #expect(try host.identify(cns: .controller).0 == .success)
        return id
    }

    /// The Error Information log (RAE as given), entries of 64 bytes.
    private func errorLog(_ host: NVMeTestHost, retain: Bool = false) throws -> [UInt8] {
        let dwords: UInt32 = 4 * 64 / 4 - 1
        let c = try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.getLogPage.rawValue, commandID: 0, namespaceID: 0xFFFF_FFFF,
                                                    prp1: host.iova(Self.data),
                                                    cdw10: dwords << 16 | (retain ? 1 << 15 : 0) | UInt32(LogPageID.errorInformation.rawValue)))
        #expect(c.status == .success)
        return host.bytes(Self.data, 4 * 64)
    }

    private func expectEvent(_ c: CompletionQueueEntry, id: UInt16, _ information: ErrorStatusEventInformation,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(c.commandID == id && c.status == .success, sourceLocation: sourceLocation)
        #expect(c.dword0 == AsynchronousEvent(type: .errorStatus, information: information.rawValue,
                                              logPage: LogPageID.errorInformation.rawValue).dword0, sourceLocation: sourceLocation)
    }

    @Test func aDoorbellOfNoQueueIsAnInvalidDoorbellRegisterEvent() throws {
        let host = try readyHost()
        let request = try outstandingRequest(host)
        try host.write32(1, ControllerRegister.submissionTailDoorbell(queue: 5))
        expectEvent(try host.nextCompletion(0), id: request, .invalidDoorbellRegister)
        let log = try errorLog(host)
        #expect(log.le(0, 8) == 1)                 // error count
        #expect(log.le(8, 2) == 0xFFFF)            // no submission queue
        #expect(log.le(10, 2) == 0xFFFF)           // no command
        #expect(NVMeStatus(completionHalfword: UInt16(log.le(12, 2))) == .invalidQueueIdentifier)
        #expect(try !host.status.fatal)
    }

    @Test func doorbellValuesTheQueueCannotTakeAreInvalidDoorbellWriteValueEvents() throws {
        let host = try readyHost()
        try host.createIOQueuePair(1, entries: 8)
        // An SQ tail equal to the queue's size.
        var request = try outstandingRequest(host)
        try host.write32(8, ControllerRegister.submissionTailDoorbell(queue: 1))
        expectEvent(try host.nextCompletion(0), id: request, .invalidDoorbellWriteValue)
        _ = try errorLog(host)
        // A CQ head past the entries posted (nothing posted on CQ 1).
        request = try outstandingRequest(host)
        try host.write32(3, ControllerRegister.completionHeadDoorbell(queue: 1))
        expectEvent(try host.nextCompletion(0), id: request, .invalidDoorbellWriteValue)
        let log = try errorLog(host)
        #expect(log.le(0, 8) == 2 && log.le(64, 8) == 1)  // newest first
        #expect(NVMeStatus(completionHalfword: UInt16(log.le(12, 2))) == .invalidField)
        // The queue works on: the bad values changed nothing.
        #expect(try host.submit(ioCommand(.read, lba: 0, blocks: 1, prp1: host.iova(Self.data)), queue: 1).status == .success)
    }

    /// A reported event masks its type until the log page is read without Retain
    /// Asynchronous Event; that read also clears the event raised meanwhile (the log
    /// holds its entry), and the next error is reported.
    @Test func aReportedTypeIsMaskedUntilItsLogPageIsRead() throws {
        let host = try readyHost()
        let first = try outstandingRequest(host)
        try host.write32(1, ControllerRegister.submissionTailDoorbell(queue: 3))
        expectEvent(try host.nextCompletion(0), id: first, .invalidDoorbellRegister)
        let second = try outstandingRequest(host)
        try host.write32(16, ControllerRegister.submissionTailDoorbell(queue: 0))  // admin queue of 16: invalid value
        // Masked: a command rung after it completes with nothing before it.
        #expect(try host.identify(cns: .controller).0 == .success)
        // Read with Retain Asynchronous Event: still masked.
        _ = try errorLog(host, retain: true)
        #expect(try host.identify(cns: .controller).0 == .success)
        // Read without: both errors are in the log; the masked one is cleared with it.
        let log = try errorLog(host)
        #expect(log.le(0, 8) == 2 && log.le(64, 8) == 1)
        #expect(try host.identify(cns: .controller).0 == .success)
        // Unmasked: the next error completes the request.
        try host.write32(1, ControllerRegister.completionHeadDoorbell(queue: 7))
        expectEvent(try host.nextCompletion(0), id: second, .invalidDoorbellRegister)
    }

    /// Without a request outstanding the event waits; the next request takes it at once.
    @Test func anEventWaitsForARequest() throws {
        let host = try readyHost()
        try host.write32(1, ControllerRegister.completionHeadDoorbell(queue: 2))
        let c = try host.admin(Self.aer)
        expectEvent(c, id: c.commandID, .invalidDoorbellRegister)
    }

    /// An SQ tail doorbell's ioeventfd signalled with no shadow doorbell buffer: the value
    /// is lost, which is an Invalid Doorbell Write Value.
    @Test func anIOEventSignalWithoutAShadowBufferIsAnInvalidDoorbellWriteValue() throws {
        let host = try readyHost()
        try host.createIOQueuePair(1, entries: 8)
        let events = try host.client.regionIOEventFDs(PCIRegionIndex.bar0.rawValue)
        let request = try outstandingRequest(host)
        host.place(ioCommand(.read, lba: 0, blocks: 1, prp1: host.iova(Self.data)), queue: 1)
        try events[0].event.signal()
        expectEvent(try host.nextCompletion(0), id: request, .invalidDoorbellWriteValue)
        // The eventfd of SQ 2's tail doorbell: no such queue.
        _ = try errorLog(host)
        let next = try outstandingRequest(host)
        try events[1].event.signal()
        expectEvent(try host.nextCompletion(0), id: next, .invalidDoorbellRegister)
    }
}
