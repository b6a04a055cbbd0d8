import ArgumentParser

/// A byte count on the command line: digits, optionally followed by K, M, G or T (binary:
/// 1K = 1024), alone or as KiB, KB, … (`4G`, `512MiB`, `1048576`).
struct ByteSize: ExpressibleByArgument, CustomStringConvertible, Equatable {
    var bytes: UInt64

    static let units: [(suffix: String, shift: UInt64)] = [("T", 40), ("G", 30), ("M", 20), ("K", 10)]

    init(bytes: UInt64) { self.bytes = bytes }

    init?(argument: String) {
        guard let parsed = try? Self.parse(argument) else { return nil }
        self = parsed
    }

    /// - Throws: `ValidationError` naming the accepted forms, also on overflow.
    static func parse(_ text: String) throws -> ByteSize {
        var digits = Substring(text.uppercased())
        for ending in ["IB", "B"] where digits.hasSuffix(ending) {
            digits = digits.dropLast(ending.count)
            break
        }
        var shift: UInt64 = 0
        if let unit = units.first(where: { digits.hasSuffix($0.suffix) }) {
            shift = unit.shift
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = UInt64(digits) else {
            throw ValidationError("'\(text)' is not a size: use bytes, or a number with K, M, G or T (1K = 1024), as in 512M or 4G")
        }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { throw ValidationError("'\(text)' is more than 2^64 - 1 bytes") }
        return ByteSize(bytes: bytes)
    }

    /// The largest unit that divides the count exactly (`4G`), else bytes.
    var description: String {
        if bytes > 0, let unit = Self.units.first(where: { bytes & ((1 << $0.shift) - 1) == 0 }) {
            return "\(bytes >> unit.shift)\(unit.suffix)"
        }
        return "\(bytes)"
    }

    var defaultValueDescription: String { description }
}
