import ArgumentParser

/// The `vfio` command-line tool.
@main
struct VFIOTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vfio",
        abstract: "Inspect and drive Linux VFIO devices and their uAPI.",
        subcommands: [IoctlCommand.self, MigrationCommand.self, CheckCommand.self]
    )
}
