import Glibc
import VFIO
import VFIODeviceKit
import VFIOUserWire
import VFIOSystem

// Migration and DMA dirty logging over vfio-user (QEMU's docs/interop/vfio-user.rst,
// "VFIO_USER_DEVICE_FEATURE", "VFIO_USER_MIG_DATA_READ/WRITE"), served from the
// server's `AttachedDevice`.
//
// | request | served by |
// |---|---|
// | DEVICE_FEATURE MIGRATION (GET, PROBE) | `device.migration.features`; ENOTTY when the model does not migrate |
// | DEVICE_FEATURE MIG_DEVICE_STATE (GET, SET) | `currentState` / `setState(_:)`; the reply carries the state reached, `data_fd` -1 |
// | DEVICE_FEATURE MIG_DATA_SIZE (GET) | `dataSize()` |
// | DEVICE_FEATURE DMA_LOGGING_START / STOP (SET) | `device.tracker` (ranges inline, none: all mapped memory; the reply has the page size chosen) |
// | DEVICE_FEATURE DMA_LOGGING_REPORT (GET) | `device.tracker.reportDirtyPages` (read-and-clear; bitmap inline at offset 24) |
// | MIG_DATA_READ | `readData(max:_:)`: up to `size` bytes, in place (ServerMigrationData.swift) |
// | MIG_DATA_WRITE | `writeData(count:_:)`: the data read from the socket into the stream (ServerMigrationData.swift) |
//
// Every feature request passes `DeviceFeatureCheck` (the kernel's `vfio_check_feature`)
// first: a probe is answered with the request itself. Other features are ENOTTY.
// DMA logging is offered for every model (all of a model's DMA goes through the kit's
// `TrackingContext`). The spec's `num_ranges` 0 ("all writes should be logged") logs all
// the memory the client has mapped, and what it maps while logging (`handleDMAMap` adds
// each new mapping to the log before DMA can reach it); the kernel has no such form.
extension VFIOUserServer {
    /// The reply of a GET: the header with `argsz` covering the data, then the data.
    private static func getReply(_ flags: DeviceFeatureFlags, _ data: [UInt8]) -> [UInt8] {
        var writer = ByteWriter()
        writer.u32(UInt32(DeviceFeatureHeader.fixedSize + data.count))
        writer.u32(flags.rawValue)
        writer.append(contentsOf: data)
        return writer.bytes
    }

    /// A feature the model declared (`DeviceModel.deviceFeatures`), past the kernel's
    /// checks: a probe is answered with the request, a GET with the model's data (at most
    /// the room argsz leaves, else `E2BIG` naming the model's fault), a SET with the request.
    private func handleModelFeature(_ feature: ModelFeature, _ header: DeviceFeatureHeader, _ payload: [UInt8], _ data: [UInt8],
                                    _ decision: DeviceFeatureCheck.Decision) throws(VFIOError) -> [UInt8] {
        switch decision {
        case .probeAnswered:
            return payload
        case .get:
            let room = Int(header.argsz) - DeviceFeatureHeader.fixedSize
            let answer = try model.getFeature(feature.id, room: room)
            guard answer.count <= room else {
                throw .errno("VFIO_USER_DEVICE_FEATURE GET \(feature.id): the model returned \(answer.count) bytes for a room of \(room)", E2BIG)
            }
            return Self.getReply(header.flags, answer)
        case .set:
            guard data.count >= feature.payloadSize else {
                throw .invalidArgument("VFIO_USER_DEVICE_FEATURE SET \(feature.id)", "\(data.count) byte(s) of data, \(feature.payloadSize) needed")
            }
            try model.setFeature(feature.id, data: data)
            return payload
        }
    }

