import NVMe

/// Builders of the commands the driver sends, and running one on a queue.
enum Command {
    static func admin(_ opcode: AdminOpcode, namespace: UInt32 = 0, data: NVMeBuffer? = nil, length: Int = 0,
                      cdw10: UInt32 = 0, cdw11: UInt32 = 0, cdw12: UInt32 = 0, cdw13: UInt32 = 0) -> PreparedCommand {
        PreparedCommand(entry: SubmissionQueueEntry(opcode: opcode.rawValue, commandID: 0, namespaceID: namespace,
                                                    cdw10: cdw10, cdw11: cdw11, cdw12: cdw12, cdw13: cdw13),
                        name: CommandName.admin(opcode.rawValue), data: data.map { ($0.iova, length) })
    }

    static func identify(cns: UInt8, namespace: UInt32, into buffer: NVMeBuffer) -> PreparedCommand {
        admin(.identify, namespace: namespace, data: buffer, length: 4096, cdw10: UInt32(cns))
    }

    static func setFeatures(_ feature: UInt8, value: UInt32) -> PreparedCommand {
        admin(.setFeatures, cdw10: UInt32(feature), cdw11: value)
    }

    static func doorbellBufferConfig(shadow: UInt64, eventIndex: UInt64) -> PreparedCommand {
        var command = admin(.doorbellBufferConfig)
        command.entry.prp1 = shadow
        command.entry.prp2 = eventIndex
        return command
    }

    /// Create I/O Completion Queue: QSIZE 0-based, physically contiguous, interrupts
    /// enabled on the queue's vector unless polled.
    static func createCompletionQueue(_ queue: QueuePair) -> PreparedCommand {
        var command = admin(.createIOCompletionQueue, cdw10: UInt32(queue.entries - 1) << 16 | UInt32(queue.id),
                            cdw11: UInt32(queue.vector) << 16 | (queue.isPolled ? 0 : 0x2) | 0x1)
        command.entry.prp1 = queue.completionQueue.iova
        return command
    }

    /// Create I/O Submission Queue on the completion queue of the same id, priority urgent
    /// (ignored under round robin), physically contiguous.
    static func createSubmissionQueue(_ queue: QueuePair) -> PreparedCommand {
        var command = admin(.createIOSubmissionQueue, cdw10: UInt32(queue.entries - 1) << 16 | UInt32(queue.id),
                            cdw11: UInt32(queue.id) << 16 | 0x1)
        command.entry.prp1 = queue.submissionQueue.iova
        return command
    }

    static func io(_ opcode: NVMOpcode, namespace: UInt32, data: (UInt64, Int)? = nil,
                   cdw10: UInt32 = 0, cdw11: UInt32 = 0, cdw12: UInt32 = 0) -> PreparedCommand {
        PreparedCommand(entry: SubmissionQueueEntry(opcode: opcode.rawValue, commandID: 0, namespaceID: namespace,
                                                    cdw10: cdw10, cdw11: cdw11, cdw12: cdw12),
                        name: CommandName.io(opcode.rawValue), data: data)
    }

    /// Read, Write and Write Zeroes: SLBA in CDW11:CDW10, NLB (0-based) in CDW12 15:0.
    static func blocks(_ opcode: NVMOpcode, namespace: UInt32, lba: UInt64, blocks: Int, data: (UInt64, Int)?, flags: UInt32 = 0) -> PreparedCommand {
        io(opcode, namespace: namespace, data: data, cdw10: UInt32(truncatingIfNeeded: lba), cdw11: UInt32(truncatingIfNeeded: lba >> 32),
           cdw12: UInt32(blocks - 1) & 0xFFFF | flags)
    }

    /// Runs `command` on `queue`; a completion with an error status is `.command`.
    @discardableResult
    static func run(_ queue: QueuePair, _ command: PreparedCommand) async throws(NVMeDriverError) -> CompletionQueueEntry {
        let result = await queue.submit(command)
        return try check(result, command, queue: queue.id).get()
    }

    static func check(_ result: Result<CompletionQueueEntry, NVMeDriverError>, _ command: PreparedCommand, queue: UInt16)
        -> Result<CompletionQueueEntry, NVMeDriverError> {
        result.flatMap { entry in
            entry.status.isSuccess ? .success(entry)
                : .failure(.command(NVMeCommandFailure(command: command.name, opcode: command.entry.opcode, queue: queue, status: entry.status)))
        }
    }
}
