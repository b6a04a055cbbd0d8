import VFIO
import VFIODeviceKit
import VFIOUserClient
import VFIOUserServer

extension VFIOUserClient {
    /// A client of `model` served in this process over a real socket pair; the server
    /// thread ends when the client is closed or released.
    package static func serving(_ model: any DeviceModel, name: String,
                        serverConfiguration: VFIOUserServer.Configuration = .init(),
                        clientConfiguration: Configuration = .init()) throws(VFIOError) -> VFIOUserClient {
        let (server, end) = try VFIOUserServer.servingInProcess(model, configuration: serverConfiguration)
        return try VFIOUserClient(socket: end, name: name, configuration: clientConfiguration, afterClose: server.wait)
    }
}
