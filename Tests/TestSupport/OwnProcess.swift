import Glibc
import VFIO

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
