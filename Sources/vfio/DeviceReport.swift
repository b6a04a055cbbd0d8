#if canImport(Glibc)
import Glibc
#endif
import VFIO

/// What `vfio info` shows about a device, gathered through the user-side `VFIODevice`
/// protocol only, so it reads the same for any transport (the kernel, vfio-user, a
/// built-in model). Each query that fails is recorded with its error instead of aborting.
struct DeviceReport {
    struct Region {
        var index: UInt32
        var name: String
        var info: Result<RegionInfo, VFIOError>
    }
    struct IRQ {
        var index: UInt32
        var name: String
        var info: Result<IRQInfo, VFIOError>
    }
    struct Feature {
        var id: DeviceFeatureID
        /// The operations probed (the feature's own: GET, SET or both) and the answer.
        var operations: DeviceFeatureFlags
        var probe: Result<Void, VFIOError>
        var supported: Bool { if case .success = probe { return true } else { return false } }
    }

    var name: String
    var info: Result<DeviceInfo, VFIOError>
    var regions: [Region] = []
    var irqs: [IRQ] = []
    var features: [Feature] = []
    /// The migration feature's GET, when the device has it.
    var migration: Result<MigrationFeatures, VFIOError>?
    var iovaRanges: Result<[IOVARange], VFIOError>
    var hotReset: Result<PCIHotResetInfo, VFIOError>

    init(device: any VFIODevice) {
        name = device.name
        info = Result { () throws(VFIOError) in try device.deviceInfo() }
        let isPCI = (try? info.get())?.flags.contains(.pci) ?? false
        if case .success(let info) = info {
            for index in 0..<info.numRegions {
                let name = isPCI ? (PCIRegionIndex(rawValue: index).map(DeviceReport.regionName) ?? "region \(index)") : "region \(index)"
                regions.append(Region(index: index, name: name, info: Result { () throws(VFIOError) in try device.regionInfo(index) }))
            }
            for index in 0..<info.numIRQs {
                let name = isPCI ? (PCIIRQIndex(rawValue: index).map(DeviceReport.irqName) ?? "irq \(index)") : "irq \(index)"
                irqs.append(IRQ(index: index, name: name, info: Result { () throws(VFIOError) in try device.irqInfo(index) }))
            }
        }
        for id in DeviceFeatureID.allCases {
            let ops = id.supportedOperations
            let probe = Result { () throws(VFIOError) in
                _ = try device.feature(.probe(id, get: ops.contains(.get), set: ops.contains(.set)))
            }
            features.append(Feature(id: id, operations: ops, probe: probe))
        }
        if features.first(where: { $0.id == .migration })?.supported == true {
            migration = Result { () throws(VFIOError) in
                guard case .migration(let value)? = try device.feature(.get(.migration(MigrationFeatureInfo()))) else {
                    throw .malformed("VFIO_DEVICE_FEATURE_MIGRATION", "the reply carries no migration flags")
                }
                return value.features
            }
        }
        iovaRanges = Result { () throws(VFIOError) in try device.validIOVARanges() }
        hotReset = Result { () throws(VFIOError) in try device.hotResetInfo() }
    }

    static func regionName(_ index: PCIRegionIndex) -> String {
        switch index {
        case .rom: return "ROM"
        case .config: return "CONFIG"
        case .vga: return "VGA"
        default: return "BAR\(index.rawValue)"
        }
    }

    static func irqName(_ index: PCIIRQIndex) -> String {
        switch index {
        case .intx: return "INTx"
        case .msi: return "MSI"
        case .msix: return "MSI-X"
        case .err: return "ERR"
        case .req: return "REQ"
        }
    }

    // MARK: Names of flags

    static func names(_ flags: DeviceInfoFlags) -> [String] {
        let table: [(DeviceInfoFlags, String)] = [
            (.reset, "RESET"), (.pci, "PCI"), (.platform, "PLATFORM"), (.amba, "AMBA"), (.ccw, "CCW"),
            (.ap, "AP"), (.fslMC, "FSL_MC"), (.caps, "CAPS"), (.cdx, "CDX"),
        ]
        return table.filter { flags.contains($0.0) }.map(\.1)
    }

    static func names(_ flags: RegionInfoFlags) -> [String] {
        let table: [(RegionInfoFlags, String)] = [(.read, "READ"), (.write, "WRITE"), (.mmap, "MMAP"), (.caps, "CAPS")]
        return table.filter { flags.contains($0.0) }.map(\.1)
    }

    static func names(_ flags: IRQInfoFlags) -> [String] {
        let table: [(IRQInfoFlags, String)] = [(.eventfd, "EVENTFD"), (.maskable, "MASKABLE"), (.automasked, "AUTOMASKED"), (.noResize, "NORESIZE")]
        return table.filter { flags.contains($0.0) }.map(\.1)
    }

