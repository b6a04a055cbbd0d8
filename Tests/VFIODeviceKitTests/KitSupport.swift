import VFIO
import VFIODeviceKit

extension PCIConfigSpace {
    /// A little-endian read of `width` bytes at `offset` (test helper; traps on error).
    func get(_ offset: Int, _ width: Int) -> UInt64 {
        var bytes = [UInt8](repeating: 0, count: width)
        bytes.withUnsafeMutableBytes { raw in
            do throws(VFIOError) { try read(offset: UInt64(offset), into: raw) } catch { fatalError("\(error)") }
        }
        return bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// A little-endian write of `width` bytes at `offset`; returns the signals.
    @discardableResult
    mutating func set(_ offset: Int, _ width: Int, _ value: UInt64) -> [IRQSignal] {
        let bytes = (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
        var signals: [IRQSignal] = []
        bytes.withUnsafeBytes { raw in
            do throws(VFIOError) { signals = try write(offset: UInt64(offset), from: raw) } catch { fatalError("\(error)") }
        }
        return signals
    }

    /// Writes an MSI-X table/PBA location; returns the signals.
    @discardableResult
    mutating func setMSIX(bar: Int, _ offset: UInt64, _ width: Int, _ value: UInt64) -> [IRQSignal] {
        let bytes = (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
        var signals: [IRQSignal] = []
        bytes.withUnsafeBytes { raw in
            do throws(VFIOError) { signals = try writeMSIX(bar: bar, offset: offset, from: raw) } catch { fatalError("\(error)") }
        }
        return signals
    }

    func getMSIX(bar: Int, _ offset: UInt64, _ width: Int) -> UInt64 {
        var bytes = [UInt8](repeating: 0, count: width)
        bytes.withUnsafeMutableBytes { raw in
            do throws(VFIOError) { try readMSIX(bar: bar, offset: offset, into: raw) } catch { fatalError("\(error)") }
        }
        return bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }
}

let configIndex = PCIRegionIndex.config.rawValue
let bar0Index = PCIRegionIndex.bar0.rawValue
let intx = PCIIRQIndex.intx.rawValue
let msi = PCIIRQIndex.msi.rawValue
let msix = PCIIRQIndex.msix.rawValue

/// A model attached to a fresh in-memory context.
func attached<M: DeviceModel>(_ model: M) -> (M, InMemoryDeviceContext) {
    let context = InMemoryDeviceContext()
    context.provideMemory(for: model)
    model.attach(context)
    return (model, context)
}
