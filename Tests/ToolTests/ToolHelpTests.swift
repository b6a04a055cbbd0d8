import Glibc
import Testing
import TestSupport

/// Every command that takes a DEVICE names, in its help, every kind of device name the
/// tool accepts.
@Suite struct ToolHelpTests {
    static let deviceCommands = ["info", "check", "migrate", "save", "restore", "nvme identify", "nvme bench"]

    @Test(arguments: deviceCommands)
    func helpNamesEveryKindOfDevice(_ command: String) throws {
        guard let tool = builtToolPath() else {
            print("ToolHelpTests: no built vfio next to the tests; skipped")
            return
        }
        let process = try ToolProcess(tool: tool, command.split(separator: " ").map(String.init) + ["--help"])
        let ending = process.waitForExit(timeout: .seconds(30))
        #expect(ending == .exited(0), "\(ending): \(process.log)")
        // ArgumentParser wraps long lines; compare with the line breaks and indents gone.
        let help = process.log.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for kind in ["PCI address", "/dev/vfio", "mdev:UUID", "unix:PATH", "model:NAME"] {
            #expect(help.contains(kind), "`vfio \(command) --help` does not mention \(kind):\n\(process.log)")
        }
    }
}
