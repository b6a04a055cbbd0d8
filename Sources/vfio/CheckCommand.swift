import ArgumentParser
import VFIO
import VFIOConformance

/// `vfio check DEVICE`: runs the transport-independent edu conformance suite against a
/// device, whatever carries it (a PCI address or /dev/vfio path through the kernel,
/// `unix:PATH` or `model:NAME` over vfio-user).
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run the edu conformance suite against a device.",
        discussion: """
            Each check opens the device afresh and releases it afterwards. A check is skipped \
            where the transport has no such operation (ioeventfd, hot reset over vfio-user) \
            or the device lacks the flag it needs (reset). Exits non-zero when a check failed. \
            Checks: \(EduConformance.checkNames.joined(separator: ", ")).
            """ + "\n\n" + DeviceName.discussion
    )

    @Argument(help: ArgumentHelp(DeviceName.help), transform: { try DeviceName(parsing: $0) })
    var device: DeviceName

    @Option(name: .long, help: "Run only these checks (comma-separated names).",
            transform: { $0.split(separator: ",").map { String($0).trimmingSpaces } })
    var only: [String]?

    @Option(name: .long, help: "Seconds to wait for an interrupt, a DMA or a computation.")
    var timeout: Double = 5

    @Flag(help: "Open the device once for all checks instead of once per check (faster where opening resets the device).")
    var shareDevice = false

    @Flag(help: "Print the report as JSON instead of lines.")
    var json = false

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        if let only {
            do { _ = try EduConformance.runner().selecting(only) } catch { throw ValidationError(error.description) }
        }
    }

    func run() async throws {
        var runner = EduConformance.runner(options: ConformanceOptions(timeout: .milliseconds(Int64(timeout * 1000)), reopenPerCheck: !shareDevice))
        if let only { runner = try runner.selecting(only) }
        let name = device
        // Open once up front, so a device that cannot be opened is one error, not a
        // failure per check; released before the checks open it again.
        _ = try openDeviceForCheck(name)
        let json = json
        let report = await runner.run(deviceName: name.description, open: { try openDeviceForCheck(name) }) { result in
            if !json { print(result) }
        }
        if json {
            print(report.json)
        } else {
            print(report.summary)
        }
        if !report.failed.isEmpty { throw ExitCode(1) }
    }
}

/// Opens the device `vfio check` runs the suite against, by any of the tool's names.
func openDeviceForCheck(_ name: DeviceName) throws -> any VFIODevice {
    try openDevice(name)
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
