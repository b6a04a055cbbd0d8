import Glibc
import VFIO

/// A new directory from `mkdtemp(template)` (the template's XXXXXX replaced).
package func makeTemporaryDirectory(_ template: String) throws -> String {
    var bytes = Array(template.utf8CString)
    guard let made = bytes.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw VFIOError.errno("mkdtemp \(template)", errno)
    }
    return String(cString: made)
}

/// A file's bytes, or nil when it cannot be opened.
package func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { return out }
        out.append(contentsOf: buffer[0..<n])
    }
}

/// Writes `bytes` to `path`, replacing what was there; false when that failed.
package func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count
}

/// A file's bytes as UTF-8 text, or nil when it cannot be opened.
package func readWholeFile(_ path: String) -> String? {
    readFile(path).map { String(decoding: $0, as: UTF8.self) }
}

/// Writes `text` to `path`, replacing what was there.
package func writeWholeFile(_ path: String, _ text: String) throws {
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
