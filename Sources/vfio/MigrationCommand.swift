import ArgumentParser
import VFIO

/// `vfio migration`: the VFIO migration v2 state machine, as the kernel walks it.
struct MigrationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migration",
        abstract: "Explore the VFIO migration v2 state machine.",
        subcommands: [PathCommand.self, ArcsCommand.self]
    )

    /// The `--features` option shared by the subcommands.
    struct FeatureOptions: ParsableArguments {
        @Option(
            name: .long,
            help: "Optional migration features the device offers besides STOP_COPY: p2p, pre-copy (comma-separated).",
            transform: FeatureOptions.parse
        )
        var features: MigrationFeatures = [.stopCopy]

        static func parse(_ text: String) throws -> MigrationFeatures {
            var result: MigrationFeatures = [.stopCopy]
            for word in text.split(separator: ",") {
                switch word.lowercased().replacing("_", with: "-") {
                case "p2p": result.insert(.p2p)
                case "pre-copy", "precopy": result.insert(.preCopy)
                case "stop-copy", "stopcopy": break
                default: throw ValidationError("unknown migration feature '\(word)': use p2p, pre-copy")
                }
            }
            return result
        }
    }

    struct PathCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "path",
            abstract: "Print the arcs a device takes from one migration state to another.",
            discussion: """
                The same sequence the kernel's vfio_mig_get_next_state() gives a driver, one arc \
                at a time. States: STOP, RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, \
                PRE_COPY_P2P (case-insensitive, - or _).
                """
        )

        @Argument(help: "The current state.", transform: parseState)
        var from: MigrationState

        @Argument(help: "The requested state.", transform: parseState)
        var to: MigrationState

        @OptionGroup var options: FeatureOptions

        func run() throws {
            let arcs = try MigrationStateMachine.path(from: from, to: to, features: options.features)
            print("features: \(options.features)")
            if arcs.isEmpty {
                print("\(from) is already the requested state: no arc")
                return
            }
            for (step, arc) in arcs.enumerated() {
                print("\(step + 1). \(arc.from) -> \(arc.to)")
            }
        }
    }

    struct ArcsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "arcs",
            abstract: "List the arcs a driver must implement for a set of features."
        )

        @OptionGroup var options: FeatureOptions

        func run() {
            print("features: \(options.features)")
            for arc in MigrationStateMachine.arcs(for: options.features) {
                print("\(arc.from) -> \(arc.to)")
            }
        }
    }
}

/// Parses a migration state name for an argument.
func parseState(_ text: String) throws -> MigrationState {
    guard let state = MigrationState(name: text) else {
        let names = MigrationState.allCases.map(\.description).joined(separator: ", ")
        throw ValidationError("unknown migration state '\(text)': use one of \(names)")
    }
    return state
}
