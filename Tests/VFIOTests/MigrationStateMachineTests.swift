import Testing
@testable import VFIO

// The expectations here are written from the uAPI text (the arcs a driver implements and
// the combination transitions listed above vfio_mig_get_next_state()), not produced by the
// implementation. A path is "A>B>C"; a lone state is from == to (no arcs); "!kind" is an
// -EINVAL case; "FROM -> *" covers the whole row.

private let stopCopyOnly: MigrationFeatures = [.stopCopy]
private let withP2P: MigrationFeatures = [.stopCopy, .p2p]
private let withPreCopy: MigrationFeatures = [.stopCopy, .preCopy]
private let withBoth: MigrationFeatures = [.stopCopy, .p2p, .preCopy]

/// The arcs a driver must implement, per feature set, as the uAPI lists them.
private let documentedArcs: [(MigrationFeatures, [String])] = [
    (stopCopyOnly, [
        "STOP>STOP_COPY", "STOP_COPY>STOP", "STOP>RESUMING", "RESUMING>STOP",
        "RUNNING>STOP", "STOP>RUNNING",
    ]),
    (withP2P, [
        "STOP>STOP_COPY", "STOP_COPY>STOP", "STOP>RESUMING", "RESUMING>STOP",
        "RUNNING>RUNNING_P2P", "RUNNING_P2P>RUNNING", "RUNNING_P2P>STOP", "STOP>RUNNING_P2P",
    ]),
    (withPreCopy, [
        "STOP>STOP_COPY", "STOP_COPY>STOP", "STOP>RESUMING", "RESUMING>STOP",
        "RUNNING>STOP", "STOP>RUNNING",
        "RUNNING>PRE_COPY", "PRE_COPY>RUNNING", "PRE_COPY>STOP_COPY",
    ]),
    (withBoth, [
        "STOP>STOP_COPY", "STOP_COPY>STOP", "STOP>RESUMING", "RESUMING>STOP",
        "RUNNING>RUNNING_P2P", "RUNNING_P2P>RUNNING", "RUNNING_P2P>STOP", "STOP>RUNNING_P2P",
        "RUNNING>PRE_COPY", "PRE_COPY>RUNNING", "PRE_COPY>PRE_COPY_P2P", "PRE_COPY_P2P>PRE_COPY",
        "PRE_COPY_P2P>RUNNING_P2P", "PRE_COPY_P2P>STOP_COPY", "RUNNING_P2P>PRE_COPY_P2P",
    ]),
]

/// The states each feature set offers, as the VFIO_DEVICE_FEATURE_MIGRATION text lists them.
private let documentedStates: [(MigrationFeatures, [String])] = [
    (stopCopyOnly, ["STOP", "RUNNING", "STOP_COPY", "RESUMING"]),
    (withP2P, ["STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P"]),
    (withPreCopy, ["STOP", "RUNNING", "STOP_COPY", "RESUMING", "PRE_COPY"]),
    (withBoth, ["STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P"]),
]

private let savingStates: Set<String> = ["STOP_COPY", "PRE_COPY", "PRE_COPY_P2P"]

