#if canImport(Glibc)
import Glibc
#endif
import VFIO
import VFIOHost

/// The display part of `vfio info` for a kernel device (`VFIO_DEVICE_QUERY_GFX_PLANE`):
/// for each way of exposing planes (region, dma-buf), whether the device offers it and,
/// where it does, the primary plane as the guest has set it up.
struct GFXReport {
    struct Kind {
        var name: String
        /// The probe's answer: offered or not, or the error (`ENOTTY`: no display at all).
        var offered: Result<Bool, VFIOError>
        /// The primary plane, when offered.
        var primary: Result<GFXPlaneInfo, VFIOError>?
    }

    var kinds: [Kind] = []

    init(device: HostDevice) {
        for (name, kind) in [("region", GFXPlaneFlags.region), ("dmabuf", GFXPlaneFlags.dmabuf)] {
            let offered = Result { () throws(VFIOError) in try device.offersGFXPlanes(as: kind) }
            var primary: Result<GFXPlaneInfo, VFIOError>?
            if case .success(true) = offered {
                primary = Result { () throws(VFIOError) in try device.gfxPlane(as: kind) }
            }
            kinds.append(Kind(name: name, offered: offered, primary: primary))
        }
    }

    /// A DRM fourcc as its four characters and its number, e.g. `XR24 (0x34325258)`.
    static func fourcc(_ code: UInt32) -> String {
        let chars = (0..<4).map { Character(Unicode.Scalar(UInt8(truncatingIfNeeded: code >> (8 * $0)))) }
        let printable = chars.allSatisfy { $0.isASCII && !$0.isWhitespace && $0.asciiValue! >= 0x21 && $0.asciiValue! < 0x7f }
        return printable ? "\(String(chars)) (\(hex(code)))" : hex(code)
    }

    static func describe(_ plane: GFXPlaneInfo) -> String {
        if plane.isDisabled { return "disabled" }
        var text = "\(fourcc(plane.drmFormat)) \(plane.width)x\(plane.height) stride \(plane.stride) size \(hex(plane.size))"
        if plane.drmFormatModifier != 0 { text += " modifier \(hex(plane.drmFormatModifier))" }
        if plane.xPos != 0 || plane.yPos != 0 { text += " at \(plane.xPos),\(plane.yPos)" }
        if let region = plane.regionIndex { text += ", region \(region)" }
        if let id = plane.dmabufID { text += ", dmabuf id \(id)" }
        return text
    }

    func lines() -> [String] {
        if kinds.allSatisfy({ if case .failure(let error) = $0.offered { return error.errnoValue == ENOTTY } else { return false } }),
           case .failure(let error) = kinds[0].offered {
            return ["  GFX planes: none (\(DeviceReport.errorText(error)))"]
        }
        var out = ["  GFX planes:"]
        for kind in kinds {
            switch kind.offered {
            case .failure(let error): out.append("    \(kind.name): \(DeviceReport.errorText(error))")
            case .success(false): out.append("    \(kind.name): not offered")
            case .success(true):
                switch kind.primary {
                case .success(let plane)?: out.append("    \(kind.name): primary \(GFXReport.describe(plane))")
                case .failure(let error)?: out.append("    \(kind.name): primary: \(DeviceReport.errorText(error))")
                case nil: out.append("    \(kind.name): offered")
                }
            }
        }
        return out
    }

    func json() -> JSON {
        .array(kinds.map { kind in
            var item: [(String, JSON)] = [("kind", .string(kind.name))]
            switch kind.offered {
            case .failure(let error): item.append(("offered", DeviceReport.json(error)))
            case .success(let offered): item.append(("offered", .bool(offered)))
            }
            switch kind.primary {
            case .success(let plane)?:
                var fields: [(String, JSON)] = [
                    ("drm_format", .unsigned(UInt64(plane.drmFormat))),
                    ("drm_format_mod", .unsigned(plane.drmFormatModifier)),
                    ("width", .unsigned(UInt64(plane.width))), ("height", .unsigned(UInt64(plane.height))),
                    ("stride", .unsigned(UInt64(plane.stride))), ("size", .unsigned(UInt64(plane.size))),
                    ("x_pos", .unsigned(UInt64(plane.xPos))), ("y_pos", .unsigned(UInt64(plane.yPos))),
                ]
                if let region = plane.regionIndex { fields.append(("region_index", .unsigned(UInt64(region)))) }
                if let id = plane.dmabufID { fields.append(("dmabuf_id", .unsigned(UInt64(id)))) }
                item.append(("primary", .object(fields)))
            case .failure(let error)?: item.append(("primary", DeviceReport.json(error)))
            case nil: break
            }
            return .object(item)
        })
    }
}
