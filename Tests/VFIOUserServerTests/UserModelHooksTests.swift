import Glibc
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

/// The model hooks for sessions, the model's own device features and the REQ IRQ,
/// through a client on a real socket.
@Suite struct UserModelHooksTests {
    @Test func sessionsOpenAndCloseAfterTheClientsResourcesWent() throws {
        let model = try HooksModel()
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        #expect(model.log == ["opened"])
        let trigger = try EventFD()
        try client.setIRQs(.enableEventfds(index: PCIIRQIndex.intx.rawValue, [trigger.fd]))
        client.close()
        #expect(try model.waitFor { $0.contains("closed") })
        #expect(model.log == ["opened", "irqs 0 1", "irqs 0 0", "closed"])
        let second = try fixture.connect()
        #expect(model.log.last == "opened")
        second.close()
        #expect(try model.waitFor { $0.filter { $0 == "closed" }.count == 2 })
    }

    @Test func theModelsOwnFeaturesAreProbedGotAndSet() throws {
        let model = try HooksModel()
        let fixture = try UserServerFixture(model: model)
        let client = try fixture.connect()
        _ = try client.feature(.probe(feature: 0x100, get: true, set: true))
        _ = try client.feature(.probe(feature: 0x101, get: true))
        #expect(try client.feature(.get(.unknown(feature: 0x100, data: [UInt8](repeating: 0, count: 8))))
                == .unknown(feature: 0x100, data: [1, 2, 3, 4, 5, 6, 7, 8]))
        _ = try client.feature(.set(.unknown(feature: 0x100, data: [9, 9, 9, 9, 9, 9, 9, 9])))
        #expect(model.log.contains("set 0x100 [9, 9, 9, 9, 9, 9, 9, 9]"))
        #expect(try client.feature(.get(.unknown(feature: 0x100, data: [UInt8](repeating: 0, count: 8))))
                == .unknown(feature: 0x100, data: [9, 9, 9, 9, 9, 9, 9, 9]))
        // The kernel's vfio_check_feature() rules: an operation not offered, a room or data
        // below the payload size (EINVAL); a feature nobody offers (ENOTTY).
        expectErrno(EINVAL) { _ = try client.feature(.set(.unknown(feature: 0x101, data: [0, 0, 0, 0]))) }
        expectErrno(EINVAL) { _ = try client.feature(.probe(feature: 0x101, set: true)) }
        expectErrno(EINVAL) { _ = try client.feature(.get(.unknown(feature: 0x100, data: [0, 0, 0, 0]))) }
        expectErrno(EINVAL) { _ = try client.feature(.set(.unknown(feature: 0x100, data: [1, 2]))) }
        expectErrno(ENOTTY) { _ = try client.feature(.get(.unknown(feature: 0x102, data: [0, 0, 0, 0]))) }
        // A model that answers with more than the room: E2BIG, not a longer reply.
        model.state.withLock { $0.oversizedGet = true }
        expectErrno(E2BIG) { _ = try client.feature(.get(.unknown(feature: 0x101, data: [0, 0, 0, 0]))) }
        // The kit's own features stay the kit's: DMA logging still answers.
        _ = try client.feature(.probe(.dmaLoggingStart, set: true))
    }

    @Test func modelsCannotDeclareTheKitsFeaturesOrOneTwice() throws {
        for features in [[ModelFeature(id: DeviceFeatureID.migrationDeviceState.rawValue, operations: .get, payloadSize: 8)],
                         [ModelFeature(id: 0x100, operations: .get, payloadSize: 0), ModelFeature(id: 0x100, operations: .set, payloadSize: 0)],
                         [ModelFeature(id: 0x1_0000, operations: .get, payloadSize: 0)],
                         [ModelFeature(id: 0x100, operations: .probe, payloadSize: 0)]] {
            #expect(throws: VFIOError.self) { _ = try VFIOUserServer(model: try HooksModel(features: features)) }
        }
    }

    @Test func requestReleaseSignalsTheClientsREQEventfd() throws {
        let model = try HooksModel()
        let fixture = try UserServerFixture(model: model)
        let context = try #require(model.context)
        #expect(!fixture.server.requestRelease())   // no client
        let client = try fixture.connect()
        #expect(!context.requestRelease())           // no REQ eventfd set
        let req = try EventFD()
        try client.setIRQs(.enableEventfds(index: PCIIRQIndex.req.rawValue, [req.fd]))
        #expect(context.requestRelease())            // the model asks, through the kit's context
        #expect(try waitSignalled(req) == 1)
        #expect(fixture.server.requestRelease())     // the host asks
        #expect(try waitSignalled(req) == 1)
        try client.setIRQs(.disable(index: PCIIRQIndex.req.rawValue))
        #expect(!context.requestRelease())
    }
}