private let expectedStopCopyOnly = """
    ERROR -> *: !from-error
    RUNNING_P2P -> *: !from-unsupported
    PRE_COPY -> *: !from-unsupported
    PRE_COPY_P2P -> *: !from-unsupported
    STOP -> ERROR: !to-error
    STOP -> STOP: STOP
    STOP -> RUNNING: STOP>RUNNING
    STOP -> STOP_COPY: STOP>STOP_COPY
    STOP -> RESUMING: STOP>RESUMING
    STOP -> RUNNING_P2P: !to-unsupported
    STOP -> PRE_COPY: !to-unsupported
    STOP -> PRE_COPY_P2P: !to-unsupported
    RUNNING -> ERROR: !to-error
    RUNNING -> STOP: RUNNING>STOP
    RUNNING -> RUNNING: RUNNING
    RUNNING -> STOP_COPY: RUNNING>STOP>STOP_COPY
    RUNNING -> RESUMING: RUNNING>STOP>RESUMING
    RUNNING -> RUNNING_P2P: !to-unsupported
    RUNNING -> PRE_COPY: !to-unsupported
    RUNNING -> PRE_COPY_P2P: !to-unsupported
    STOP_COPY -> ERROR: !to-error
    STOP_COPY -> STOP: STOP_COPY>STOP
    STOP_COPY -> RUNNING: STOP_COPY>STOP>RUNNING
    STOP_COPY -> STOP_COPY: STOP_COPY
    STOP_COPY -> RESUMING: STOP_COPY>STOP>RESUMING
    STOP_COPY -> RUNNING_P2P: !to-unsupported
    STOP_COPY -> PRE_COPY: !to-unsupported
    STOP_COPY -> PRE_COPY_P2P: !to-unsupported
    RESUMING -> ERROR: !to-error
    RESUMING -> STOP: RESUMING>STOP
    RESUMING -> RUNNING: RESUMING>STOP>RUNNING
    RESUMING -> STOP_COPY: RESUMING>STOP>STOP_COPY
    RESUMING -> RESUMING: RESUMING
    RESUMING -> RUNNING_P2P: !to-unsupported
    RESUMING -> PRE_COPY: !to-unsupported
    RESUMING -> PRE_COPY_P2P: !to-unsupported
    """

private let expectedWithP2P = """
    ERROR -> *: !from-error
    PRE_COPY -> *: !from-unsupported
    PRE_COPY_P2P -> *: !from-unsupported
    STOP -> ERROR: !to-error
    STOP -> STOP: STOP
    STOP -> RUNNING: STOP>RUNNING_P2P>RUNNING
    STOP -> STOP_COPY: STOP>STOP_COPY
    STOP -> RESUMING: STOP>RESUMING
    STOP -> RUNNING_P2P: STOP>RUNNING_P2P
    STOP -> PRE_COPY: !to-unsupported
    STOP -> PRE_COPY_P2P: !to-unsupported
    RUNNING -> ERROR: !to-error
    RUNNING -> STOP: RUNNING>RUNNING_P2P>STOP
    RUNNING -> RUNNING: RUNNING
    RUNNING -> STOP_COPY: RUNNING>RUNNING_P2P>STOP>STOP_COPY
    RUNNING -> RESUMING: RUNNING>RUNNING_P2P>STOP>RESUMING
    RUNNING -> RUNNING_P2P: RUNNING>RUNNING_P2P
    RUNNING -> PRE_COPY: !to-unsupported
    RUNNING -> PRE_COPY_P2P: !to-unsupported
    STOP_COPY -> ERROR: !to-error
    STOP_COPY -> STOP: STOP_COPY>STOP
    STOP_COPY -> RUNNING: STOP_COPY>STOP>RUNNING_P2P>RUNNING
    STOP_COPY -> STOP_COPY: STOP_COPY
    STOP_COPY -> RESUMING: STOP_COPY>STOP>RESUMING
    STOP_COPY -> RUNNING_P2P: STOP_COPY>STOP>RUNNING_P2P
    STOP_COPY -> PRE_COPY: !to-unsupported
    STOP_COPY -> PRE_COPY_P2P: !to-unsupported
    RESUMING -> ERROR: !to-error
    RESUMING -> STOP: RESUMING>STOP
    RESUMING -> RUNNING: RESUMING>STOP>RUNNING_P2P>RUNNING
    RESUMING -> STOP_COPY: RESUMING>STOP>STOP_COPY
    RESUMING -> RESUMING: RESUMING
    RESUMING -> RUNNING_P2P: RESUMING>STOP>RUNNING_P2P
    RESUMING -> PRE_COPY: !to-unsupported
    RESUMING -> PRE_COPY_P2P: !to-unsupported
    RUNNING_P2P -> ERROR: !to-error
    RUNNING_P2P -> STOP: RUNNING_P2P>STOP
    RUNNING_P2P -> RUNNING: RUNNING_P2P>RUNNING
    RUNNING_P2P -> STOP_COPY: RUNNING_P2P>STOP>STOP_COPY
    RUNNING_P2P -> RESUMING: RUNNING_P2P>STOP>RESUMING
    RUNNING_P2P -> RUNNING_P2P: RUNNING_P2P
    RUNNING_P2P -> PRE_COPY: !to-unsupported
    RUNNING_P2P -> PRE_COPY_P2P: !to-unsupported
    """

