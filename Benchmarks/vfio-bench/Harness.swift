import Glibc

/// Nanoseconds on the monotonic clock.
@inline(__always)
func now() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

/// Latency samples (ns): median and p99.
struct Samples {
    var values: [UInt64] = []
    mutating func add(_ v: UInt64) { values.append(v) }
    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let i = min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))
        return Double(sorted[i])
    }
    var median: Double { percentile(0.5) }
    var p99: Double { percentile(0.99) }
}

/// Runs `floor` and `subject` in alternating blocks of `block` calls (`iterations` calls of
/// each in all), so that a change in the machine's load hits both alike: blocks of about
/// a millisecond, shorter than the swings of a shared VM's speed (tens of ms), long enough
/// that each block runs warm. Every call is timed alone.
func interleavedLatency(iterations: Int, block: Int = 100, warmup: Int,
                        floor: () throws -> Void, subject: () throws -> Void) rethrows -> (floor: Samples, subject: Samples) {
    var f = Samples(), s = Samples()
    for _ in 0..<warmup { try floor(); try subject() }
    let per = max(1, min(block, iterations))
    for _ in 0..<max(1, iterations / per) {
        for _ in 0..<per { let t = now(); try floor(); f.add(now() - t) }
        for _ in 0..<per { let t = now(); try subject(); s.add(now() - t) }
    }
    return (f, s)
}

/// As `interleavedLatency`, but each block is timed as a whole: returns the best (highest)
/// rate in units per second over the rounds, and the median one. `block` returns the units
/// it moved.
func interleavedRate(rounds: Int, floor: () throws -> Double, subject: () throws -> Double) rethrows -> (floor: [Double], subject: [Double]) {
    _ = try floor(); _ = try subject()   // warm-up
    var f: [Double] = [], s: [Double] = []
    for _ in 0..<rounds {
        var t = now(); var units = try floor(); f.append(units / (Double(now() - t) / 1e9))
        t = now(); units = try subject(); s.append(units / (Double(now() - t) / 1e9))
    }
    return (f, s)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}

/// One line of the result table.
struct Row {
    var group: String
    var name: String
    var unit: String
    var subject: Double
    var floorName: String
    var floor: Double
    /// True when a smaller value is better (times).
    var lowerIsBetter: Bool
    var target: String = ""

    /// subject / floor: a time ratio (1.0 = as fast as the floor, higher is slower) or a
    /// rate ratio (1.0 = as fast as the floor, lower is slower).
    var ratio: Double { subject / floor }
}

func format(_ v: Double) -> String {
    if v.isNaN { return "-" }
    if v >= 100 { return String(Int(v.rounded())) }
    if v >= 10 { return String(format1(v, 1)) }
    return format1(v, 2)
}

func format1(_ v: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (v * scale).rounded() / scale
    var text = String(r)
    if let dot = text.firstIndex(of: ".") {
        let decimals = text.distance(from: dot, to: text.endIndex) - 1
        if decimals < digits { text += String(repeating: "0", count: digits - decimals) }
    } else {
        text += "." + String(repeating: "0", count: digits)
    }
    return text
}

func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let n = s.count
    if n >= width { return s }
    let spaces = String(repeating: " ", count: width - n)
    return right ? spaces + s : s + spaces
}

func printTable(_ rows: [Row]) {
    let header = ["", "measure", "vfio-user", "floor", "floor is", "ratio", "target"]
    var lines: [[String]] = [header]
    for r in rows {
        lines.append([r.group, r.name, "\(format(r.subject)) \(r.unit)", "\(format(r.floor)) \(r.unit)", r.floorName,
                      format1(r.ratio, 2) + "x", r.target])
    }
    var widths = [Int](repeating: 0, count: header.count)
    for l in lines { for (i, c) in l.enumerated() { widths[i] = max(widths[i], c.count) } }
    for (n, l) in lines.enumerated() {
        var text = "|"
        for (i, c) in l.enumerated() { text += " " + pad(c, widths[i], right: i == 2 || i == 3 || i == 5) + " |" }
        print(text)
        if n == 0 {
            var rule = "|"
            for (i, w) in widths.enumerated() { rule += (i == 2 || i == 3 || i == 5 ? " " + String(repeating: "-", count: w - 1) + ":" : " " + String(repeating: "-", count: w)) + " |" }
            print(rule)
        }
    }
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default: out.unicodeScalars.append(c)
        }
    }
    return out + "\""
}

func printJSON(_ rows: [Row], notes: [String]) {
    var parts: [String] = []
    for r in rows {
        let number = { (v: Double) -> String in v.isNaN ? "null" : String(v) }
        parts.append("{\"group\":\(jsonString(r.group)),\"measure\":\(jsonString(r.name)),\"unit\":\(jsonString(r.unit)),"
                     + "\"vfio_user\":\(number(r.subject)),\"floor\":\(number(r.floor)),\"floor_is\":\(jsonString(r.floorName)),"
                     + "\"ratio\":\(number(r.ratio)),\"lower_is_better\":\(r.lowerIsBetter),\"target\":\(jsonString(r.target))}")
    }
    print("{\"rows\":[\n  " + parts.joined(separator: ",\n  ") + "\n],\"notes\":[" + notes.map(jsonString).joined(separator: ",") + "]}")
}
