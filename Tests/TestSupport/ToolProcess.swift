import Glibc
import VFIO

/// The built `vfio` tool as a child process whose stdout and stderr go to one socket the
/// test reads. Killed and reaped at deinit if the test did not wait for it.
package final class ToolProcess {
    /// How a child ended, from `waitpid`'s status.
    package enum Ending: Equatable, CustomStringConvertible {
        case exited(Int32)
        case killed(by: Int32)

        package init(status: Int32) {
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import.
            self = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .killed(by: status & 0x7f)
        }

        package var description: String {
            switch self {
            case .exited(let code): return "exit status \(code)"
            case .killed(let signal): return "killed by signal \(signal)"
            }
        }
    }

    package let pid: pid_t
    private let output: Int32
    private var bytes: [UInt8] = []
    private var ended: Ending?

    /// What the child wrote to stdout and stderr so far.
    package var log: String { String(decoding: bytes, as: UTF8.self) }

    /// Starts `tool arguments…` as a shell starts a foreground command: SIGINT and SIGTERM
    /// at their default action, no signal blocked. With `ignoringSIGINT`, SIGINT starts
    /// ignored, as for a background job of a non-interactive shell: it goes through
    /// `/bin/sh -c "trap '' INT; exec …"`, which sets SIG_IGN and keeps it across the exec.
    package init(tool: String, _ arguments: [String], ignoringSIGINT: Bool = false) throws {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            throw VFIOError.errno("socketpair", errno)
        }
        defer { close(ends[1]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, ends[1], 1)
        posix_spawn_file_actions_adddup2(&actions, ends[1], 2)
        // Nothing else: descriptors other tests opened without close-on-exec stay theirs.
        closeFrom(3, in: &actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ignoringSIGINT
            ? ["/bin/sh", "-c", "trap '' INT; exec \"$0\" \"$@\"", tool] + arguments
            : [tool] + arguments
        let cStrings = argv.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var child = pid_t()
        let result = (cStrings + [nil]).withUnsafeBufferPointer { argvPointer in
            posix_spawn(&child, argv[0], &actions, &attributes, argvPointer.baseAddress!, environ)
        }
        guard result == 0 else {
            close(ends[0])
            throw VFIOError.errno("posix_spawn(\(argv[0]))", result)
        }
        pid = child
        output = ends[0]
    }

    deinit {
        if ended == nil {
            kill(pid, SIGKILL)
            _ = reap()
        }
        close(output)
    }

    /// Reads the child's output until it contains `text` (true), or until end of file or
    /// `timeout` (false).
    package func readUntil(_ text: String, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !log.contains(text) {
            guard readMore(until: deadline) else { return false }
        }
        return true
    }

    /// Reads the child's output to its end, then reaps the child. When the output does not
    /// end within `timeout` the child is killed with SIGKILL, and the ending says so.
    package func waitForExit(timeout: Duration) -> Ending {
        if let ended { return ended }
        let deadline = ContinuousClock.now + timeout
        while readMore(until: deadline) {}
        if ContinuousClock.now >= deadline { kill(pid, SIGKILL) }
        let ending = reap()
        ended = ending
        return ending
    }

    /// One read of output; false at end of file or at the deadline.
    private func readMore(until deadline: ContinuousClock.Instant) -> Bool {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return false }
        var entry = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
        let ready = poll(&entry, 1, milliseconds)
        if ready < 0 && errno == EINTR { return true }
        guard ready > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(output, &buffer, buffer.count)
        if n < 0 && errno == EINTR { return true }
        guard n > 0 else { return false }
        bytes += buffer[0..<n]
        return true
    }

    private func reap() -> Ending {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return Ending(status: status)
    }
}

/// The `vfio` tool built next to this test bundle (both live in .build/<config>/), or nil
/// when it is not there.
package func builtToolPath() -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    var path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    while let slash = path.lastIndex(of: "/") {
        path = String(path[..<slash])
        if access(path + "/vfio", X_OK) == 0 { return path + "/vfio" }
        if path.hasSuffix(".build") || path.isEmpty { break }
    }
    return nil
}
