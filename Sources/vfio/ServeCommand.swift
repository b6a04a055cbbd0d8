import ArgumentParser
import Glibc
import Logging
import NVMeController
import VFIO
import VFIODeviceKit
import VFIOUserClient
import VFIOUserServer
import VFIOUserWire

/// `vfio serve MODEL --socket PATH`: serves a built-in device model to vfio-user clients
/// (QEMU's `vfio-user-pci`, `vfio info unix:PATH`) until SIGINT or SIGTERM.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a built-in device model over vfio-user on a UNIX socket.",
        discussion: """
            Clients are served one at a time, each until it disconnects; the device keeps its \
            state between clients. The socket is created with mode 0600; a stale socket file \
            is replaced. Stops on SIGINT or SIGTERM and removes the socket.
            QEMU: -device '{"driver":"vfio-user-pci","socket":{"type":"unix","path":"PATH"}}'
            """
    )

    @Argument(help: "The model to serve: \(BuiltinModel.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model: BuiltinModel

    @Option(name: [.customLong("socket"), .customLong("socket-path")], help: "The UNIX socket to listen on.")
    var socket: String?

    @Option(name: .customLong("fd"), help: "Serve this already-connected socket descriptor instead of listening.")
    var fd: Int32?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Option(name: .customLong("backing"), help: "nvme: namespaces on these files or block devices (PATH[,PATH...]), instead of one 64 MiB RAM namespace.")
    var backing: String?

    @Option(name: .customLong("lba-size"), help: "nvme: the logical block size, 512 or 4096.")
    var lbaSize: Int = 512

    @OptionGroup(title: "Slow or stalled clients")
    var timeouts: ServeTimeoutOptions

    func validate() throws {
        if (socket == nil) == (fd == nil) { throw ValidationError("give exactly one of --socket PATH and --fd N") }
        if model != .nvme && (backing != nil || lbaSize != 512) { throw ValidationError("--backing and --lba-size are options of the nvme model") }
        if lbaSize != 512 && lbaSize != 4096 { throw ValidationError("--lba-size must be 512 or 4096, not \(lbaSize)") }
        if let backing {
            let paths = backing.split(separator: ",", omittingEmptySubsequences: false)
            if paths.contains(where: \.isEmpty) { throw ValidationError("--backing has an empty path: '\(backing)'") }
            if paths.count > 16 { throw ValidationError("--backing names \(paths.count) namespaces; at most 16") }
        }
    }

    func run() throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: "vfio.serve")
        logger.logLevel = logLevel
        // Before the server starts its threads: they inherit the blocked mask.
        try StopSignals.install()

        let server = try VFIOUserServer(model: makeModel(), configuration: timeouts.configuration, logger: logger)
        if let socket {
            try server.listen(path: socket)
            logger.info("serving \(model.rawValue) on \(socket); stop with SIGINT or SIGTERM")
        } else if let fd {
            server.serve(connection: VFIOUserSocket(adopting: fd))
            logger.info("serving \(model.rawValue) on descriptor \(fd)")
            // End when the connection closes, as well as on a signal.
            ConnectionWatcher.postWhenDone(server)
        }
        let reason = StopSignals.wait()
        logger.info("stopping: \(reason)")
        server.stop()
    }

    private func makeModel() throws -> any DeviceModel {
        guard model == .nvme else { return try model.make() }
        guard let backing else { return try NVMeDevice(ramBytes: 64 << 20, blockSize: lbaSize) }
        let storages: [any NamespaceStorage] = try backing.split(separator: ",").map { path in
            try FileNamespaceStorage(path: String(path), blockSize: lbaSize)
        }
        return NVMeDevice(namespaces: storages)
    }
}

/// Ends `StopSignals.wait()` when a connection given with --fd closes.
private enum ConnectionWatcher {
    static func postWhenDone(_ server: VFIOUserServer) {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(server).toOpaque()
        pthread_create(&thread, nil, { raw in
            let server = Unmanaged<VFIOUserServer>.fromOpaque(raw!).takeRetainedValue()
            server.wait()
            StopSignals.post()
            return nil
        }, box)
        pthread_detach(thread)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
