import Glibc
import Testing
import VFIO
import VFIOUserClient
import VFIOUserServer
import VFIOSystem
import VFIOUserWire
import TestSupport

/// `vfio serve` stops on SIGINT and SIGTERM as its help says: it logs "stopping",
/// removes its socket and exits 0, idle or with a client connected, and also when it was
/// started with SIGINT ignored (a background job of a non-interactive shell).
@Suite struct ToolServeSignalTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var signal: Int32
        var clientConnected: Bool
        var startedWithSIGINTIgnored = false

        var testDescription: String {
            "\(signal == SIGINT ? "SIGINT" : "SIGTERM")\(clientConnected ? ", client connected" : ", idle")\(startedWithSIGINTIgnored ? ", SIGINT ignored at start" : "")"
        }
    }

    static let cases = [
        Case(signal: SIGTERM, clientConnected: false),
        Case(signal: SIGTERM, clientConnected: true),
        Case(signal: SIGINT, clientConnected: false),
        Case(signal: SIGINT, clientConnected: true),
        Case(signal: SIGINT, clientConnected: false, startedWithSIGINTIgnored: true),
        Case(signal: SIGINT, clientConnected: true, startedWithSIGINTIgnored: true),
    ]

    @Test(arguments: cases)
    func serveStopsOnTheSignal(_ c: Case) throws {
        guard let tool = builtToolPath() else {
            print("ToolServeSignalTests: no built vfio next to the tests; skipped")
            return
        }
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-serve-XXXXXX")
        defer { rmdir(directory) }
        let socket = directory + "/edu.sock"
        defer { unlink(socket) }
        let process = try ToolProcess(tool: tool, ["serve", "edu", "--socket", socket],
                                      ignoringSIGINT: c.startedWithSIGINTIgnored)
        // The tool logs "serving … on PATH" once it listens.
        try #require(process.readUntil("serving edu on \(socket)", timeout: .seconds(30)), "\(process.log)")
        var client: VFIOUserClient?
        if c.clientConnected {
            let connected = try VFIOUserClient(path: socket, name: "unix:\(socket)")
            #expect(try connected.deviceInfo().numRegions > 0)
            client = connected
        }
        #expect(kill(process.pid, c.signal) == 0)
        let ending = process.waitForExit(timeout: .seconds(30))
        client?.close()
        #expect(ending == .exited(0), "\(ending); log:\n\(process.log)")
        #expect(process.log.contains("stopping"), "\(process.log)")
        #expect(access(socket, F_OK) != 0, "the socket file is still there")
    }
}
