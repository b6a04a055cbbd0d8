import Testing
import VFIO

/// Runs `body`, expects a `VFIOError.malformed`, and checks its text names every one of
/// `mentions` (case-sensitive).
func expectFeatureMalformed(
    _ mentions: String...,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    let error = #expect(throws: VFIOError.self, sourceLocation: sourceLocation) { try body() }
    guard let error else { return }
    guard case .malformed = error.reason else {
        Issue.record("expected a malformed error, got \(error)", sourceLocation: sourceLocation)
        return
    }
    for text in mentions {
        #expect(error.description.contains(text), "\"\(error.description)\" does not mention \"\(text)\"", sourceLocation: sourceLocation)
    }
}

/// Little-endian bytes of `values`, for hand-built buffers.
func featureLE32(_ values: UInt32...) -> [UInt8] {
    values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

func featureLE64(_ values: UInt64...) -> [UInt8] {
    values.flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}
