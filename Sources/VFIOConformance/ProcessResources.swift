import Glibc

/// What this process holds that a device could leak: open descriptors (entries of
/// /proc/self/fd) and mappings of files (lines of /proc/self/maps that name a file: device
/// regions, memfd DMA buffers, libraries). Anonymous mappings are left out: thread stacks
/// and allocator arenas come and go with the Swift runtime's threads, and a device or DMA
/// buffer mapping always names its file.
public struct ProcessResources: Sendable, Equatable, CustomStringConvertible {
    public var descriptors: Int
    public var mappings: Int

    public init(descriptors: Int, mappings: Int) {
        self.descriptors = descriptors
        self.mappings = mappings
    }

    /// Counts them now.
    public static func current() -> ProcessResources {
        ProcessResources(descriptors: countDescriptors(), mappings: countMappings())
    }

    public var description: String { "\(descriptors) descriptors, \(mappings) mappings" }

    static func countDescriptors() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { count += 1 }
        }
        return count - 1   // the directory stream's own descriptor
    }

    /// What each open descriptor refers to (the targets of /proc/self/fd's links, e.g.
    /// `anon_inode:[eventfd]`, `/memfd:vfio-dma (deleted)`), for naming what a leak holds.
    public static func descriptorTargets() -> [String] {
        guard let dir = opendir("/proc/self/fd") else { return [] }
        defer { closedir(dir) }
        let own = dirfd(dir)
        var targets: [String] = []
        var buffer = [CChar](repeating: 0, count: 512)
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name != ".", name != "..", Int32(name) != own else { continue }
            let n = readlink("/proc/self/fd/\(name)", &buffer, buffer.count - 1)
            guard n > 0 else { continue }
            targets.append(String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return targets
    }

    /// The entries of `now` beyond those of `before` (as multisets).
    public static func added(_ now: [String], since before: [String]) -> [String] {
        var left = Dictionary(before.map { ($0, 1) }, uniquingKeysWith: +)
        var extra: [String] = []
        for target in now {
            if let n = left[target], n > 0 { left[target] = n - 1 } else { extra.append(target) }
        }
        return extra
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