private let expectedWithPreCopy = """
    ERROR -> *: !from-error
    RUNNING_P2P -> *: !from-unsupported
    PRE_COPY_P2P -> *: !from-unsupported
    STOP -> ERROR: !to-error
    STOP -> STOP: STOP
    STOP -> RUNNING: STOP>RUNNING
    STOP -> STOP_COPY: STOP>STOP_COPY
    STOP -> RESUMING: STOP>RESUMING
    STOP -> RUNNING_P2P: !to-unsupported
    STOP -> PRE_COPY: STOP>RUNNING>PRE_COPY
    STOP -> PRE_COPY_P2P: !to-unsupported
    RUNNING -> ERROR: !to-error
    RUNNING -> STOP: RUNNING>STOP
    RUNNING -> RUNNING: RUNNING
    RUNNING -> STOP_COPY: RUNNING>STOP>STOP_COPY
    RUNNING -> RESUMING: RUNNING>STOP>RESUMING
    RUNNING -> RUNNING_P2P: !to-unsupported
    RUNNING -> PRE_COPY: RUNNING>PRE_COPY
    RUNNING -> PRE_COPY_P2P: !to-unsupported
    STOP_COPY -> ERROR: !to-error
    STOP_COPY -> STOP: STOP_COPY>STOP
    STOP_COPY -> RUNNING: STOP_COPY>STOP>RUNNING
    STOP_COPY -> STOP_COPY: STOP_COPY
    STOP_COPY -> RESUMING: STOP_COPY>STOP>RESUMING
    STOP_COPY -> RUNNING_P2P: !to-unsupported
    STOP_COPY -> PRE_COPY: !blocked
    STOP_COPY -> PRE_COPY_P2P: !to-unsupported
    RESUMING -> ERROR: !to-error
    RESUMING -> STOP: RESUMING>STOP
    RESUMING -> RUNNING: RESUMING>STOP>RUNNING
    RESUMING -> STOP_COPY: RESUMING>STOP>STOP_COPY
    RESUMING -> RESUMING: RESUMING
    RESUMING -> RUNNING_P2P: !to-unsupported
    RESUMING -> PRE_COPY: RESUMING>STOP>RUNNING>PRE_COPY
    RESUMING -> PRE_COPY_P2P: !to-unsupported
    PRE_COPY -> ERROR: !to-error
    PRE_COPY -> STOP: PRE_COPY>RUNNING>STOP
    PRE_COPY -> RUNNING: PRE_COPY>RUNNING
    PRE_COPY -> STOP_COPY: PRE_COPY>STOP_COPY
    PRE_COPY -> RESUMING: PRE_COPY>RUNNING>STOP>RESUMING
    PRE_COPY -> RUNNING_P2P: !to-unsupported
    PRE_COPY -> PRE_COPY: PRE_COPY
    PRE_COPY -> PRE_COPY_P2P: !to-unsupported
    """

