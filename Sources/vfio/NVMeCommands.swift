import ArgumentParser
import Foundation
import NVMe
import NVMeDriver
import VFIO

/// `vfio nvme`: the userspace NVMe driver (`NVMeDriver`) on any device name the tool takes.
struct NVMeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvme",
        abstract: "Drive an NVMe controller from user space: identify, read, write, bench.",
        discussion: DeviceName.discussion,
        subcommands: [NVMeIdentifyCommand.self, NVMeReadCommand.self, NVMeWriteCommand.self, NVMeBenchCommand.self]
    )
}

/// Options every `vfio nvme` subcommand takes: the device and how the driver runs it.
struct NVMeDriverOptions: ParsableArguments {
    @Argument(help: ArgumentHelp(DeviceName.help), transform: { try DeviceName(parsing: $0) })
    var device: DeviceName

    @Option(name: .long, help: "I/O queue pairs to create.")
    var queues: Int = 1

    @Option(name: .long, help: "Entries per I/O queue.")
    var queueEntries: Int = 128

    @Flag(name: .long, help: "Poll completion queues instead of waiting for MSI-X interrupts.")
    var polled = false

    @Flag(name: .long, help: "Do not use shadow doorbells (Doorbell Buffer Config) even when offered.")
    var noShadowDoorbells = false

    @Option(name: .long, help: "The namespace ID (default: the first active one).")
    var namespace: UInt32?

    func validate() throws {
        guard (1...64).contains(queues) else { throw ValidationError("--queues must be 1...64") }
        guard (2...4096).contains(queueEntries) else { throw ValidationError("--queue-entries must be 2...4096") }
    }

    var driverOptions: NVMeHost.Options {
        var options = NVMeHost.Options()
        options.ioQueues = queues
        options.queueEntries = queueEntries
        options.interrupts = !polled
        options.shadowDoorbells = !noShadowDoorbells
        return options
    }

    /// Opens the device, brings the controller up, runs `body`, shuts it down.
    func withHost<T>(_ body: (NVMeHost, NVMeNamespace) async throws -> T) async throws -> T {
        let device = try openDevice(device)
        let host = try await NVMeHost.open(device, options: driverOptions)
        do {
            guard let ns = namespace.map({ id in host.namespaces.first { $0.id == id } }) ?? host.namespaces.first else {
                throw ValidationError(namespace.map { "namespace \($0) is not active" } ?? "the controller has no active namespace")
            }
            let result = try await body(host, ns)
            if let failure = await host.close() { throw failure }
            return result
        } catch {
            await host.close()
            throw error
        }
    }
}

struct NVMeIdentifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "identify", abstract: "Bring the controller up and print what Identify says.")

    @OptionGroup var common: NVMeDriverOptions
    @Flag(help: "Print JSON instead of lines.") var json = false

    func run() async throws {
        try await common.withHost { host, _ in
            let c = host.controller
            let namespaces: [JSON] = host.namespaces.map { ns in
                .object([("id", .unsigned(UInt64(ns.id))), ("blocks", .unsigned(ns.blockCount)), ("block_size", .unsigned(UInt64(ns.blockSize))),
                         ("bytes", .unsigned(ns.blockCount * UInt64(ns.blockSize)))])
            }
            let fields: [(String, JSON)] = [
                ("vendor_id", .string(hex(c.vendorID, width: 4))), ("serial", .string(c.serialNumber)), ("model", .string(c.modelNumber)),
                ("firmware", .string(c.firmwareRevision)), ("version", .string("\(host.version.major).\(host.version.minor)")),
                ("max_transfer_bytes", .unsigned(UInt64(host.maximumTransferBytes))), ("oacs", .string(hex(c.optionalAdminCommands.rawValue, width: 4))),
                ("oncs", .string(hex(c.optionalNVMCommands.rawValue, width: 4))), ("namespaces_max", .unsigned(UInt64(c.numberOfNamespaces))),
                ("cap", .string(hex(host.capabilities.rawValue, width: 16))), ("io_queues", .unsigned(UInt64(host.ioQueueCount))),
                ("queue_entries", .unsigned(UInt64(host.ioQueueEntries))), ("interrupts", .bool(host.usesInterrupts)),
                ("mapped_doorbells", .bool(host.usesMappedDoorbells)), ("shadow_doorbells", .bool(host.usesShadowDoorbells)),
                ("namespaces", .array(namespaces)),
            ]
            if json {
                print(JSON.object(fields).rendered())
                return
            }
            print("controller \(common.device): \(c.modelNumber) (serial \(c.serialNumber), firmware \(c.firmwareRevision)), NVMe \(host.version.major).\(host.version.minor)")
            print("  vendor \(hex(c.vendorID, width: 4)), CAP \(hex(host.capabilities.rawValue, width: 16)), MDTS \(host.maximumTransferBytes) bytes, OACS \(hex(c.optionalAdminCommands.rawValue, width: 4)), ONCS \(hex(c.optionalNVMCommands.rawValue, width: 4))")
            print("  driver: \(host.ioQueueCount) I/O queue(s) of \(host.ioQueueEntries), \(host.usesInterrupts ? "MSI-X interrupts" : "polled"), doorbells \(host.usesMappedDoorbells ? "mapped" : "by region writes")\(host.usesShadowDoorbells ? ", shadow doorbells" : "")")
            for ns in host.namespaces {
                print("  namespace \(ns.id): \(ns.blockCount) blocks of \(ns.blockSize) bytes (\(ns.blockCount * UInt64(ns.blockSize)) bytes)")
            }
        }
    }
}

