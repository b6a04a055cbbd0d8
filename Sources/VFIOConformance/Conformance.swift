import VFIO

/// Opens the device under test. Called once per check (and several times by the leak
/// check); each device returned is released before the next call, so a transport that
/// allows one open at a time (a VFIO group) works.
public typealias DeviceFactory = @Sendable () async throws -> any VFIODevice

/// Thrown by a check to say it does not apply here (the transport answered `.unsupported`,
/// the device lacks the flag the check needs).
public struct CheckSkipped: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Thrown by a check when the device answered wrongly.
public struct CheckFailed: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// How long the suite waits for the device, and how hard the leak check works.
public struct ConformanceOptions: Sendable {
    /// The longest wait for an interrupt, a factorial, a DMA (QEMU's edu takes 100 ms of
    /// virtual time per DMA) or an ioeventfd write.
    public var timeout: Duration
    /// Open/use/close cycles the leak check measures (after one warm-up cycle).
    public var leakCycles: Int
    /// Whether each check gets a freshly opened device (the default: checks cannot affect
    /// each other). When false, consecutive device checks share one opened device, which is
    /// released before a check that opens its own (the leak check): faster where an open
    /// is slow, as vfio-pci resets the device on every open and close.
    public var reopenPerCheck: Bool

    public init(timeout: Duration = .seconds(5), leakCycles: Int = 4, reopenPerCheck: Bool = true) {
        self.timeout = timeout
        self.leakCycles = leakCycles
        self.reopenPerCheck = reopenPerCheck
    }
}

/// One named check of a conformance suite.
public struct ConformanceCheck: Sendable {
    /// What the check is given.
    public enum Body: Sendable {
        /// A freshly opened device, released after the check.
        case device(@Sendable (any VFIODevice, ConformanceOptions) async throws -> Void)
        /// The factory itself, for a check that opens and closes the device on its own.
        case factory(@Sendable (@escaping DeviceFactory, ConformanceOptions) async throws -> Void)
    }

    /// A short kebab-case name, as `vfio check --only` takes it.
    public let name: String
    /// One line on what is checked.
    public let summary: String
    public let body: Body

    public init(name: String, summary: String, body: Body) {
        self.name = name
        self.summary = summary
        self.body = body
    }
}

/// The result of one check.
public enum CheckOutcome: Sendable, Equatable, CustomStringConvertible {
    case passed
    case failed(String)
    case skipped(String)

    public var label: String {
        switch self {
        case .passed: return "passed"
        case .failed: return "failed"
        case .skipped: return "skipped"
        }
    }

    /// The reason for a failure or a skip, `nil` when passed.
    public var reason: String? {
        switch self {
        case .passed: return nil
        case .failed(let why), .skipped(let why): return why
        }
    }

    public var description: String {
        reason.map { "\(label): \($0)" } ?? label
    }
}

/// One check's outcome and how long it took (opening the device included).
public struct CheckResult: Sendable, CustomStringConvertible {
    public let name: String
    public let outcome: CheckOutcome
    public let duration: Duration

    public init(name: String, outcome: CheckOutcome, duration: Duration) {
        self.name = name
        self.outcome = outcome
        self.duration = duration
    }

    /// `name  passed  (12.3 ms)`, with the reason after a colon for failures and skips.
    public var description: String {
        let head = name.padding(toWidth: 16) + " " + outcome.label.padding(toWidth: 7) + " (\(Self.milliseconds(duration)) ms)"
        return outcome.reason.map { head + ": " + $0 } ?? head
    }

    /// The duration in milliseconds with one decimal.
    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let tenths = seconds * 10_000 + attoseconds / 100_000_000_000_000
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}

/// The results of a run, in check order.
public struct ConformanceReport: Sendable, CustomStringConvertible {
    public let device: String
    public let results: [CheckResult]

    public init(device: String, results: [CheckResult]) {
        self.device = device
        self.results = results
    }

    public var passed: [CheckResult] { results.filter { $0.outcome == .passed } }
    public var failed: [CheckResult] { results.filter { if case .failed = $0.outcome { return true } else { return false } } }
    public var skipped: [CheckResult] { results.filter { if case .skipped = $0.outcome { return true } else { return false } } }

    /// The outcome of the check called `name`, if it ran.
    public subscript(name: String) -> CheckOutcome? {
        results.first { $0.name == name }?.outcome
    }

    /// `N passed, N failed, N skipped`.
    public var summary: String {
        "\(passed.count) passed, \(failed.count) failed, \(skipped.count) skipped"
    }