    static func names(_ ops: DeviceFeatureFlags) -> [String] {
        var result: [String] = []
        if ops.contains(.get) { result.append("GET") }
        if ops.contains(.set) { result.append("SET") }
        return result
    }

    static func names(_ features: MigrationFeatures) -> [String] {
        var result: [String] = []
        if features.contains(.stopCopy) { result.append("STOP_COPY") }
        if features.contains(.p2p) { result.append("P2P") }
        if features.contains(.preCopy) { result.append("PRE_COPY") }
        return result
    }

    static func describe(_ capability: RegionInfoCapability) -> String {
        switch capability {
        case .sparseMmap(let areas):
            return "sparse mmap: " + (areas.isEmpty ? "no areas" : areas.map { "[\(hex($0.offset)), +\(hex($0.size))]" }.joined(separator: " "))
        case .type(let type): return "type: \(type)"
        case .msixMappable: return "MSI-X table mappable"
        case .nvlink2SSATarget(let target): return "NVLink2 SSA target \(hex(target))"
        case .nvlink2LinkSpeed(let speed): return "NVLink2 link speed \(speed)"
        case .unknown(let raw): return "capability id \(raw.id) version \(raw.version) (\(raw.body.count) bytes)"
        }
    }

    static func errorText(_ error: VFIOError) -> String {
        if let code = error.errnoValue { return "\(VFIOError.errnoName(code)) from \(error.operation)" }
        return error.description
    }

    // MARK: Text

    /// Like `lspci -vv`: one section per part of the device.
    func text() -> String {
        var out: [String] = ["\(name):"]
        switch info {
        case .failure(let error):
            out.append("  device info: \(error)")
            return out.joined(separator: "\n")
        case .success(let info):
            out.append("  Flags: " + DeviceReport.names(info.flags).joined(separator: " "))
            out.append("  Regions: \(info.numRegions), IRQs: \(info.numIRQs)")
            for capability in info.capabilities { out.append("  Capability: \(capability)") }
        }
        out.append("  Regions:")
        for region in regions {
            switch region.info {
            case .failure(let error) where error.errnoValue == EINVAL:
                out.append("    \(region.index) \(region.name): not present (\(DeviceReport.errorText(error)))")
            case .failure(let error):
                out.append("    \(region.index) \(region.name): \(DeviceReport.errorText(error))")
            case .success(let info):
                if info.size == 0 && info.flags.subtracting(.caps).isEmpty {
                    out.append("    \(region.index) \(region.name): not present")
                    continue
                }
                out.append("    \(region.index) \(region.name): size \(hex(info.size)) (\(DeviceReport.sizeText(info.size))) offset \(hex(info.offset)) [" + DeviceReport.names(info.flags).joined(separator: " ") + "]")
                for capability in info.capabilities { out.append("        " + DeviceReport.describe(capability)) }
            }
        }
        out.append("  IRQs:")
        for irq in irqs {
            switch irq.info {
            case .failure(let error) where error.errnoValue == EINVAL:
                out.append("    \(irq.index) \(irq.name): not present (\(DeviceReport.errorText(error)))")
            case .failure(let error): out.append("    \(irq.index) \(irq.name): \(DeviceReport.errorText(error))")
            case .success(let info):
                out.append("    \(irq.index) \(irq.name): count \(info.count) [" + DeviceReport.names(info.flags).joined(separator: " ") + "]")
            }
        }
        out.append("  Features:")
        for feature in features {
            let ops = DeviceReport.names(feature.operations).joined(separator: "+")
            switch feature.probe {
            case .success: out.append("    \(feature.id): supported (\(ops))")
            case .failure(let error): out.append("    \(feature.id): no (\(DeviceReport.errorText(error)))")
            }
        }
        switch migration {
        case nil: out.append("  Migration: not supported")
        case .success(let flags)?: out.append("  Migration: " + DeviceReport.names(flags).joined(separator: " "))
        case .failure(let error)?: out.append("  Migration: \(DeviceReport.errorText(error))")
        }
        switch iovaRanges {
        case .success(let ranges): out.append("  IOVA ranges: " + ranges.map(\.description).joined(separator: " "))
        case .failure(let error): out.append("  IOVA ranges: \(DeviceReport.errorText(error))")
        }
        switch hotReset {
        case .success(let reset):
            let ids = reset.flags.contains(.devID) ? "devid" : "group"
            out.append("  Hot reset affects: " + reset.devices.map { "\($0.address) (\(ids) \($0.rawID))" }.joined(separator: ", "))
        case .failure(let error):
            if case .unsupported = error.reason { out.append("  Hot reset: not supported") } else { out.append("  Hot reset: \(DeviceReport.errorText(error))") }
        }
        return out.joined(separator: "\n")
    }

