import Glibc
import Testing
import VFIO
import VFIOUserClient
import VFIOUserWire
import TestSupport

/// `vfio serve` when its process has no descriptor left for a new connection (EMFILE):
/// the client is refused by having its connection closed at once, with one warning in
/// the log, instead of waiting in the backlog while the accept loop spins on a listening
/// socket that stays readable; once descriptors are free again the next client is served.
@Suite struct ToolServeDescriptorTests {
    @Test func aClientThatFindsNoDescriptorLeftIsRefusedNotLeftWaiting() throws {
        guard let tool = builtToolPath(), access("/usr/bin/prlimit", X_OK) == 0 else {
            print("ToolServeDescriptorTests: no built vfio next to the tests, or no prlimit; skipped")
            return
        }
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-emfile-XXXXXX")
        defer { rmdir(directory) }
        let socket = directory + "/edu.sock"
        defer { unlink(socket) }
        let server = try ToolProcess(tool: tool, ["serve", "edu", "--socket", socket])
        defer {
            kill(server.pid, SIGTERM)
            _ = server.waitForExit(timeout: .seconds(30))
        }
        try #require(server.readUntil("serving edu on \(socket)", timeout: .seconds(30)), "\(server.log)")

        // The server's next descriptor would be the lowest number it has free: a soft
        // limit of that number leaves it none.
        let lowest = try Self.lowestFreeDescriptor(of: server.pid)
        try Self.setSoftDescriptorLimit(of: server.pid, to: lowest)

        let refused = try VFIOUserSocket.connect(path: socket)
        defer { refused.close() }
        var entry = pollfd(fd: refused.fd, events: Int16(POLLIN), revents: 0)
        try #require(poll(&entry, 1, 30_000) == 1, "the connection was neither served nor closed; log:\n\(server.log)")
        var byte: UInt8 = 0
        #expect(read(refused.fd, &byte, 1) == 0, "the server did not close the connection")
        #expect(server.readUntil("refused a client: the process has no descriptor left", timeout: .seconds(30)), "\(server.log)")

        // Descriptors again: the next client is served as usual.
        try Self.setSoftDescriptorLimit(of: server.pid, to: 1024)
        let client = try VFIOUserClient(path: socket, name: "unix:\(socket)")
        defer { client.close() }
        #expect(try client.deviceInfo().numRegions > 0)
        #expect(server.log.components(separatedBy: "refused a client").count - 1 == 1, "\(server.log)")
    }

    /// The lowest descriptor number process `pid` has not open (from /proc/PID/fd).
    static func lowestFreeDescriptor(of pid: pid_t) throws -> Int32 {
        guard let directory = opendir("/proc/\(pid)/fd") else { throw VFIOError.errno("opendir /proc/\(pid)/fd", errno) }
        defer { closedir(directory) }
        var open = Set<Int32>()
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let number = Int32(name) { open.insert(number) }
        }
        var lowest: Int32 = 0
        while open.contains(lowest) { lowest += 1 }
        return lowest
    }

    /// `prlimit --pid PID --nofile=SOFT:` (the hard limit unchanged).
    static func setSoftDescriptorLimit(of pid: pid_t, to soft: Int32) throws {
        let prlimit = try ToolProcess(tool: "/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=\(soft):"])
        let ending = prlimit.waitForExit(timeout: .seconds(30))
        try #require(ending == .exited(0), "prlimit: \(ending) \(prlimit.log)")
    }
}
