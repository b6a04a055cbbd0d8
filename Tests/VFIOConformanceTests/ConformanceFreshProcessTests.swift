import Glibc
import Testing
import VFIO
import VFIOConformance
import VFIOSystem

/// A leak check's baseline in a process where nothing has waited on an eventfd yet: the
/// readiness poller, started by the first wait that finds no value, must not read as a
/// leak. In this test process some earlier test has usually started it already, so the
/// case runs in a fresh copy of the test bundle (`/proc/self/exe`), which writes what it
/// found to a file named by `SWIFT_VFIO_FRESH_PROBE`.
@Suite struct ConformanceFreshProcessTests {
    static let probeVariable = "SWIFT_VFIO_FRESH_PROBE"

    @Test func theReadinessPollerIsInAFreshProcessBaseline() throws {
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-probe-XXXXXX")
        let output = directory + "/probe-result"
        defer {
            unlink(output)
            rmdir(directory)
        }
        let log = directory + "/probe-log"
        defer { unlink(log) }
        let status = try spawnSelf(
            arguments: ["--testing-library", "swift-testing", "--filter", "freshProcessProbe"],
            environment: ["\(Self.probeVariable)=\(output)"],
            output: log
        )
        #expect(status == 0, "the probe process exited with status \(status): \(readWholeFile(log) ?? "")")
        // The file exists only if the probe ran; empty means nothing was added.
        let added = try #require(readWholeFile(output), "the probe did not run")
        #expect(added == "", "descriptors added after the baseline: \(added)")
    }

    /// Run only in the child: baseline, then the process's first wait that has to wait.
    @Test(.enabled(if: getenv(Self.probeVariable) != nil))
    func freshProcessProbe() async throws {
        let output = String(cString: getenv(Self.probeVariable)!)
        let baseline = try await ProcessResources.settled()
        let event = try EventFD()
        await #expect(throws: VFIOError.self) { _ = try await event.wait(timeout: .milliseconds(1)) }
        event.close()
        let added = ProcessResources.current().descriptorsAdded(since: baseline)
        try writeWholeFile(output, added.joined(separator: "\n"))
    }
}

/// Runs this test bundle again with `arguments` and `environment` added to this process's
/// environment, its standard output and error going to the file `output`, and returns
/// its exit status (128 + N when killed by signal N).
func spawnSelf(arguments: [String], environment: [String], output: String) throws -> Int32 {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { throw VFIOError.errno("readlink /proc/self/exe", errno) }
    let executable = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var inherited: [String] = []
    var index = 0
    while let entry = environ[index] {
        inherited.append(String(cString: entry))
        index += 1
    }
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = (inherited + environment).map { strdup($0) } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var pid: pid_t = 0
    let result = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    guard result == 0 else { throw VFIOError.errno("posix_spawn \(executable)", result) }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw VFIOError.errno("waitpid", errno) }
    }
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}

/// A file's bytes as UTF-8 text, or nil when it cannot be opened.
func readWholeFile(_ path: String) -> String? {
    readFile(path).map { String(decoding: $0, as: UTF8.self) }
}

/// Writes `text` to `path`, replacing what was there.
func writeWholeFile(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw VFIOError.errno("open \(path)", errno) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
        let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw VFIOError.errno("write \(path)", errno) }
        written += n
    }
}
