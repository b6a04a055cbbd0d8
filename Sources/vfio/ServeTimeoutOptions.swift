import ArgumentParser
import VFIOUserClient
import VFIOUserServer
import VFIOUserWire

/// `vfio serve`'s limits on slow or stalled clients (`VFIOUserServer.Configuration`).
struct ServeTimeoutOptions: ParsableArguments {
    @Option(name: .customLong("partial-message-timeout"), help: ArgumentHelp(
        "Drop a client whose message, once begun, has not arrived whole after this many seconds (0: never).",
        discussion: "A client idling between messages is never dropped.", valueName: "seconds"))
    var partialMessageTimeout: Double = 10

    @Option(name: .customLong("send-timeout"), help: ArgumentHelp(
        "Drop a client that reads none of a reply for this many seconds while the socket is full (0: never).",
        valueName: "seconds"))
    var sendTimeout: Double = 10

    func validate() throws {
        for (flag, value) in [("--partial-message-timeout", partialMessageTimeout), ("--send-timeout", sendTimeout)] {
            guard value.isFinite, value >= 0, value <= 86_400 else {
                throw ValidationError("\(flag) must be 0 (never) or a number of seconds up to 86400, not \(value)")
            }
        }
    }

    /// The server configuration with these limits.
    var configuration: VFIOUserServer.Configuration {
        func duration(_ seconds: Double) -> Duration? {
            seconds == 0 ? nil : max(.seconds(seconds), .microseconds(1))
        }
        var configuration = VFIOUserServer.Configuration()
        configuration.partialMessageTimeout = duration(partialMessageTimeout)
        configuration.sendTimeout = duration(sendTimeout)
        return configuration
    }
}
