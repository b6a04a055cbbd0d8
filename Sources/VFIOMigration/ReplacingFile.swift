import Glibc
import VFIO

/// A file written under a temporary name in the folder of `path` (`.NAME.` and random hex
/// digits, mode 0600) and renamed over `path` by `commit()` once complete and synced: until
/// then whatever was at `path` stays as it was. Released uncommitted, the temporary file is
/// closed and removed. The folder must take new files; a symbolic link at `path` is
/// replaced, not followed.
final class ReplacingFile {
    let path: String
    let temporaryPath: String
    private var fd: Int32
    private var committed = false

    /// - Throws: `.errno("open(…)")` when the folder takes no new file.
    init(replacing path: String) throws(VFIOError) {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var generator = SystemRandomNumberGenerator()
        while true {
            let suffix = String(generator.next() & 0xff_ffff_ffff, radix: 16)
            let candidate = "\(folder).\(name).\(suffix)"
            let made = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if made >= 0 {
                self.path = path
                temporaryPath = candidate
                fd = made
                return
            }
            // EEXIST: a name taken (by chance, or by a concurrent save); draw another.
            guard errno == EEXIST || errno == EINTR else { throw .errno("open(\(candidate))", errno) }
        }
    }

    deinit {
        guard !committed else { return }
        if fd >= 0 { Glibc.close(fd) }
        unlink(temporaryPath)
    }

    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(VFIOError) {
        let code = writeAll(bytes, at: offset)
        guard code == 0 else { throw .errno("pwrite(\(temporaryPath))", code) }
    }

    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: [UInt8], at offset: Int) throws(VFIOError) {
        let code = bytes.withUnsafeBytes { writeAll($0, at: offset) }
        guard code == 0 else { throw .errno("pwrite(\(temporaryPath))", code) }
    }

    /// 0, or the errno of the `pwrite` that failed (EIO for one that wrote nothing).
    private func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int32 {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return n < 0 ? errno : EIO }
            done += n
        }
        return 0
    }

    /// Syncs the file (`fsync`), renames it over `path` and syncs the folder, so that the
    /// new file is in place after a crash.
    /// - Throws: `.errno` naming the call; up to the rename `path` is untouched and the
    ///   temporary file removed. A failure of the folder's sync comes after the rename:
    ///   the new file is in place but may not survive a crash, and the error says so.
    func commit() throws(VFIOError) {
        guard fsync(fd) == 0 else { throw .errno("fsync(\(temporaryPath))", errno) }
        let closed = Glibc.close(fd)
        fd = -1
        guard closed == 0 else { throw .errno("close(\(temporaryPath))", errno) }
        guard rename(temporaryPath, path) == 0 else { throw .errno("rename(\(temporaryPath), \(path))", errno) }
        committed = true
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let folderFD = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard folderFD >= 0 else { throw .errno("open(\(folder)) to sync the rename of \(path)", errno) }
        defer { Glibc.close(folderFD) }
        guard fsync(folderFD) == 0 || errno == EINVAL else {
            throw .errno("fsync(\(folder)): \(path) is in place but the rename may not survive a crash", errno)
        }
    }
}