private let expectedWithBoth = """
    ERROR -> *: !from-error
    STOP -> ERROR: !to-error
    STOP -> STOP: STOP
    STOP -> RUNNING: STOP>RUNNING_P2P>RUNNING
    STOP -> STOP_COPY: STOP>STOP_COPY
    STOP -> RESUMING: STOP>RESUMING
    STOP -> RUNNING_P2P: STOP>RUNNING_P2P
    STOP -> PRE_COPY: STOP>RUNNING_P2P>RUNNING>PRE_COPY
    STOP -> PRE_COPY_P2P: STOP>RUNNING_P2P>PRE_COPY_P2P
    RUNNING -> ERROR: !to-error
    RUNNING -> STOP: RUNNING>RUNNING_P2P>STOP
    RUNNING -> RUNNING: RUNNING
    RUNNING -> STOP_COPY: RUNNING>RUNNING_P2P>STOP>STOP_COPY
    RUNNING -> RESUMING: RUNNING>RUNNING_P2P>STOP>RESUMING
    RUNNING -> RUNNING_P2P: RUNNING>RUNNING_P2P
    RUNNING -> PRE_COPY: RUNNING>PRE_COPY
    RUNNING -> PRE_COPY_P2P: RUNNING>RUNNING_P2P>PRE_COPY_P2P
    STOP_COPY -> ERROR: !to-error
    STOP_COPY -> STOP: STOP_COPY>STOP
    STOP_COPY -> RUNNING: STOP_COPY>STOP>RUNNING_P2P>RUNNING
    STOP_COPY -> STOP_COPY: STOP_COPY
    STOP_COPY -> RESUMING: STOP_COPY>STOP>RESUMING
    STOP_COPY -> RUNNING_P2P: STOP_COPY>STOP>RUNNING_P2P
    STOP_COPY -> PRE_COPY: !blocked
    STOP_COPY -> PRE_COPY_P2P: !blocked
    RESUMING -> ERROR: !to-error
    RESUMING -> STOP: RESUMING>STOP
    RESUMING -> RUNNING: RESUMING>STOP>RUNNING_P2P>RUNNING
    RESUMING -> STOP_COPY: RESUMING>STOP>STOP_COPY
    RESUMING -> RESUMING: RESUMING
    RESUMING -> RUNNING_P2P: RESUMING>STOP>RUNNING_P2P
    RESUMING -> PRE_COPY: RESUMING>STOP>RUNNING_P2P>RUNNING>PRE_COPY
    RESUMING -> PRE_COPY_P2P: RESUMING>STOP>RUNNING_P2P>PRE_COPY_P2P
    RUNNING_P2P -> ERROR: !to-error
    RUNNING_P2P -> STOP: RUNNING_P2P>STOP
    RUNNING_P2P -> RUNNING: RUNNING_P2P>RUNNING
    RUNNING_P2P -> STOP_COPY: RUNNING_P2P>STOP>STOP_COPY
    RUNNING_P2P -> RESUMING: RUNNING_P2P>STOP>RESUMING
    RUNNING_P2P -> RUNNING_P2P: RUNNING_P2P
    RUNNING_P2P -> PRE_COPY: RUNNING_P2P>RUNNING>PRE_COPY
    RUNNING_P2P -> PRE_COPY_P2P: RUNNING_P2P>PRE_COPY_P2P
    PRE_COPY -> ERROR: !to-error
    PRE_COPY -> STOP: PRE_COPY>RUNNING>RUNNING_P2P>STOP
    PRE_COPY -> RUNNING: PRE_COPY>RUNNING
    PRE_COPY -> STOP_COPY: PRE_COPY>PRE_COPY_P2P>STOP_COPY
    PRE_COPY -> RESUMING: PRE_COPY>RUNNING>RUNNING_P2P>STOP>RESUMING
    PRE_COPY -> RUNNING_P2P: PRE_COPY>RUNNING>RUNNING_P2P
    PRE_COPY -> PRE_COPY: PRE_COPY
    PRE_COPY -> PRE_COPY_P2P: PRE_COPY>PRE_COPY_P2P
    PRE_COPY_P2P -> ERROR: !to-error
    PRE_COPY_P2P -> STOP: PRE_COPY_P2P>RUNNING_P2P>STOP
    PRE_COPY_P2P -> RUNNING: PRE_COPY_P2P>RUNNING_P2P>RUNNING
    PRE_COPY_P2P -> STOP_COPY: PRE_COPY_P2P>STOP_COPY
    PRE_COPY_P2P -> RESUMING: PRE_COPY_P2P>RUNNING_P2P>STOP>RESUMING
    PRE_COPY_P2P -> RUNNING_P2P: PRE_COPY_P2P>RUNNING_P2P
    PRE_COPY_P2P -> PRE_COPY: PRE_COPY_P2P>PRE_COPY
    PRE_COPY_P2P -> PRE_COPY_P2P: PRE_COPY_P2P
    """

