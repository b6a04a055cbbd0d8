import ArgumentParser
import NVMeController
import VFIO
import VFIODeviceKit
import VFIOUserClient
import VFIOUserServer
import VFIOUserWire

/// The device models built into the tool, by the name `model:NAME` and `vfio serve` take.
enum BuiltinModel: String, CaseIterable, ExpressibleByArgument {
    /// QEMU's educational device, 1234:11e8 (`EduDevice`).
    case edu
    /// The kit's memory-backed device with an mmap-able BAR and MSI-X (`MemoryBackedDevice`).
    case memory
    /// An NVMe controller with one 64 MiB RAM namespace (`NVMeDevice`); `vfio serve nvme`
    /// takes `--backing` for file or block device namespaces.
    case nvme

    func make() throws -> any DeviceModel {
        switch self {
        case .edu: return EduDevice()
        case .memory: return MemoryBackedDevice()
        case .nvme: return try NVMeDevice()
        }
    }

    static func named(_ name: String) throws -> BuiltinModel {
        guard let model = BuiltinModel(rawValue: name) else {
            throw ValidationError("no built-in model '\(name)'; the models are: \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return model
    }
}

/// Opens the vfio-user kinds of device name: `unix:PATH` connects to a server;
/// `model:NAME` serves a built-in model in this process on a socket pair and connects to it.
func openUserDevice(_ name: DeviceName) throws -> any VFIODevice {
    switch name {
    case .unixSocket(let path):
        return try VFIOUserClient(path: path, name: name.description)
    case .model(let model):
        let (server, end) = try VFIOUserServer.servingInProcess(try BuiltinModel.named(model).make())
        return try VFIOUserClient(socket: end, name: name.description, afterClose: server.wait)
    case .pci, .devicePath, .mdev:
        throw ValidationError("'\(name)' is not a vfio-user device name")
    }
}
