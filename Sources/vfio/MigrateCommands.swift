import ArgumentParser
import Glibc
import VFIO
import VFIOMigration

/// Progress on stderr: a bar redrawn in place when stderr is a terminal, else a line
/// at most once a second and at each change of phase or round; pre-copy lines say what
/// is left and where that estimate comes from.
final class ProgressPrinter {
    let isTerminal = isatty(2) == 1
    private var lastLine = ContinuousClock.now - .seconds(10)
    private var lastPhase: MigrationProgress.Phase?
    private var lastRound = 0
    private var drew = false

    static func bytesText(_ bytes: UInt64) -> String {
        let value = Double(bytes)
        if value >= Double(1 << 30) { return "\(round1(value / Double(1 << 30))) GiB" }
        if value >= Double(1 << 20) { return "\(round1(value / Double(1 << 20))) MiB" }
        if value >= Double(1 << 10) { return "\(round1(value / Double(1 << 10))) KiB" }
        return "\(bytes) B"
    }

    static func round1(_ value: Double) -> Double { (value * 10).rounded() / 10 }

    static func rateText(_ rate: Double) -> String { "\(round1(rate / 1e6)) MB/s" }

    /// What is left and where the estimate comes from, e.g. `about 12 KiB left (MIG_DATA_SIZE)`.
    static func estimateText(_ p: MigrationProgress) -> String? {
        guard p.phase == .preCopy, let source = p.estimateSource else { return nil }
        switch source {
        case .reads:
            let left = p.remainingEstimate.map { "about \(bytesText($0)) left" } ?? "left unknown until the first round ends"
            return "\(left) (estimated from the reads: the source has no MIG_DATA_SIZE)"
        case .precopyInfo, .dataSize:
            return p.remainingEstimate.map { "about \(bytesText($0)) left (\(source.rawValue))" }
        }
    }

    func update(_ p: MigrationProgress) {
        let phase = p.round > 0 && p.phase == .preCopy ? "pre-copy round \(p.round)" : p.phase.rawValue
        var amounts = "\(Self.bytesText(p.bytes)) at \(Self.rateText(p.rate))"
        if let estimate = Self.estimateText(p) { amounts += ", \(estimate)" }
        if isTerminal {
            let total = p.bytes + (p.remainingEstimate ?? 0)
            let fraction = total == 0 ? 1 : Double(p.bytes) / Double(total)
            let width = 30
            let filled = min(width, Int(fraction * Double(width)))
            let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
            printError("\r[\(bar)] \(amounts) \(phase)\u{1B}[K", newline: false)
            drew = true
        } else {
            let now = ContinuousClock.now
            guard p.phase != lastPhase || p.round != lastRound || now - lastLine >= .seconds(1) else { return }
            lastLine = now
            lastPhase = p.phase
            lastRound = p.round
            printError("\(phase): \(amounts)")
        }
    }

    func finish() {
        if drew { printError("") }
        drew = false
    }
}

