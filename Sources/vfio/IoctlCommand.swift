import ArgumentParser
import CVFIO
import VFIO

/// `vfio ioctl`: the VFIO and iommufd ioctl request numbers, as the system's C
/// preprocessor computes them, for reading `strace` output or writing a binding.
struct IoctlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ioctl",
        abstract: "List VFIO and iommufd ioctls, or look one up by name or request number.",
        discussion: """
            With no argument, lists every request. An argument that parses as a number \
            (0x3b6e, 15214) is looked up by request number, which may name several requests \
            made on different descriptors (a container, a group, a device, an iommufd); \
            anything else by name, case-insensitively, with or without the VFIO_ / IOMMU_ prefix.
            """
    )

    @Argument(help: "Names or request numbers to look up.")
    var queries: [String] = []

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let table = IoctlTable.entries
        var rows: [IoctlTable.Entry] = []
        if queries.isEmpty {
            rows = table
        } else {
            for query in queries {
                let found = IoctlTable.lookup(query)
                if found.isEmpty {
                    throw ValidationError("no VFIO or iommufd ioctl matches '\(query)'")
                }
                rows.append(contentsOf: found)
            }
        }
        if json {
            let items: [JSON] = rows.map {
                .object([
                    ("name", .string($0.name)), ("request", .unsigned(UInt64($0.request))),
                    ("hex", .string(hex($0.request))), ("object", .string($0.object)),
                    ("argument", .string($0.argument)),
                ])
            }
            print(JSON.array(items).rendered())
            return
        }
        let width = rows.map(\.name.count).max() ?? 0
        let objectWidth = rows.map(\.object.count).max() ?? 0
        for row in rows {
            let hex = "0x" + String(row.request, radix: 16)
            print(row.name.padding(width) + "  " + hex.padding(8) + "  " + row.object.padding(objectWidth) + "  " + row.argument)
        }
    }
}

/// The C shim's table of request numbers, with lookups.
enum IoctlTable {
    struct Entry {
        let name: String
        let request: UInt
        let argument: String
        /// The descriptor the request is made on: container, group, device, iommufd...
        let object: String
    }

    static let entries: [Entry] = (0..<Int(cvfio_ioctl_table_count)).map { index in
        let raw = cvfio_ioctl_table_entry(index).pointee
        return Entry(name: String(cString: raw.name), request: UInt(raw.request), argument: String(cString: raw.argument), object: String(cString: raw.object))
    }

    /// The entries for a request number (decimal or 0x-hex; several requests share a
    /// number on different descriptors) or for a name.
    static func lookup(_ query: String) -> [Entry] {
        let number: UInt? = query.lowercased().hasPrefix("0x")
            ? UInt(query.dropFirst(2), radix: 16) : UInt(query)
        if let number {
            return entries.filter { $0.request == number }
        }
        let key = query.uppercased()
        return entries.filter { $0.name == key || $0.name == "VFIO_" + key || $0.name == "IOMMU_" + key }
    }
}

extension String {
    /// Left-aligns the string in a column of `width` characters.
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
