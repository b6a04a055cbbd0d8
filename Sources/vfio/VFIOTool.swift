import ArgumentParser

/// The `vfio` command-line tool.
@main
struct VFIOTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vfio",
        abstract: "Inspect and drive Linux VFIO devices and their uAPI.",
        subcommands: [
            ListCommand.self, InfoCommand.self, CheckCommand.self, ServeCommand.self, BindCommand.self,
            UnbindCommand.self, IoctlCommand.self, MigrationCommand.self, MigrateCommand.self,
            SaveCommand.self, RestoreCommand.self, NVMeCommand.self,
        ]
    )
}