// MARK: - Helpers

private enum Expected: Equatable {
    case path([String])   // states visited, from first to last
    case error(String)    // the kind after "!"
}

private struct Pair: Hashable {
    var from: String
    var to: String
}

private let allNames = MigrationState.allCases.map(\.description)

/// Expands one feature set's expectation text into exactly 64 (from, to) entries.
private func parseTable(_ text: String) -> [Pair: Expected] {
    var table: [Pair: Expected] = [:]
    for rawLine in text.split(separator: "\n") {
        let line = rawLine.trimmingCharacters()
        let sides = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters() }
        let ends = sides[0].split(separator: " ").filter { $0 != "->" }.map(String.init)
        precondition(sides.count == 2 && ends.count == 2, "bad table line: \(line)")
        let value: Expected = sides[1].hasPrefix("!")
            ? .error(String(sides[1].dropFirst()))
            : .path(sides[1].split(separator: ">").map(String.init))
        let targets = ends[1] == "*" ? allNames : [ends[1]]
        for to in targets {
            let pair = Pair(from: ends[0], to: to)
            precondition(table[pair] == nil, "duplicate table entry \(ends[0]) -> \(to)")
            table[pair] = value
        }
    }
    precondition(table.count == 64, "table has \(table.count) entries, not 64")
    return table
}

private extension Substring {
    func trimmingCharacters() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

private let expectedTables: [(MigrationFeatures, [Pair: Expected])] = [
    (stopCopyOnly, parseTable(expectedStopCopyOnly)),
    (withP2P, parseTable(expectedWithP2P)),
    (withPreCopy, parseTable(expectedWithPreCopy)),
    (withBoth, parseTable(expectedWithBoth)),
]

private func state(_ name: String) -> MigrationState {
    guard let value = MigrationState(name: name) else { preconditionFailure("unknown state \(name)") }
    return value
}

private func arcsByName(_ features: MigrationFeatures) -> Set<Pair> {
    let list = documentedArcs.first { $0.0 == features }!.1
    return Set(list.map { arc in
        let ends = arc.split(separator: ">").map(String.init)
        return Pair(from: ends[0], to: ends[1])
    })
}

private func statesByName(_ features: MigrationFeatures) -> Set<String> {
    Set(documentedStates.first { $0.0 == features }!.1)
}

/// Whether `name` may sit strictly inside a path from `from` to `to`: a path between two
/// saving states stays in the saving group (one data session); any other path has neither
/// saving states nor RESUMING inside it.
private func mayBeInterior(_ name: String, from: String, to: String) -> Bool {
    if savingStates.contains(from) && savingStates.contains(to) { return savingStates.contains(name) }
    return !savingStates.contains(name) && name != "RESUMING"
}

/// Shortest number of documented arcs from `from` to `to` under the interior rule, or nil.
private func bfsLength(from: String, to: String, features: MigrationFeatures) -> Int? {
    let states = statesByName(features)
    guard states.contains(from), states.contains(to) else { return nil }
    if from == to { return 0 }
    let arcs = arcsByName(features)
    var distance: [String: Int] = [from: 0]
    var queue = [from]
    var index = 0
    while index < queue.count {
        let current = queue[index]
        index += 1
        for arc in arcs where arc.from == current {
            let next = arc.to
            if next == to { return distance[current]! + 1 }
            if distance[next] == nil && mayBeInterior(next, from: from, to: to) {
                distance[next] = distance[current]! + 1
                queue.append(next)
            }
        }
    }
    return nil
}

private func invalidArgumentText(_ error: VFIOError) -> String? {
    guard error.operation == "vfio_mig_get_next_state" else { return nil }
    if case .invalidArgument(let text) = error.reason { return text }
    return nil
}

/// The message fragment each kind of refusal must contain.
private func expectedFragment(kind: String, from: String, to: String, features: MigrationFeatures) -> String {
    switch kind {
    case "from-error": return "the current state ERROR has no way out but a device reset"
    case "from-unsupported": return "the current state \(from) is not supported by a device without"
    case "to-error": return "ERROR cannot be a target; only a device reset leaves ERROR"
    case "to-unsupported": return "target \(to) needs the"
    case "blocked": return "\(from) -> \(to) is not permitted"
    default: preconditionFailure("unknown error kind \(kind)")
    }
}

// MARK: - Tests

@Suite struct MigrationStateMachineTests {
    @Test func everyPairMatchesTheWrittenTable() {
        var checked = 0
        for (features, table) in expectedTables {
            for from in MigrationState.allCases {
                for to in MigrationState.allCases {
                    let label = "\(from) -> \(to) with \(features)"
                    let expected = table[Pair(from: from.description, to: to.description)]!
                    checked += 1
                    switch expected {
                    case .path(let names):
                        let expectedArcs = zip(names, names.dropFirst()).map {
                            MigrationArc(from: state($0.0), to: state($0.1))
                        }
                        #expect(names.first == from.description && names.last == to.description, "table row \(label)")
                        #expect(throws: Never.self, "\(label)") {
                            let path = try MigrationStateMachine.path(from: from, to: to, features: features)
                            #expect(path == expectedArcs, "\(label)")
                            let first = try MigrationStateMachine.nextState(from: from, to: to, features: features)
                            #expect(first == (expectedArcs.first?.to ?? from), "\(label)")
                            let raw = try MigrationStateMachine.nextState(
                                fromRawValue: from.rawValue, toRawValue: to.rawValue, features: features)
                            #expect(raw == first, "\(label)")
                        }
                    case .error(let kind):
                        let fragment = expectedFragment(kind: kind, from: from.description, to: to.description, features: features)
                        for attempt in 0..<3 {
                            do {
                                switch attempt {
                                case 0: _ = try MigrationStateMachine.nextState(from: from, to: to, features: features)
                                case 1: _ = try MigrationStateMachine.path(from: from, to: to, features: features)
                                default: _ = try MigrationStateMachine.nextState(
                                    fromRawValue: from.rawValue, toRawValue: to.rawValue, features: features)
                                }
                                Issue.record("\(label): expected the error \(kind), got a result")
                            } catch {
                                let text = invalidArgumentText(error)
                                #expect(text?.contains(fragment) == true, "\(label): \(error)")
                            }
                        }
                    }
                }
            }
        }
        #expect(checked == 256)
    }