    static func sizeText(_ size: UInt64) -> String {
        if size >= 1 << 30 && size % (1 << 30) == 0 { return "\(size >> 30) GiB" }
        if size >= 1 << 20 && size % (1 << 20) == 0 { return "\(size >> 20) MiB" }
        if size >= 1 << 10 && size % (1 << 10) == 0 { return "\(size >> 10) KiB" }
        return "\(size) bytes"
    }

    // MARK: JSON

    static func json(_ error: VFIOError) -> JSON {
        var fields: [(String, JSON)] = [("operation", .string(error.operation))]
        if let code = error.errnoValue {
            fields.append(("errno", .string(VFIOError.errnoName(code))))
        }
        fields.append(("message", .string(error.description)))
        return .object([("error", .object(fields))])
    }

    func json() -> JSON {
        var fields: [(String, JSON)] = [("name", .string(name))]
        switch info {
        case .failure(let error):
            fields.append(("info", DeviceReport.json(error)))
            return .object(fields)
        case .success(let info):
            fields.append(("flags", .array(DeviceReport.names(info.flags).map(JSON.string))))
            fields.append(("num_regions", .unsigned(UInt64(info.numRegions))))
            fields.append(("num_irqs", .unsigned(UInt64(info.numIRQs))))
        }
        fields.append(("regions", .array(regions.map { region in
            var item: [(String, JSON)] = [("index", .unsigned(UInt64(region.index))), ("name", .string(region.name))]
            switch region.info {
            case .failure(let error): item.append(("info", DeviceReport.json(error)))
            case .success(let info):
                item.append(("size", .unsigned(info.size)))
                item.append(("offset", .unsigned(info.offset)))
                item.append(("flags", .array(DeviceReport.names(info.flags).map(JSON.string))))
                var caps: [JSON] = []
                for capability in info.capabilities {
                    switch capability {
                    case .sparseMmap(let areas):
                        caps.append(.object([("sparse_mmap", .array(areas.map { .object([("offset", .unsigned($0.offset)), ("size", .unsigned($0.size))]) }))]))
                    case .type(let type):
                        caps.append(.object([("type", .object([("type", .unsigned(UInt64(type.type))), ("subtype", .unsigned(UInt64(type.subtype))), ("name", .string(type.description))]))]))
                    default:
                        caps.append(.object([("other", .string(DeviceReport.describe(capability)))]))
                    }
                }
                item.append(("capabilities", .array(caps)))
            }
            return .object(item)
        })))
        fields.append(("irqs", .array(irqs.map { irq in
            var item: [(String, JSON)] = [("index", .unsigned(UInt64(irq.index))), ("name", .string(irq.name))]
            switch irq.info {
            case .failure(let error): item.append(("info", DeviceReport.json(error)))
            case .success(let info):
                item.append(("count", .unsigned(UInt64(info.count))))
                item.append(("flags", .array(DeviceReport.names(info.flags).map(JSON.string))))
            }
            return .object(item)
        })))
        fields.append(("features", .array(features.map { feature in
            var item: [(String, JSON)] = [
                ("name", .string(feature.id.cName)),
                ("operations", .array(DeviceReport.names(feature.operations).map(JSON.string))),
                ("supported", .bool(feature.supported)),
            ]
            if case .failure(let error) = feature.probe, let code = error.errnoValue {
                item.append(("errno", .string(VFIOError.errnoName(code))))
            }
            return .object(item)
        })))
        switch migration {
        case nil: fields.append(("migration", .null))
        case .success(let flags)?: fields.append(("migration", .object([("flags", .array(DeviceReport.names(flags).map(JSON.string)))])))
        case .failure(let error)?: fields.append(("migration", DeviceReport.json(error)))
        }
        switch iovaRanges {
        case .success(let ranges):
            fields.append(("iova_ranges", .array(ranges.map { .object([("start", .unsigned($0.start)), ("last", .unsigned($0.last))]) })))
        case .failure(let error): fields.append(("iova_ranges", DeviceReport.json(error)))
        }
        switch hotReset {
        case .success(let reset):
            let key = reset.flags.contains(.devID) ? "devid" : "group"
            fields.append(("hot_reset", .array(reset.devices.map { .object([("address", .string($0.address)), (key, .unsigned(UInt64($0.rawID)))]) })))
        case .failure(let error): fields.append(("hot_reset", DeviceReport.json(error)))
        }
        return .object(fields)
    }
}
