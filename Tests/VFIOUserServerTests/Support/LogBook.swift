import Logging
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import VFIOSystem

/// What a logger wrote, kept for a test to wait on (a `Logger` from `logger` writes here).
final class LogBook: Sendable {
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private let monitor = Monitor<[Entry]>([])
    /// Broadcast when an entry is added.
    private let added = Condition()

    /// A logger at trace level that writes here.
    var logger: Logger {
        var logger = Logger(label: "test", factory: { _ in Handler(book: self) })
        logger.logLevel = .trace
        return logger
    }

    var entries: [Entry] { monitor.withLock { $0 } }

    /// Waits until `count` entries match, or `seconds` have passed (then nil).
    func wait(count: Int = 1, seconds: Double = 10, for match: (Entry) -> Bool) -> [Entry]? {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        let found: [Entry]? = monitor.wait(on: added, deadline: { _ in deadline }) { entries in
            let matching = entries.filter(match)
            return matching.count >= count ? matching : nil
        }
        return found
    }

    fileprivate func add(_ entry: Entry) {
        monitor.withLock { entries in
            entries.append(entry)
            added.broadcast()
        }
    }

    private struct Handler: LogHandler {
        let book: LogBook
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            book.add(Entry(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
        }
    }
}