    @Test func pathsAreShortestOverDocumentedArcsWithoutSavingOrResumingInside() {
        for (features, _) in expectedTables {
            let arcs = arcsByName(features)
            let states = statesByName(features)
            for from in MigrationState.allCases {
                for to in MigrationState.allCases {
                    let label = "\(from) -> \(to) with \(features)"
                    let shortest = bfsLength(from: from.description, to: to.description, features: features)
                    let path = try? MigrationStateMachine.path(from: from, to: to, features: features)
                    #expect((path != nil) == (shortest != nil), "path exists exactly when BFS finds one: \(label)")
                    guard let path, let shortest else { continue }
                    #expect(path.count == shortest, "\(label): \(path) vs BFS \(shortest)")
                    var current = from
                    for arc in path {
                        #expect(arc.from == current, "\(label): broken chain at \(arc)")
                        #expect(arcs.contains(Pair(from: arc.from.description, to: arc.to.description)), "\(label): \(arc) is not a documented arc")
                        #expect(states.contains(arc.from.description) && states.contains(arc.to.description), "\(label): \(arc)")
                        current = arc.to
                    }
                    #expect(current == to, "\(label): ends at \(current)")
                    for arc in path.dropLast() {
                        #expect(mayBeInterior(arc.to.description, from: from.description, to: to.description), "\(label): \(arc.to) inside the path")
                    }
                }
            }
        }
    }

