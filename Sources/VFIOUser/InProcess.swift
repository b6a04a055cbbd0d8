import VFIO
import VFIODeviceKit

extension VFIOUserClient {
    /// Serves `model` in this process on one end of a real socket pair (a server thread)
    /// and returns a client connected to the other end. The server ends when the client is
    /// closed or released.
    public static func serving(_ model: any DeviceModel, name: String,
                               serverConfiguration: VFIOUserServer.Configuration = .init(),
                               clientConfiguration: Configuration = .init()) throws(VFIOError) -> VFIOUserClient {
        let (serverEnd, clientEnd) = try VFIOUserSocket.pair()
        let server: VFIOUserServer
        do {
            server = try VFIOUserServer(model: model, configuration: serverConfiguration)
        } catch {
            serverEnd.close()
            clientEnd.close()
            throw error
        }
        server.serve(connection: serverEnd)
        let client = try VFIOUserClient(socket: clientEnd, name: name, configuration: clientConfiguration)
        client.inProcessServer = server
        return client
    }
}
