import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserWire

extension VFIOUserServer {
    /// Serves `model` in this process on one end of a real socket pair, on a server
    /// thread, and returns the server and the other end for a client:
    /// `VFIOUserClient(socket: end, name: …, afterClose: server.wait)`. The server ends when
    /// that end is closed.
    public static func servingInProcess(_ model: any DeviceModel, configuration: Configuration = .init()) throws(VFIOError)
        -> (server: VFIOUserServer, clientEnd: VFIOUserSocket)
    {
        let (serverEnd, clientEnd) = try VFIOUserSocket.pair()
        let server: VFIOUserServer
        do {
            server = try VFIOUserServer(model: model, configuration: configuration)
        } catch {
            serverEnd.close()
            clientEnd.close()
            throw error
        }
        server.serve(connection: serverEnd)
        return (server, clientEnd)
    }
}
