import Glibc

/// What this process holds that a device could leak: open descriptors (entries of
/// /proc/self/fd) and mappings (lines of /proc/self/maps).
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

    static func countMappings() -> Int {
        let fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return -1 }
        defer { close(fd) }
        var lines = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            for byte in buffer[..<count] where byte == UInt8(ascii: "\n") { lines += 1 }
        }
        return lines
    }
}
