import Foundation
import Glibc
import Testing
import VFIO

// Tests that measure the whole process (every descriptor and mapping it holds, its resident
// memory: the conformance suite's leak check, the 10,000-connection soak) cannot share it
// with tests running beside them. They run alone, in a fresh copy of this test bundle
// (/proc/self/exe) started to run that one test and nothing else:
//
//     @Test func soak() async throws {
//         guard try await runsAlone(Self.self) else { return }   // false here: the child ran it
//         ...                                               // only in the child
//     }

/// In the test process: runs the calling test (`suite`/`function`) in a child process of
/// its own, records an issue when it fails there (with the child's output) or did not run
/// at all, and returns false. In that child: returns true, and the test goes on. The wait
/// for the child is on a thread of its own, not one of the tests' (a 2-core machine has two).
/// - Throws: `VFIOError` when the child cannot be started.
package func runsAlone<Suite>(_ suite: Suite.Type, function: String = #function,
                              sourceLocation: SourceLocation = #_sourceLocation) async throws -> Bool {
    let id = String(reflecting: suite) + "/" + function
    let started = ProcessInfo.processInfo.environment[AloneChild.nameVariable]
    if started == id {
        // The parent checks that the test began; its exit status says how it ended.
        if let path = ProcessInfo.processInfo.environment[AloneChild.markVariable] { try writeWholeFile(path, "began") }
        return true
    }
    let directory = try makeTemporaryDirectory("/tmp/swift-vfio-alone-XXXXXX")
    let mark = directory + "/began", log = directory + "/log"
    defer {
        unlink(mark)
        unlink(log)
        rmdir(directory)
    }
    let arguments = ["--testing-library", "swift-testing", "--filter", "^" + NSRegularExpression.escapedPattern(for: id)]
    let environment = ["\(AloneChild.nameVariable)=\(id)", "\(AloneChild.markVariable)=\(mark)"]
    let status = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
        Thread {
            continuation.resume(with: Result { try spawnSelf(arguments: arguments, environment: environment, output: log) })
        }.start()
    }
    if readWholeFile(mark) != "began" {
        Issue.record("\(id) did not run in its own process (exit status \(status)): \(readWholeFile(log) ?? "")", sourceLocation: sourceLocation)
    } else if status != 0 {
        Issue.record("\(id) failed in its own process (exit status \(status)):\n\(readWholeFile(log) ?? "")", sourceLocation: sourceLocation)
    }
    return false
}

/// Whether this process is a child started by `runsAlone` (for a test whose body must not
/// run in the parent at all).
package var isAloneChild: Bool { ProcessInfo.processInfo.environment[AloneChild.nameVariable] != nil }

private enum AloneChild {
    /// The test the child runs (its test ID).
    static let nameVariable = "SWIFT_VFIO_ALONE"
    /// A file the child writes when the test begins.
    static let markVariable = "SWIFT_VFIO_ALONE_MARK"
}

/// Runs this test bundle again with `arguments` and `environment` added to this process's
/// environment, its standard output and error going to the file `output`, and returns
/// its exit status (128 + N when killed by signal N).
package func spawnSelf(arguments: [String], environment: [String], output: String) throws -> Int32 {
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
    // Nothing else: descriptors other tests opened without close-on-exec stay theirs (a
    // socket's peer would otherwise wait for this child to exit to see its end).
    closeFrom(3, in: &actions)
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

/// Adds `posix_spawn_file_actions_addclosefrom_np(actions, lowest)` (glibc 2.34 on; the
/// Swift Glibc module does not import it): the child starts with no descriptor from
/// `lowest` up but those the earlier actions placed there.
package func closeFrom(_ lowest: Int32, in actions: inout posix_spawn_file_actions_t) {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
        fatalError("posix_spawn_file_actions_addclosefrom_np is missing: glibc 2.34 or later is needed")
    }
    _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, lowest)
}
