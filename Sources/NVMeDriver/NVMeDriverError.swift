import NVMe
import VFIO

/// A command the controller completed with a status other than success: which command,
/// on which queue, and the status (SCT, SC, DNR) the completion carried.
public struct NVMeCommandFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// The command's name ("Read", "Identify", ...).
    public var command: String
    public var opcode: UInt8
    /// 0 for the admin queue.
    public var queue: UInt16
    public var status: NVMeStatus

    public init(command: String, opcode: UInt8, queue: UInt16, status: NVMeStatus) {
        self.command = command
        self.opcode = opcode
        self.queue = queue
        self.status = status
    }

    public var description: String {
        "\(command) (opcode \(hex2(opcode))h, queue \(queue)) failed: \(NVMeStatusName.of(status, admin: queue == 0)) "
            + "(SCT \(status.codeType), SC \(hex2(status.code))h\(status.doNotRetry ? ", DNR" : ""))"
    }
}

/// Why a driver operation failed.
public enum NVMeDriverError: Error, Sendable, CustomStringConvertible {
    /// The controller completed the command with an error status.
    case command(NVMeCommandFailure)
    /// A VFIO call failed (region access, DMA mapping, interrupts).
    case transport(VFIOError)
    /// The controller did not reach `what` (CSTS.RDY, CSTS.SHST, a completion) in time.
    case timeout(String)
    /// CSTS.CFS is set: the controller reported a fatal error; only a reset recovers.
    case controllerFatal(String)
    /// The device is not an NVMe controller this driver can run (no BAR0, no NVM command
    /// set, a page size it lacks, no namespace).
    case unsupported(String)
    /// A caller's argument the driver refuses before reaching the device.
    case invalidArgument(String)
    /// The controller was closed (or the queue failed) before the command completed.
    case closed

    public var description: String {
        switch self {
        case .command(let failure): return failure.description
        case .transport(let error): return "VFIO: \(error)"
        case .timeout(let what): return "timed out waiting for \(what)"
        case .controllerFatal(let what): return "controller fatal status (CSTS.CFS) \(what)"
        case .unsupported(let what): return "unsupported: \(what)"
        case .invalidArgument(let what): return "invalid argument: \(what)"
        case .closed: return "the NVMe controller was closed"
        }
    }

    /// The failed command's status, when the error is a completion status.
    public var status: NVMeStatus? {
        if case .command(let failure) = self { return failure.status }
        return nil
    }
}

/// Names of the status codes (NVMe 1.4, figures 126-129) a user is likely to meet.
public enum NVMeStatusName {
    public static func of(_ status: NVMeStatus, admin: Bool) -> String {
        switch (status.codeType, status.code) {
        case (0, 0x00): return "Successful Completion"
        case (0, 0x01): return "Invalid Command Opcode"
        case (0, 0x02): return "Invalid Field in Command"
        case (0, 0x03): return "Command ID Conflict"
        case (0, 0x04): return "Data Transfer Error"
        case (0, 0x05): return "Commands Aborted due to Power Loss Notification"
        case (0, 0x06): return "Internal Error"
        case (0, 0x07): return "Command Abort Requested"
        case (0, 0x08): return "Command Aborted due to SQ Deletion"
        case (0, 0x0B): return "Invalid Namespace or Format"
        case (0, 0x0C): return "Command Sequence Error"
        case (0, 0x0D): return "Invalid SGL Segment Descriptor"
        case (0, 0x0F): return "Invalid Use of Controller Memory Buffer"
        case (0, 0x13): return "PRP Offset Invalid"
        case (0, 0x80): return "LBA Out of Range"
        case (0, 0x81): return "Capacity Exceeded"
        case (0, 0x82): return "Namespace Not Ready"
        case (1, 0x00): return "Completion Queue Invalid"
        case (1, 0x01): return "Invalid Queue Identifier"
        case (1, 0x02): return "Invalid Queue Size"
        case (1, 0x03): return "Abort Command Limit Exceeded"
        case (1, 0x05): return "Asynchronous Event Request Limit Exceeded"
        case (1, 0x06): return "Invalid Firmware Slot"
        case (1, 0x08): return "Invalid Interrupt Vector"
        case (1, 0x09): return "Invalid Log Page"
        case (1, 0x0A): return "Invalid Format"
        case (1, 0x0C): return "Invalid Queue Deletion"
        case (1, 0x0D): return "Feature Identifier Not Saveable"
        case (1, 0x0E): return "Feature Not Changeable"
        case (1, 0x80) where !admin: return "Conflicting Attributes"
        case (1, 0x82) where !admin: return "Attempted Write to Read Only Range"
        case (2, 0x80): return "Write Fault"
        case (2, 0x81): return "Unrecovered Read Error"
        case (2, 0x85): return "Compare Failure"
        case (2, 0x86): return "Access Denied"
        case (2, 0x87): return "Deallocated or Unwritten Logical Block"
        default: return "status"
        }
    }
}

func hex2(_ value: UInt8) -> String {
    let text = String(value, radix: 16, uppercase: true)
    return value < 0x10 ? "0" + text : text
}

/// Command names for errors.
enum CommandName {
    static func admin(_ opcode: UInt8) -> String {
        switch AdminOpcode(rawValue: opcode) {
        case .deleteIOSubmissionQueue: return "Delete I/O Submission Queue"
        case .createIOSubmissionQueue: return "Create I/O Submission Queue"
        case .getLogPage: return "Get Log Page"
        case .deleteIOCompletionQueue: return "Delete I/O Completion Queue"
        case .createIOCompletionQueue: return "Create I/O Completion Queue"
        case .identify: return "Identify"
        case .abort: return "Abort"
        case .setFeatures: return "Set Features"
        case .getFeatures: return "Get Features"
        case .asynchronousEventRequest: return "Asynchronous Event Request"
        case .doorbellBufferConfig: return "Doorbell Buffer Config"
        case .formatNVM: return "Format NVM"
        case .some(let other): return "\(other)"
        case nil: return "admin opcode \(hex2(opcode))h"
        }
    }

    static func io(_ opcode: UInt8) -> String {
        switch NVMOpcode(rawValue: opcode) {
        case .flush: return "Flush"
        case .write: return "Write"
        case .read: return "Read"
        case .writeZeroes: return "Write Zeroes"
        case .datasetManagement: return "Dataset Management"
        case .compare: return "Compare"
        case .verify: return "Verify"
        case .some(let other): return "\(other)"
        case nil: return "I/O opcode \(hex2(opcode))h"
        }
    }
}