    /// One line per check, then the summary line.
    public var description: String {
        (results.map(\.description) + [summary]).joined(separator: "\n")
    }

    /// The report as a JSON object: `device`, `checks` (name, result, reason, milliseconds)
    /// and the three counts.
    public var json: String {
        let checks = results.map { result in
            var fields = ["\"name\": \(JSONText.quoted(result.name))", "\"result\": \"\(result.outcome.label)\""]
            if let reason = result.outcome.reason { fields.append("\"reason\": \(JSONText.quoted(reason))") }
            fields.append("\"milliseconds\": \(CheckResult.milliseconds(result.duration))")
            return "    {" + fields.joined(separator: ", ") + "}"
        }
        return """
            {
              "device": \(JSONText.quoted(device)),
              "checks": [
            \(checks.joined(separator: ",\n"))
              ],
              "passed": \(passed.count),
              "failed": \(failed.count),
              "skipped": \(skipped.count)
            }
            """
    }
}

/// Runs a list of checks in order, each against a freshly opened device.
public struct ConformanceRunner: Sendable {
    public let checks: [ConformanceCheck]
    public var options: ConformanceOptions

    public init(checks: [ConformanceCheck], options: ConformanceOptions = ConformanceOptions()) {
        self.checks = checks
        self.options = options
    }

    /// The checks named in `names`, in suite order.
    /// - Throws: `VFIOError.invalidArgument` naming any unknown name.
    public func selecting(_ names: some Sequence<String>) throws(VFIOError) -> ConformanceRunner {
        let wanted = Set(names)
        let known = Set(checks.map(\.name))
        let unknown = wanted.subtracting(known).sorted()
        guard unknown.isEmpty else {
            throw .invalidArgument("conformance", "unknown check(s) \(unknown.joined(separator: ", ")); the checks are \(checks.map(\.name).joined(separator: ", "))")
        }
        return ConformanceRunner(checks: checks.filter { wanted.contains($0.name) }, options: options)
    }

    /// Runs every check in order. A check that throws `CheckSkipped` is skipped, any other
    /// error (the factory's included) fails it; `progress` sees each result as it comes.
    public func run(
        deviceName: String = "",
        open: @escaping DeviceFactory,
        progress: (@Sendable (CheckResult) -> Void)? = nil
    ) async -> ConformanceReport {
        // The leak check counts this process's descriptors and mappings, so two runs in
        // one process (parallel tests) would see each other's: one run at a time.
        await ConformanceRunLock.shared.acquire()
        var results: [CheckResult] = []
        let clock = ContinuousClock()
        let shared = SharedDevice(open: open, enabled: !options.reopenPerCheck)
        for check in checks {
            let start = clock.now
            let outcome = await Self.outcome(of: check, shared: shared, options: options)
            let result = CheckResult(name: check.name, outcome: outcome, duration: clock.now - start)
            progress?(result)
            results.append(result)
        }
        shared.release()
        await ConformanceRunLock.shared.release()
        return ConformanceReport(device: deviceName, results: results)
    }

    /// The device the checks share when `reopenPerCheck` is off; a fresh one per call
    /// otherwise.
    private final class SharedDevice: @unchecked Sendable {
        let open: DeviceFactory
        let enabled: Bool
        var device: (any VFIODevice)?

        init(open: @escaping DeviceFactory, enabled: Bool) {
            self.open = open
            self.enabled = enabled
        }

        func get() async throws -> any VFIODevice {
            if let device { return device }
            let opened = try await open()
            if enabled { device = opened }
            return opened
        }

        func release() { device = nil }
    }

    private static func outcome(of check: ConformanceCheck, shared: SharedDevice, options: ConformanceOptions) async -> CheckOutcome {
        do {
            switch check.body {
            case .device(let body):
                let device: any VFIODevice
                do { device = try await shared.get() } catch { return .failed("cannot open the device: \(error)") }
                try await body(device, options)
            case .factory(let body):
                shared.release()
                try await body(shared.open, options)
            }
            return .passed
        } catch let skip as CheckSkipped {
            return .skipped(skip.reason)
        } catch let failure as CheckFailed {
            return .failed(failure.reason)
        } catch {
            return .failed("\(error)")
        }
    }
}

extension String {
    func padding(toWidth width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}


func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }

/// Serializes conformance runs within a process (see `ConformanceRunner.run`).
actor ConformanceRunLock {
    static let shared = ConformanceRunLock()
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}
