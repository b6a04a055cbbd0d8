import NVMe

/// Asynchronous events (Asynchronous Event Request, admin opcode 0Ch) and the error log.
///
/// The controller raises Error status events (type 0) where it detects them: a doorbell
/// of a queue that does not exist (Invalid Doorbell Register), a doorbell value the queue
/// cannot take (Invalid Doorbell Write Value). Each also adds an Error Information log
/// entry (command and submission queue FFFFh: no command is involved). Asynchronous Event
/// Configuration (Feature 0Bh) has no bit for Error status events: they are always
/// reported. Once an event is reported, further events of its type wait (masked) until
/// the host reads its log page without Retain Asynchronous Event; events of one type and
/// information already waiting are not queued twice.
///
/// Events are completed by the worker (`pickWork`), never on the serving thread: the
/// completion is a DMA write.
extension ControllerCore {
    /// Events waiting at most (the distinct type/information pairs the controller raises
    /// fit with room to spare): a host that never reads its log cannot grow the list.
    static let pendingEventLimit = 16

    /// Queues `event` for the next Asynchronous Event Request (the worker completes it).
    static func raise(_ event: AsynchronousEvent, _ s: inout ControllerState) {
        guard !s.pendingEvents.contains(event), s.pendingEvents.count < pendingEventLimit else { return }
        s.pendingEvents.append(event)
    }

    /// The oldest outstanding request and the oldest waiting event whose type is not
    /// masked (reported, its log page not read yet); the event's type is masked from now.
    static func takeReportableEvent(_ s: inout ControllerState) -> (commandID: UInt16, event: AsynchronousEvent)? {
        guard !s.outstandingEventRequests.isEmpty else { return nil }
        let masked = Set(s.reportedEvents.map(\.type))
        guard let index = s.pendingEvents.firstIndex(where: { !masked.contains($0.type) }) else { return nil }
        let event = s.pendingEvents.remove(at: index)
        s.reportedEvents.append(event)
        return (s.outstandingEventRequests.removeFirst(), event)
    }

    /// Get Log Page of `page` without Retain Asynchronous Event: the events it reports
    /// are cleared (waiting or reported), which unmasks their types.
    static func clearEvents(logPage page: UInt8, _ s: inout ControllerState) {
        s.pendingEvents.removeAll { $0.logPage == page }
        s.reportedEvents.removeAll { $0.logPage == page }
    }

    /// Adds an Error Information log entry (the newest first, `errorLogEntries` kept).
    static func logError(_ s: inout ControllerState, submissionQueueID: UInt16, commandID: UInt16, status: NVMeStatus, namespaceID: UInt32 = 0) {
        s.errorCount += 1
        s.errorLog.insert(ErrorLogEntry(errorCount: s.errorCount, submissionQueueID: submissionQueueID, commandID: commandID,
                                        status: status, namespaceID: namespaceID), at: 0)
        if s.errorLog.count > errorLogEntries { s.errorLog.removeLast() }
    }

    /// A bad doorbell write: an error log entry (status Invalid Queue Identifier for a
    /// register of no queue, Invalid Field for a bad value) and an Error status event.
    /// Nothing while the same event waits or awaits its log page read (a host repeating
    /// the write, or a bad shadow value read again, does not flood the log).
    static func doorbellError(_ information: ErrorStatusEventInformation, _ s: inout ControllerState) {
        let event = AsynchronousEvent(type: .errorStatus, information: information.rawValue, logPage: LogPageID.errorInformation.rawValue)
        guard !s.pendingEvents.contains(event), !s.reportedEvents.contains(event) else { return }
        logError(&s, submissionQueueID: 0xFFFF, commandID: 0xFFFF,
                 status: information == .invalidDoorbellRegister ? .invalidQueueIdentifier : .invalidField)
        raise(event, &s)
    }
}