/// `--lba N --count K` and chunking by the largest transfer.
struct NVMeRangeOptions: ParsableArguments {
    @Option(name: .long, help: "The first logical block.") var lba: UInt64
    @Option(name: .long, help: "The number of logical blocks.") var count: Int = 1
    @Option(name: .long, help: "The file to write the data to (read) or take it from (write); read: a hex dump without it.") var file: String?

    func validate() throws { guard count > 0 else { throw ValidationError("--count must be positive") } }

    /// Runs `body(lba, blocks, byteOffset)` for chunks of at most the largest transfer.
    func chunks(_ host: NVMeHost, _ ns: NVMeNamespace, _ body: (UInt64, Int, Int) async throws -> Void) async throws {
        let per = max(1, host.maximumTransferBytes / ns.blockSize)
        var done = 0
        while done < count {
            let blocks = min(per, count - done)
            try await body(lba + UInt64(done), blocks, done * ns.blockSize)
            done += blocks
        }
    }
}

struct NVMeReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "read", abstract: "Read logical blocks to a file or as a hex dump.")
    @OptionGroup var common: NVMeDriverOptions
    @OptionGroup var range: NVMeRangeOptions

    func run() async throws {
        let data = try await common.withHost { host, ns -> [UInt8] in
            let buffer = try host.allocateBuffer(host.maximumTransferBytes)
            var data: [UInt8] = []
            try await range.chunks(host, ns) { lba, blocks, _ in
                try await host.read(namespace: ns.id, lba: lba, blocks: blocks, into: buffer)
                data += buffer.load(blocks * ns.blockSize)
            }
            return data
        }
        if let file = range.file {
            guard FileManager.default.createFile(atPath: file, contents: Data(data)) else { throw ValidationError("cannot write \(file)") }
            print("read \(data.count) bytes from LBA \(range.lba) to \(file)")
        } else {
            for row in stride(from: 0, to: data.count, by: 16) {
                let bytes = data[row..<min(row + 16, data.count)]
                print(hex(row, width: 8) + "  " + bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: " "))
            }
        }
    }
}

struct NVMeWriteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "write", abstract: "Write logical blocks from a file (zero-padded), or zeroes without one.")
    @OptionGroup var common: NVMeDriverOptions
    @OptionGroup var range: NVMeRangeOptions

    func run() async throws {
        let source: [UInt8]
        if let file = range.file {
            guard let contents = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            source = [UInt8](contents)
        } else {
            source = []
        }
        let written = try await common.withHost { host, ns -> Int in
            let total = range.count * ns.blockSize
            guard source.count <= total else { throw ValidationError("\(source.count) bytes do not fit \(range.count) blocks of \(ns.blockSize)") }
            let buffer = try host.allocateBuffer(host.maximumTransferBytes)
            try await range.chunks(host, ns) { lba, blocks, offset in
                var chunk = [UInt8](repeating: 0, count: blocks * ns.blockSize)
                if offset < source.count {
                    let piece = source[offset..<min(source.count, offset + chunk.count)]
                    chunk.replaceSubrange(0..<piece.count, with: piece)
                }
                buffer.store(chunk)
                try await host.write(namespace: ns.id, lba: lba, blocks: blocks, from: buffer)
            }
            try await host.flush(namespace: ns.id)
            return total
        }
        print("wrote \(written) bytes at LBA \(range.lba)")
    }
}