    @Test func arcsAndStatesMatchTheDocumentedLists() throws {
        for (features, _) in expectedTables {
            let arcs = MigrationStateMachine.arcs(for: features)
            #expect(Set(arcs.map { Pair(from: $0.from.description, to: $0.to.description) }) == arcsByName(features), "\(features)")
            #expect(Set(arcs).count == arcs.count, "no duplicate arcs for \(features)")
            #expect(Set(MigrationStateMachine.supportedStates(for: features).map(\.description)) == statesByName(features))
            for state in MigrationState.allCases {
                #expect(MigrationStateMachine.isSupported(state, features: features) == statesByName(features).contains(state.description))
            }
            // Every arc a driver must implement is taken by some combination transition, and
            // no transition takes any other.
            var used = Set<MigrationArc>()
            for from in MigrationState.allCases {
                for to in MigrationState.allCases {
                    if let path = try? MigrationStateMachine.path(from: from, to: to, features: features) {
                        used.formUnion(path)
                    }
                }
            }
            #expect(used == Set(arcs), "\(features)")
        }
        #expect(MigrationStateMachine.isSupported(.error, features: withBoth) == false)
        #expect(MigrationStateMachine.requiredFeatures(for: .error) == nil)
    }

    @Test func everySupportedStateReachesEverySupportedState() throws {
        for (features, _) in expectedTables {
            let states = MigrationStateMachine.supportedStates(for: features)
            for from in states {
                var direct = 0
                for to in states {
                    if (try? MigrationStateMachine.path(from: from, to: to, features: features)) != nil {
                        direct += 1
                        continue
                    }
                    // Only STOP_COPY -> PRE_COPY(_P2P) is refused; it takes two requests.
                    #expect(from == .stopCopy && (to == .preCopy || to == .preCopyP2P), "\(from) -> \(to) with \(features)")
                    let via = states.first { middle in
                        (try? MigrationStateMachine.path(from: from, to: middle, features: features)) != nil
                            && (try? MigrationStateMachine.path(from: middle, to: to, features: features)) != nil
                    }
                    #expect(via != nil, "\(from) -> \(to) with \(features) by two requests")
                }
                #expect(direct >= states.count - 2, "\(from) with \(features)")
            }
            for to in MigrationState.allCases {
                #expect(throws: VFIOError.self) { try MigrationStateMachine.nextState(from: .error, to: to, features: features) }
            }
        }
    }

    @Test func messagesNameTheCause() {
        func message(_ from: MigrationState, _ to: MigrationState, _ features: MigrationFeatures) -> String {
            do {
                let next = try MigrationStateMachine.nextState(from: from, to: to, features: features)
                return "no error: \(next)"
            } catch {
                return invalidArgumentText(error) ?? "wrong error: \(error)"
            }
        }
        #expect(message(.running, .preCopy, stopCopyOnly) == "target PRE_COPY needs the PRE_COPY feature")
        #expect(message(.running, .runningP2P, withPreCopy) == "target RUNNING_P2P needs the P2P feature")
        #expect(message(.running, .preCopyP2P, stopCopyOnly) == "target PRE_COPY_P2P needs the P2P and PRE_COPY features")
        #expect(message(.running, .preCopyP2P, withP2P) == "target PRE_COPY_P2P needs the PRE_COPY feature")
        #expect(message(.stop, .error, withBoth) == "ERROR cannot be a target; only a device reset leaves ERROR")
        #expect(message(.runningP2P, .stop, stopCopyOnly) == "the current state RUNNING_P2P is not supported by a device without P2P")
        #expect(message(.preCopyP2P, .stop, withPreCopy) == "the current state PRE_COPY_P2P is not supported by a device without P2P")
        #expect(message(.error, .running, withBoth).hasPrefix("the current state ERROR has no way out but a device reset"))
        #expect(message(.stopCopy, .preCopy, withBoth).hasPrefix("STOP_COPY -> PRE_COPY is not permitted"))
        #expect(message(.stopCopy, .preCopyP2P, withBoth).hasPrefix("STOP_COPY -> PRE_COPY_P2P is not permitted"))
        // The current state is checked before the target, as in the kernel.
        #expect(message(.error, .error, withBoth).hasPrefix("the current state ERROR"))
        #expect(message(.runningP2P, .preCopy, stopCopyOnly).hasPrefix("the current state RUNNING_P2P"))
    }

