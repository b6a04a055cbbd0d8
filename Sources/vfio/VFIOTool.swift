import ArgumentParser

/// The `vfio` command-line tool.
@main
struct VFIOTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vfio",
        abstract: "Inspect and drive Linux VFIO devices and their uAPI.",
        subcommands: [ListCommand.self, InfoCommand.self, BindCommand.self, UnbindCommand.self, IoctlCommand.self, MigrationCommand.self, ServeCommand.self]
    )
}
