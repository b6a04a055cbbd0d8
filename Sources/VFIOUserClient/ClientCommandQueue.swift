import VFIO
import VFIOUserWire
import VFIOSystem

/// A command the server sent, waiting for the client's DMA thread.
enum ServerCommand {
    /// A command read whole: DMA_READ / DMA_WRITE are served, anything else gets `ENOSYS`.
    case serve(VFIOUserMessage)
    /// A command that could not be used (too large, too many descriptors, a header that
    /// lies): answered with this errno when it wants a reply.
    case refuse(VFIOUserHeader, Int32)

    /// The memory it holds as `Configuration.maxQueuedServerCommandBytes` counts it: the
    /// payload and 256 bytes for the message itself.
    var cost: Int {
        switch self {
        case .serve(let message): return message.payload.count + 256
        case .refuse: return 256
        }
    }
}

/// The server's commands waiting for the DMA thread, first in first out, and the memory
/// they hold. Guarded by its monitor (`ClientCore.dmaQueue`).
struct ServerCommandQueue {
    /// Served slots are emptied at once (their memory goes) and dropped in bulk.
    private var items: [ServerCommand?] = []
    private var head = 0
    /// Bytes held by the queued commands and the one being served (`ServerCommand.cost`).
    private(set) var bytes = 0
    /// The most `bytes` reached so far.
    private(set) var peakBytes = 0
    /// The connection failed: the DMA thread ends, readers stop waiting for room.
    var closed = false
    /// A reader waits on `ClientCore.queueRoom` for `bytes` to fall below the limit.
    var readerWaits = false

    var isEmpty: Bool { head == items.count }

    mutating func append(_ command: ServerCommand) {
        items.append(command)
        bytes += command.cost
        peakBytes = max(peakBytes, bytes)
    }

    /// The oldest command; its bytes stay counted until `finished(_:)`.
    mutating func popFirst() -> ServerCommand? {
        guard head < items.count else { return nil }
        let command = items[head]
        items[head] = nil
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: items.count <= 64)
            head = 0
        } else if head >= 1024 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return command
    }

    /// A popped command has been served: its memory is gone.
    mutating func finished(_ command: ServerCommand) {
        bytes -= command.cost
    }

    /// Drops every queued command (descriptors close with their messages).
    mutating func removeAll() {
        items = []
        head = 0
    }
}
