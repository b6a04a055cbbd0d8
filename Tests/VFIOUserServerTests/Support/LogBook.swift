import Logging
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import VFIOSystem

/// What a logger wrote, kept for a test to wait on (a `Logger` from `logger` writes here),
/// and how many times each message was written (kept or not).
final class LogBook: Sendable {
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private struct Book {
        var entries: [Entry] = []
        var counts: [String: Int] = [:]
    }

    private let monitor = Monitor(Book())
    /// Broadcast when an entry is added.
    private let added = Condition()
    private let level: Logger.Level
    private let keep: @Sendable (Entry) -> Bool

    /// A book of what is logged at `level` and above; only entries `keep` accepts are kept
    /// (a long run keeps none: its memory is measured), every message is counted.
    init(level: Logger.Level = .trace, keeping keep: @escaping @Sendable (Entry) -> Bool = { _ in true }) {
        self.level = level
        self.keep = keep
    }

    /// A logger at the book's level that writes here.
    var logger: Logger {
        var logger = Logger(label: "test", factory: { _ in Handler(book: self) })
        logger.logLevel = level
        return logger
    }

    var entries: [Entry] { monitor.withLock { $0.entries } }

    /// Waits until `count` entries match, or `seconds` have passed (then nil).
    func wait(count: Int = 1, seconds: Double = 10, for match: (Entry) -> Bool) -> [Entry]? {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        let found: [Entry]? = monitor.wait(on: added, deadline: { _ in deadline }) { book in
            let matching = book.entries.filter(match)
            return matching.count >= count ? matching : nil
        }
        return found
    }

    /// Waits until `message` was logged `count` times in all, or `seconds` have passed;
    /// returns how many times it was.
    func wait(for message: String, count: Int, seconds: Double = 10) -> Int {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        let reached: Int? = monitor.wait(on: added, deadline: { _ in deadline }) { book in
            let seen = book.counts[message, default: 0]
            return seen >= count ? seen : nil
        }
        return reached ?? monitor.withLock { $0.counts[message, default: 0] }
    }

    fileprivate func add(_ entry: Entry) {
        let kept = keep(entry)
        monitor.withLock { book in
            if kept { book.entries.append(entry) }
            book.counts[entry.message, default: 0] += 1
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
