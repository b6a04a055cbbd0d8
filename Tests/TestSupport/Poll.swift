import Glibc

/// Polls `condition` until it holds, or returns false once `timeout` has passed without it.
/// For a state that no event announces (a device register, a thread's system call, an
/// epoll's registrations); a test that can wait for an event (an eventfd, a log entry, a
/// condition) waits for that instead. The pause between polls grows from 10 µs to 5 ms:
/// an answer already there costs one call, a slow one little CPU.
package func poll(for timeout: Duration, until condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    var pause = 10_000   // nanoseconds
    while true {
        if try condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        var interval = timespec(tv_sec: 0, tv_nsec: pause)
        nanosleep(&interval, nil)
        pause = min(pause * 2, 5_000_000)
    }
}

/// `poll(for:until:)` for async tests: the pauses suspend the task instead of blocking its
/// thread (the tasks the condition waits for may need that thread to run).
package func poll(for timeout: Duration, until condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    var pause = 10_000   // nanoseconds
    while true {
        if try condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(nanoseconds: UInt64(pause))
        pause = min(pause * 2, 5_000_000)
    }
}

/// Whether descriptor `fd` of this process is registered with an epoll instance of this
/// process (a "tfd:" line naming it in that epoll's /proc/self/fdinfo entry): how a test
/// sees that a wait on `fd` has gone to sleep in a readiness poller.
package func isRegisteredWithAnEpoll(_ fd: Int32) -> Bool {
    openDescriptorNames().contains { name in
        guard let info = readWholeFile("/proc/self/fdinfo/" + name) else { return false }
        // tfd:        7 events:       19 data:                7  pos:0 ino:... sdev:...
        return info.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return fields.count >= 2 && fields[0] == "tfd:" && Int32(fields[1]) == fd
        }
    }
}

/// The number of the system call thread `tid` of this process is blocked in
/// (/proc/self/task/TID/syscall's first field), or nil when it runs or the file cannot be
/// read: how a test sees that a thread has gone to sleep (e.g. 202, `futex`, on x86-64).
package func blockedSystemCall(ofThread tid: pid_t) -> Int? {
    guard let text = readWholeFile("/proc/self/task/\(tid)/syscall"),
          let first = text.split(separator: " ").first else { return nil }
    return Int(first.filter { !$0.isWhitespace })
}

/// This thread's id (what `gettid` returns, which Swift's Glibc does not import), from the
/// /proc/thread-self link ("PID/task/TID"); 0 when it cannot be read.
package func currentThreadID() -> pid_t {
    var buffer = [CChar](repeating: 0, count: 64)
    let n = readlink("/proc/thread-self", &buffer, buffer.count - 1)
    guard n > 0 else { return 0 }
    let link = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return link.split(separator: "/").last.flatMap { pid_t($0) } ?? 0
}

/// The number of `futex` (`SYS_futex`, which Swift's Glibc does not import).
#if arch(x86_64)
package let futexSystemCall = 202
#elseif arch(arm64)
package let futexSystemCall = 98
#endif