    func handleFeature(_ payload: [UInt8], _ session: SessionState) throws(VFIOError) -> [UInt8] {
        let name = "VFIO_USER_DEVICE_FEATURE"
        var reader = ByteReader(payload, context: DeviceFeatureHeader.cName)
        let header = try DeviceFeatureHeader(from: &reader)
        let feature = header.flags.feature
        let data = Array(payload.dropFirst(DeviceFeatureHeader.fixedSize))
        func check(_ supported: DeviceFeatureFlags, _ minimum: Int) throws(VFIOError) -> DeviceFeatureCheck.Decision {
            // A vfio-user GET sends no data and states its reply room in argsz; the room is
            // what vfio_check_feature measures, as the kernel measures the user's buffer.
            try DeviceFeatureCheck.check(flags: header.flags, argsz: header.argsz, supported: supported, payloadMinimum: minimum)
        }
        if let offered = modelFeatures[feature] {
            return try handleModelFeature(offered, header, payload, data, check(offered.operations, offered.payloadSize))
        }
        guard let id = DeviceFeatureID(rawValue: feature) else {
            throw .errno("\(name): the device has no feature \(feature)", ENOTTY)
        }
        func migration() throws(VFIOError) -> MigrationDriver {
            guard let driver = device.migration else {
                throw .errno("\(name): \(id.cName): the device does not migrate", ENOTTY)
            }
            return driver
        }
        switch id {
        case .migration:
            let driver = try migration()
            switch try check(.get, MigrationFeatureInfo.fixedSize) {
            case .probeAnswered: return payload
            default: return Self.getReply(header.flags, MigrationFeatureInfo(features: driver.features).encoded())
            }
        case .migrationDeviceState:
            let driver = try migration()
            switch try check([.get, .set], MigrationStateFeature.fixedSize) {
            case .probeAnswered:
                return payload
            case .get:
                return Self.getReply(header.flags, MigrationStateFeature(deviceState: driver.currentState).encoded())
            case .set:
                let request = try MigrationStateFeature(decoding: data)
                do {
                    try driver.setState(request.deviceState)
                } catch {
                    // Only the errno crosses the socket: keep the kit's account of a failed
                    // arc here (a request the state machine refuses changes nothing).
                    let refused = error.operation.hasPrefix("vfio_mig_get_next_state")
                    logger.log(level: refused ? .debug : .warning,"migration state change refused", metadata: [
                        "from": "\(driver.currentState)", "to": "\(request.deviceState)", "error": "\(error)"])
                    throw error
                }
                var writer = ByteWriter()
                writer.u32(UInt32(DeviceFeatureHeader.fixedSize + MigrationStateFeature.fixedSize))
                writer.u32(header.flags.rawValue)
                MigrationStateFeature(deviceState: driver.currentState, dataFD: -1).encode(into: &writer)
                return writer.bytes
            }
        case .migrationDataSize:
            let driver = try migration()
            switch try check(.get, MigrationDataSize.fixedSize) {
            case .probeAnswered: return payload
            default: return Self.getReply(header.flags, MigrationDataSize(stopCopyLength: try driver.dataSize()).encoded())
            }
        case .dmaLoggingStart:
            switch try check(.set, VFIOUserDMALoggingControl.fixedSize) {
            case .probeAnswered:
                return payload
            default:
                let control = try VFIOUserDMALoggingControl(decoding: data)
                let chosen: UInt64
                if control.ranges.isEmpty {
                    // The mappings cannot change meanwhile: DMA_MAP is served on this thread.
                    let mapped = resources.withLock { $0.mappings.map(\.range) }
                    chosen = try device.tracker.startDMALoggingOfAllMappings(mapped, pageSize: control.pageSize)
                } else {
                    chosen = try device.tracker.startDMALogging(ranges: control.ranges, pageSize: control.pageSize)
                }
                var writer = ByteWriter()
                DeviceFeatureHeader(argsz: header.argsz, flags: header.flags).encode(into: &writer)
                VFIOUserDMALoggingControl(pageSize: chosen, ranges: control.ranges).encode(into: &writer)
                return writer.bytes
            }
        case .dmaLoggingStop:
            switch try check(.set, 0) {
            case .probeAnswered: return payload
            default:
                device.tracker.stopDMALogging()
                return payload
            }
        case .dmaLoggingReport:
            switch try check(.get, VFIOUserDMALoggingReport.fixedSize) {
            case .probeAnswered:
                return payload
            default:
                guard data.count >= VFIOUserDMALoggingReport.fixedSize else {
                    throw .invalidArgument(id.cName, "the request carries \(data.count) byte(s) of iova, length and page_size, 24 needed")
                }
                var request = try VFIOUserDMALoggingReport(decoding: Array(data.prefix(VFIOUserDMALoggingReport.fixedSize)))
                guard let words = DMALoggingReport.bitmapWordCount(length: request.length, pageSize: request.pageSize) else {
                    throw .invalidArgument(id.cName, "page size 0")
                }
                let limit = UInt64(min(configuration.capabilities.maxDataTransferSize,
                                       session.clientCapabilities.maxDataTransferSize))
                guard words <= limit / 8 else {
                    throw .errno("\(id.cName): a bitmap of \(words) word(s) is over max_data_xfer_size \(limit); report smaller ranges", E2BIG)
                }
                let room = Int(header.argsz) - DeviceFeatureHeader.fixedSize - VFIOUserDMALoggingReport.fixedSize
                guard room >= Int(words) * 8 else {
                    throw .invalidArgument(id.cName, "argsz \(header.argsz) leaves room for \(max(room, 0)) bitmap byte(s), \(words * 8) needed")
                }
                request.bitmap = try device.tracker.reportDirtyPages(iova: request.iova, length: request.length, pageSize: request.pageSize)
                return Self.getReply(header.flags, request.encoded())
            }
        case .pciVFToken, .lowPowerEntry, .lowPowerEntryWithWakeup, .lowPowerExit, .busMaster:
            throw .errno("\(name): the device has no feature \(id.cName)", ENOTTY)
        }
    }
}
