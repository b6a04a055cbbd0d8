import ArgumentParser
import VFIO
import VFIOHost

/// Opens the device `name` names, through whichever transport serves that kind of name.
///
/// - `.pci`, `.devicePath` and `.mdev`: the kernel (`HostDevice`), through `access` (the
///   cdev and iommufd when the kernel offers them, by default).
/// - `.unixSocket` and `.model`: vfio-user (`VFIOUserClient`, see `openUserDevice`).
func openDevice(_ name: DeviceName, access: HostDevice.Access = .automatic) throws -> any VFIODevice {
    switch name {
    case .pci(let address):
        return try HostDevice.open(pciAddress: address, access: access)
    case .devicePath(let path):
        switch access {
        case .automatic:
            return try HostDevice.open(path: path)
        case .container where path.hasPrefix("/dev/vfio/devices/"), .iommufd where !path.hasPrefix("/dev/vfio/devices/"):
            throw ValidationError("--access \(access.rawValue) does not fit \(path): a group path opens through the container, a cdev path through iommufd")
        default:
            return try HostDevice.open(path: path)
        }
    case .mdev(let uuid):
        return try HostDevice.open(mdev: uuid, access: access)
    case .unixSocket, .model:
        return try openUserDevice(name)
    }
}

extension HostDevice.Access: ExpressibleByArgument {}
