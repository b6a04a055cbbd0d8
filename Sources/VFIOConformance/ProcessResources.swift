import Glibc
import VFIOSystem

/// What this process holds that a device could leak: open descriptors (entries of
/// /proc/self/fd) and mappings of files (lines of /proc/self/maps that name a file: device
/// regions, memfd DMA buffers, libraries). Anonymous mappings are left out: thread stacks
/// and allocator arenas come and go with the Swift runtime's threads, and a device or DMA
/// buffer mapping always names its file.
public struct ProcessResources: Sendable, Equatable, CustomStringConvertible {
    /// The open descriptors by number, each with what it refers to (the target of its
    /// /proc/self/fd link, e.g. `anon_inode:[eventfd]`, `/memfd:vfio-dma (deleted)`).
    public var descriptors: [Int32: String]
    /// The number of file mappings.
    public var mappings: Int

    public init(descriptors: [Int32: String], mappings: Int) {
        self.descriptors = descriptors
        self.mappings = mappings
    }

    /// Reads them now. The descriptors come from one pass over /proc/self/fd, so their
    /// number and what they refer to are of the same moment (the directory stream's own
    /// descriptor is left out, and so is one closed before its link could be read).
    public static func current() -> ProcessResources {
        ProcessResources(descriptors: openDescriptors(), mappings: countMappings())
    }

    /// What the process holds once it holds the same before and after a 5 ms pause (or
    /// after 20 tries): a leak check's baseline. The runtime opens some descriptors late
    /// and keeps them: libdispatch's epoll and eventfd come with its first timer (the
    /// first pause here), and its per-clock timerfds, which `descriptorsAdded(since:)`
    /// leaves out because no pause can be sure to bring them in.
    ///
    /// The process-wide `ReadinessPoller` is started first: it opens its epoll descriptor
    /// on first use, which is the first `EventFD.wait()` that finds no value yet: whether
    /// a warm-up's wait had to wait depends on how fast the device answered. Started
    /// here, its descriptor is in every baseline, whatever ran before.
    public static func settled() async throws -> ProcessResources {
        ReadinessPoller.start()
        var last = current()
        for _ in 0..<20 {
            try await Task.sleep(for: .milliseconds(5))
            let now = current()
            if now == last { return now }
            last = now
        }
        return last
    }

    public var description: String { "\(descriptors.count) descriptors, \(mappings) mappings" }

    /// What the descriptors open here and not in `baseline` refer to, sorted: the targets
    /// compared as multisets, so a descriptor that was closed and opened again on the same
    /// thing (under any number) is not counted, and a new one is even if another closed
    /// meanwhile. Empty exactly when every descriptor open here has its match in `baseline`.
    ///
    /// Timer descriptors (`anon_inode:[timerfd]`) are left out: libdispatch opens one per
    /// clock on its manager thread when it first programs a timer on that clock, and a
    /// timer whose deadline has already passed when the manager thread runs (a short
    /// sleep on a loaded machine) fires without one, so no baseline can be sure to hold
    /// it. Nothing in this project opens a timerfd.
    public func descriptorsAdded(since baseline: ProcessResources) -> [String] {
        var left = Dictionary(baseline.descriptors.values.map { ($0, 1) }, uniquingKeysWith: +)
        var added: [String] = []
        for target in descriptors.values where target != Self.runtimeTimer {
            if let n = left[target], n > 0 { left[target] = n - 1 } else { added.append(target) }
        }
        return added.sorted()
    }

    /// What a timerfd's /proc/self/fd link reads.
    static let runtimeTimer = "anon_inode:[timerfd]"

    static func openDescriptors() -> [Int32: String] {
        guard let dir = opendir("/proc/self/fd") else { return [:] }
        defer { closedir(dir) }
        let own = dirfd(dir)
        var descriptors: [Int32: String] = [:]
        var buffer = [CChar](repeating: 0, count: 512)
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let fd = Int32(name), fd != own else { continue }   // skips "." and ".."
            let n = readlink("/proc/self/fd/\(name)", &buffer, buffer.count - 1)
            guard n > 0 else { continue }
            descriptors[fd] = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return descriptors
    }

    static func countMappings() -> Int {
        let fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return -1 }
        defer { close(fd) }
        var text: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            text.append(contentsOf: buffer[..<count])
        }
        return text.split(separator: UInt8(ascii: "\n")).filter(namesAFile).count
    }

    /// Whether a /proc/self/maps line has a pathname that is a file (`/...` or
    /// `anon_inode:...`), not a pseudo-name such as `[heap]` or nothing at all.
    static func namesAFile(_ line: ArraySlice<UInt8>) -> Bool {
        // address perms offset dev inode pathname: the pathname is the sixth field.
        var fields = 0
        var index = line.startIndex
        while index < line.endIndex {
            while index < line.endIndex && line[index] == UInt8(ascii: " ") { index += 1 }
            if index == line.endIndex { break }
            fields += 1
            if fields == 6 { return line[index] == UInt8(ascii: "/") || line[index...].starts(with: "anon_inode:".utf8) }
            while index < line.endIndex && line[index] != UInt8(ascii: " ") { index += 1 }
        }
        return false
    }
}