    @Test func featuresWithoutStopCopyRefuseEverything() {
        for features: MigrationFeatures in [[], [.p2p], [.preCopy], [.p2p, .preCopy], MigrationFeatures(rawValue: 1 << 9)] {
            #expect(MigrationStateMachine.arcs(for: features).isEmpty)
            #expect(MigrationStateMachine.supportedStates(for: features).isEmpty)
            do {
                try MigrationStateMachine.validate(features)
                Issue.record("\(features) accepted")
            } catch {
                #expect(invalidArgumentText(error)?.hasPrefix("features must include STOP_COPY") == true, "\(error)")
            }
            for from in MigrationState.allCases {
                for to in MigrationState.allCases {
                    do {
                        _ = try MigrationStateMachine.path(from: from, to: to, features: features)
                        Issue.record("\(from) -> \(to) with \(features) accepted")
                    } catch {
                        #expect(invalidArgumentText(error)?.hasPrefix("features must include STOP_COPY") == true, "\(error)")
                    }
                }
            }
        }
        for features in MigrationFeatures.validCombinations {
            #expect(throws: Never.self) { try MigrationStateMachine.validate(features) }
        }
    }

    @Test func unknownFeatureBitsAreIgnored() throws {
        let extra = MigrationFeatures(rawValue: 1 << 3 | 1 << 40)
        for (features, _) in expectedTables {
            #expect(MigrationStateMachine.arcs(for: features.union(extra)) == MigrationStateMachine.arcs(for: features))
            for from in MigrationState.allCases {
                for to in MigrationState.allCases {
                    let plain = try? MigrationStateMachine.path(from: from, to: to, features: features)
                    let widened = try? MigrationStateMachine.path(from: from, to: to, features: features.union(extra))
                    #expect(plain == widened, "\(from) -> \(to) with \(features)")
                }
            }
        }
    }

    @Test func rawStateNumbersOutsideTheEnumAreRefused() {
        for (from, to, fragment) in [
            (UInt32(8), UInt32(1), "the current state 8 is not a migration state"),
            (UInt32(1), UInt32(8), "target state 8 is not a migration state"),
            (UInt32(0xFFFF_FFFF), UInt32(2), "the current state 4294967295 is not a migration state"),
        ] {
            do {
                _ = try MigrationStateMachine.nextState(fromRawValue: from, toRawValue: to, features: withBoth)
                Issue.record("\(from) -> \(to) accepted")
            } catch {
                #expect(invalidArgumentText(error)?.hasPrefix(fragment) == true, "\(error)")
            }
        }
        #expect((try? MigrationStateMachine.nextState(fromRawValue: 2, toRawValue: 6, features: withBoth)) == .preCopy)
    }

    @Test func dataSessionsOpenAndCloseOnTheDocumentedArcs() {
        let opening: Set<String> = ["RUNNING>PRE_COPY", "RUNNING_P2P>PRE_COPY_P2P", "STOP>STOP_COPY", "STOP>RESUMING"]
        let closing: Set<String> = ["STOP_COPY>STOP", "RESUMING>STOP", "PRE_COPY>RUNNING", "PRE_COPY_P2P>RUNNING_P2P"]
        var all = Set<MigrationArc>()
        for (features, _) in expectedTables { all.formUnion(MigrationStateMachine.arcs(for: features)) }
        for arc in all {
            let name = "\(arc.from)>\(arc.to)"
            #expect(arc.opensDataSession == opening.contains(name), "\(arc)")
            #expect(arc.closesDataSession == closing.contains(name), "\(arc)")
        }
        #expect(MigrationArc(from: .preCopy, to: .stopCopy).opensDataSession == false)
        #expect(MigrationArc(from: .preCopy, to: .stopCopy).closesDataSession == false)
        #expect(MigrationArc(from: .stop, to: .stopCopy).description == "STOP -> STOP_COPY")
    }
}
