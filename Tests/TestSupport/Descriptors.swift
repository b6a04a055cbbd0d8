import Glibc
import VFIO

// Leak checks that count only what the test itself made, so that tests running beside it
// in the same process cannot disturb them: the files a test made or handed on (an eventfd
// it passed to a server, a DMA buffer's memfd) are tracked by identity, and a server's
// connections by the socket path the test chose. Nothing here counts the process's
// descriptors or mappings as a whole; a check that has to (the conformance suite's) runs
// in a process of its own (`runsAlone`).

/// What an open file is, told apart from every other open file: the device and inode its
/// descriptor stats to and, for an eventfd (every eventfd shares one anonymous inode), its
/// `eventfd-id` from /proc/self/fdinfo. Unique while the file is open.
package struct OpenFileIdentity: Hashable, Sendable, CustomStringConvertible {
    package let device: UInt64
    package let inode: UInt64
    /// The `eventfd-id` line of /proc/self/fdinfo/N (Linux 6.0 on); nil for other files.
    package let eventfdID: String?

    /// The file `fd` refers to; nil when `fd` is not open.
    package init?(descriptor fd: Int32) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        self.init(info: info, fdinfo: "/proc/self/fdinfo/\(fd)")
    }

    /// The file /proc/self/fd/`name` refers to (stat follows the link to the file itself).
    init?(procEntry name: String) {
        var info = stat()
        guard stat("/proc/self/fd/" + name, &info) == 0 else { return nil }
        self.init(info: info, fdinfo: "/proc/self/fdinfo/" + name)
    }

    private init(info: stat, fdinfo: String) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        // Only anonymous inodes are shared between files; only eventfds are asked about.
        if info.st_mode & S_IFMT == 0, let text = readWholeFile(fdinfo),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("eventfd-id:") }) {
            eventfdID = String(line.dropFirst("eventfd-id:".count).filter { !$0.isWhitespace })
        } else {
            eventfdID = nil
        }
    }

    /// The device as /proc/self/maps writes it: major:minor in hex, at least two digits each.
    var mapsDevice: String {
        let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff))
        let minor = (device & 0xff) | ((device >> 12) & ~UInt64(0xff))
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return digits.count < 2 ? "0" + digits : digits
        }
        return hex(major) + ":" + hex(minor)
    }

    package var description: String {
        "dev \(mapsDevice) inode \(inode)" + (eventfdID.map { " eventfd-id \($0)" } ?? "")
    }
}

/// A file the test made or handed on, kept open by a duplicate of its descriptor for as
/// long as this lives, so that its identity (inode, eventfd id) cannot pass to another file
/// meanwhile: a leak check then asks which other descriptors and mappings of this process
/// still refer to it.
package final class TrackedFile: @unchecked Sendable {
    package let identity: OpenFileIdentity
    /// What the test called it, for messages.
    package let name: String
    private let held: Int32

    /// Tracks the file `fd` refers to (the caller keeps `fd` and closes it as before).
    /// - Throws: `VFIOError` (`EBADF` when `fd` is not open).
    package init(_ fd: Int32, name: String) throws {
        let duplicate = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard duplicate >= 0 else { throw VFIOError.errno("fcntl(F_DUPFD_CLOEXEC) of \(name)", errno) }
        guard let identity = OpenFileIdentity(descriptor: duplicate) else {
            close(duplicate)
            throw VFIOError.errno("fstat of \(name)", errno)
        }
        self.identity = identity
        self.name = name
        held = duplicate
    }

    deinit { close(held) }

    /// The descriptors of this process that refer to the file, besides the tracker's own
    /// and those in `besides` (the test's own, still open).
    package func descriptors(besides: [Int32] = []) -> [Int32] {
        let skip = Set(besides + [held])
        return openDescriptorNames().compactMap { name -> Int32? in
            guard let fd = Int32(name), !skip.contains(fd), OpenFileIdentity(procEntry: name) == identity else { return nil }
            return fd
        }
    }

    /// The lines of /proc/self/maps that map the file (by device and inode).
    package var mappings: [Substring] {
        let device = identity.mapsDevice, inode = String(identity.inode)
        return procSelfMaps().filter { line in
            // address perms offset dev inode pathname
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            return fields.count >= 5 && fields[3] == device && fields[4] == inode
        }
    }

    /// What still refers to the file besides the tracker and `besides`, described; nil
    /// when nothing does.
    package func stillReferenced(besides: [Int32] = []) -> String? {
        let fds = descriptors(besides: besides), maps = mappings
        if fds.isEmpty && maps.isEmpty { return nil }
        var found: [String] = []
        if !fds.isEmpty { found.append("descriptors \(fds.map(String.init).joined(separator: ", "))") }
        if !maps.isEmpty { found.append("mappings \(maps.joined(separator: "; "))") }
        return "\(name) (\(identity)): " + found.joined(separator: " and ")
    }
}

/// The connected UNIX sockets bound to `path`, by inode (from /proc/net/unix): the
/// connections a server accepted on its listening socket at `path`, which carry the
/// listener's address. A server that ended every session holds none; the path is the
/// test's own, so no other test's sockets are counted.
package func acceptedSockets(at path: String) -> [UInt64] {
    guard let table = readWholeFile("/proc/net/unix") else { return [] }
    // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 (__SO_ACCEPTCON) marks
    // the listener itself.
    return table.split(separator: "\n").dropFirst().compactMap { line in
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 8, fields[7] == path, fields[3] != "00010000" else { return nil }
        return UInt64(fields[6])
    }
}

/// The names of the entries of /proc/self/fd (descriptor numbers), the directory stream's
/// own descriptor left out.
package func openDescriptorNames() -> [String] {
    guard let dir = opendir("/proc/self/fd") else { return [] }
    defer { closedir(dir) }
    let own = String(dirfd(dir))
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." && name != own { names.append(name) }
    }
    return names
}

/// Counts this process's open descriptors: only for a test that runs alone (`runsAlone`),
/// where nothing else opens or closes any meanwhile.
package func openDescriptorCount() -> Int {
    precondition(isAloneChild, "a process-wide descriptor count is only meaningful in a test that runs alone")
    return openDescriptorNames().count
}

/// The lines of /proc/self/maps, read to the end (its size reads as 0, so it is read in
/// chunks until EOF).
package func procSelfMaps() -> [Substring] {
    let fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if got < 0 && errno == EINTR { continue }
        if got <= 0 { break }
        bytes += chunk[0..<got]
    }
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n")
}