func printError(_ text: String, newline: Bool = true) {
    let line = newline ? text + "\n" : text
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// `vfio migrate --from DEVICE --to DEVICE`.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Live-migrate a running device's state to another device.",
        discussion: """
            The destination goes to RESUMING; the source to PRE_COPY when it offers it, and its \
            pre-copy data is copied in rounds until the estimate of what is left is under \
            --threshold (or --max-rounds): the device's (pre-copy info, or MIG_DATA_SIZE), or, \
            from a device with neither (libvfio-user's servers), the bytes the last round \
            read, which progress says; then the source stops (STOP_COPY), the rest is copied, \
            the destination loads it (STOP) and runs, and the source goes to STOP. Progress goes \
            to stderr. At the end: the bytes moved and the downtime, from the source leaving a \
            running state to the destination running. On a failure before the destination runs \
            the source is put back to RUNNING. Both devices can be built-in models: \
            `--from model:edu --to model:edu`.
            """ + "\n\n" + DeviceName.discussion
    )

    @Option(name: .long, help: "The running DEVICE to move.", transform: { try DeviceName(parsing: $0) })
    var from: DeviceName

    @Option(name: .long, help: "The DEVICE to move it to (same kind of device).", transform: { try DeviceName(parsing: $0) })
    var to: DeviceName

    @Option(name: .long, help: "Stop pre-copy once at most this many bytes are left.")
    var threshold: UInt64 = 64 << 10

    @Option(name: .long, help: "The most pre-copy rounds.")
    var maxRounds: Int = 8

    @Flag(name: .long, help: "Do not use PRE_COPY even when the source offers it.")
    var noPreCopy = false

    func validate() throws {
        guard maxRounds >= 1 else { throw ValidationError("--max-rounds must be at least 1") }
    }

    func run() throws {
        let source = try openDevice(from)
        let destination = try openDevice(to)
        let printer = ProgressPrinter()
        do {
            let report = try LiveMigration.migrate(
                from: source, to: destination,
                options: MigrationOptions(threshold: threshold, maxRounds: maxRounds, preCopy: !noPreCopy),
                progress: printer.update)
            printer.finish()
            let seconds = Double(report.total.components.seconds) + Double(report.total.components.attoseconds) * 1e-18
            let rate = seconds > 0 ? Double(report.totalBytes) / seconds : 0
            print("migrated \(from) -> \(to): \(report.totalBytes) bytes (\(report.preCopyBytes) pre-copy in \(report.rounds) round(s), \(report.stopCopyBytes) stop-copy) in \(formatDuration(report.total)), \(ProgressPrinter.rateText(rate))")
            print("downtime: \(formatDuration(report.downtime))\(report.usedPreCopy ? "" : " (no PRE_COPY: the source stopped for the whole copy)")")
            if report.estimateSource == .reads {
                print("pre-copy estimate: from the reads (the source answered neither VFIO_MIG_GET_PRECOPY_INFO nor VFIO_DEVICE_FEATURE_MIG_DATA_SIZE)")
            }
        } catch {
            printer.finish()
            printError("vfio migrate: \(error)")
            throw ExitCode(1)
        }
    }
}

/// `vfio save DEVICE FILE`.
struct SaveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save",
        abstract: "Save a device's migration state to a file.",
        discussion: """
            The device goes to STOP_COPY (through STOP), its state is written after a small \
            header (magic, version, byte count) to a new file beside FILE, the device goes back \
            to RUNNING, and the new file replaces FILE. A failed save leaves FILE as it was. A \
            state larger than --max-size fails the save (a device whose stream never ends \
            cannot fill the disk); so does an empty one.
            """ + "\n\n" + DeviceName.discussion
    )

    @Argument(help: ArgumentHelp(DeviceName.help), transform: { try DeviceName(parsing: $0) })
    var device: DeviceName

    @Argument(help: "The snapshot file to write.")
    var file: String

    @Option(name: .long, help: "The most state to save: bytes, or a number with K, M, G or T (1K = 1024). Default: \(ByteSize(bytes: Snapshot.defaultMaxBytes)).",
            transform: ByteSize.parse)
    var maxSize = ByteSize(bytes: Snapshot.defaultMaxBytes)

    func validate() throws {
        guard maxSize.bytes > 0 else { throw ValidationError("--max-size must be at least 1 byte") }
    }

    func run() throws {
        let opened = try openDevice(device)
        let printer = ProgressPrinter()
        do {
            let count = try Snapshot.save(opened, to: file, maxBytes: maxSize.bytes, progress: printer.update)
            printer.finish()
            print("saved \(device) to \(file): \(count) bytes of state")
        } catch {
            printer.finish()
            printError("vfio save: \(error)")
            if error.error.operation == Snapshot.sizeCapOperation {
                printError("vfio save: the cap is --max-size \(maxSize); give a larger --max-size to save this device")
            }
            throw ExitCode(1)
        }
    }
}

/// `vfio restore FILE DEVICE`.
struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Load a saved migration state into a device and run it.",
        discussion: """
            The file's header is checked first (a file that is not a snapshot, is cut short or \
            holds no state is refused before the device is touched); then the device goes to \
            RESUMING, takes the state, checks and loads it (STOP) and runs. A device that \
            refuses the state is reset back to RUNNING.
            """ + "\n\n" + DeviceName.discussion
    )

    @Argument(help: "The snapshot file written by `vfio save`.")
    var file: String

    @Argument(help: ArgumentHelp(DeviceName.help), transform: { try DeviceName(parsing: $0) })
    var device: DeviceName

    func run() throws {
        let opened = try openDevice(device)
        let printer = ProgressPrinter()
        do {
            let count = try Snapshot.restore(file, into: opened, progress: printer.update)
            printer.finish()
            print("restored \(file) into \(device): \(count) bytes of state; the device runs")
        } catch {
            printer.finish()
            printError("vfio restore: \(error)")
            throw ExitCode(1)
        }
    }
}
