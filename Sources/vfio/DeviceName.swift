import ArgumentParser
import VFIOHost

/// How the tool names a device, wherever it takes one.
enum DeviceName: Equatable, CustomStringConvertible {
    /// A PCI address, `0000:00:04.0` (a missing domain means 0000).
    case pci(String)
    /// A path under /dev/vfio: a group (`/dev/vfio/12`) or a device cdev (`/dev/vfio/devices/vfio0`).
    case devicePath(String)
    /// A mediated device by UUID, `mdev:UUID` (e.g. the kernel's `mtty` sample), opened
    /// as a /dev/vfio path would be: its group or its cdev.
    case mdev(String)
    /// A vfio-user server's socket, `unix:PATH`.
    case unixSocket(String)
    /// A built-in device model served in-process over a real socket pair, `model:NAME`.
    case model(String)

    /// A DEVICE argument's help, the same in every command that takes one.
    static let help = "The device: a PCI address, a /dev/vfio path, mdev:UUID, unix:PATH or model:NAME."

    /// What each kind of name means, for the discussion of every command that takes a DEVICE.
    static let discussion = """
        DEVICE is a PCI address bound to vfio-pci (0000:01:00.0); a path under /dev/vfio \
        (a group, /dev/vfio/12, or a device cdev, /dev/vfio/devices/vfio0); mdev:UUID, a \
        mediated device (the kernel's mtty); unix:PATH, the socket of a vfio-user server \
        (`vfio serve`, a libvfio-user server); or model:NAME, a built-in model served in this \
        process (\(BuiltinModel.allCases.map(\.rawValue).joined(separator: ", "))).
        """

    init(parsing text: String) throws {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw ValidationError("'unix:' needs a socket path, as in unix:/tmp/edu.sock") }
            self = .unixSocket(path)
        } else if text.hasPrefix("model:") {
            let name = String(text.dropFirst(6))
            guard !name.isEmpty else { throw ValidationError("'model:' needs a model name, as in model:edu") }
            self = .model(name)
        } else if text.hasPrefix("mdev:") {
            let uuid = String(text.dropFirst(5)).lowercased()
            guard MdevDeviceRecord.isUUID(uuid) else {
                throw ValidationError("'mdev:' needs a device UUID, as in mdev:83b8f4f2-509f-382f-3c1e-e6bfe0fa1001")
            }
            self = .mdev(uuid)
        } else if text.hasPrefix("/dev/vfio/") {
            self = .devicePath(text)
        } else if let address = DeviceName.normalizedPCIAddress(text) {
            self = .pci(address)
        } else {
            throw ValidationError("'\(text)' is not a device name: use a PCI address (0000:00:04.0), a /dev/vfio path, mdev:UUID, unix:PATH or model:NAME")
        }
    }

    /// `DDDD:BB:DD.F` with lowercase hex, or nil when `text` is not a PCI address.
    static func normalizedPCIAddress(_ text: String) -> String? {
        let parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false)
        let (domain, bus, slotFunction): (Substring, Substring, Substring)
        switch parts.count {
        case 2: (domain, bus, slotFunction) = ("0000", parts[0], parts[1])
        case 3: (domain, bus, slotFunction) = (parts[0], parts[1], parts[2])
        default: return nil
        }
        let sf = slotFunction.split(separator: ".", omittingEmptySubsequences: false)
        guard sf.count == 2,
              let d = UInt32(domain, radix: 16), domain.count <= 4,
              let b = UInt32(bus, radix: 16), bus.count <= 2,
              let s = UInt32(sf[0], radix: 16), s < 32, sf[0].count <= 2,
              let f = UInt32(sf[1], radix: 16), f < 8, sf[1].count == 1
        else { return nil }
        func hex(_ value: UInt32, _ width: Int) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(hex(d, 4)):\(hex(b, 2)):\(hex(s, 2)).\(f)"
    }

    var description: String {
        switch self {
        case .pci(let address): return address
        case .devicePath(let path): return path
        case .mdev(let uuid): return "mdev:\(uuid)"
        case .unixSocket(let path): return "unix:\(path)"
        case .model(let name): return "model:\(name)"
        }
    }
}
