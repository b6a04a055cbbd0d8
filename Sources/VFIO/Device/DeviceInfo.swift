/// `flags` of `struct vfio_device_info`: which bus driver serves the device, whether it can
/// be reset, and whether the reply carries a capability chain.
public struct DeviceInfoFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `VFIO_DEVICE_FLAGS_RESET`: `VFIO_DEVICE_RESET` is supported.
    public static let reset = DeviceInfoFlags(rawValue: 1 << 0)
    /// `VFIO_DEVICE_FLAGS_PCI`: a vfio-pci device (fixed PCI region and IRQ indices).
    public static let pci = DeviceInfoFlags(rawValue: 1 << 1)
    /// `VFIO_DEVICE_FLAGS_PLATFORM`: a vfio-platform device.
    public static let platform = DeviceInfoFlags(rawValue: 1 << 2)
    /// `VFIO_DEVICE_FLAGS_AMBA`: a vfio-amba device.
    public static let amba = DeviceInfoFlags(rawValue: 1 << 3)
    /// `VFIO_DEVICE_FLAGS_CCW`: an s390 vfio-ccw subchannel.
    public static let ccw = DeviceInfoFlags(rawValue: 1 << 4)
    /// `VFIO_DEVICE_FLAGS_AP`: an s390 vfio-ap crypto adapter.
    public static let ap = DeviceInfoFlags(rawValue: 1 << 5)
    /// `VFIO_DEVICE_FLAGS_FSL_MC`: a NXP Management Complex (fsl-mc) device.
    public static let fslMC = DeviceInfoFlags(rawValue: 1 << 6)
    /// `VFIO_DEVICE_FLAGS_CAPS`: the reply has a capability chain at `cap_offset`.
    public static let caps = DeviceInfoFlags(rawValue: 1 << 7)
    /// `VFIO_DEVICE_FLAGS_CDX`: an AMD CDX bus device.
    public static let cdx = DeviceInfoFlags(rawValue: 1 << 8)

    /// The bits that name a bus driver (PCI, platform, AMBA, CCW, AP, fsl-mc, CDX).
    public static let busMask: DeviceInfoFlags = [.pci, .platform, .amba, .ccw, .ap, .fslMC, .cdx]
}

/// `struct vfio_device_info`, the reply of `VFIO_DEVICE_GET_INFO`, with its capability chain.
///
/// Query with `DeviceInfo.query(capacity:)`. When the capabilities do not fit in the offered
/// `argsz`, the kernel still succeeds: it sets CAPS, leaves `cap_offset` 0 and raises `argsz`
/// to the size it needs. Such a reply decodes with no capabilities and
/// `capabilitiesOmitted` true; `ArgszRetry.run` makes the second query.
public struct DeviceInfo: ArgszStruct {
    public static let cName = "vfio_device_info"
    /// `sizeof(struct vfio_device_info)`; the capability chain, if any, starts here.
    public static let fixedSize = 24
    /// The size before Linux added the trailing `pad` (20 bytes, as in the 6.1 header).
    /// Kernels of that era placed the chain right after it, at offset 20, so a chain may
    /// start there; this package always places it at `fixedSize`.
    public static let unpaddedSize = 20

    /// The flags as reported. `init` and encoding add `.caps` whenever `capabilities` is
    /// not empty; `.caps` with no capabilities is a reply whose chain did not fit.
    public var flags: DeviceInfoFlags
    /// `num_regions`: the highest region index plus one.
    public var numRegions: UInt32
    /// `num_irqs`: the highest IRQ index plus one.
    public var numIRQs: UInt32
    /// The capability chain, in order.
    public var capabilities: [DeviceInfoCapability]

    public init(flags: DeviceInfoFlags, numRegions: UInt32, numIRQs: UInt32, capabilities: [DeviceInfoCapability] = []) {
        self.flags = capabilities.isEmpty ? flags : flags.union(.caps)
        self.numRegions = numRegions
        self.numIRQs = numIRQs
        self.capabilities = capabilities
    }

    /// True when the reply set CAPS without a chain: the buffer was too small for it.
    public var capabilitiesOmitted: Bool { flags.contains(.caps) && capabilities.isEmpty }

    /// The request for `VFIO_DEVICE_GET_INFO`: zeroed fields, `argsz` = `capacity` (at least
    /// `fixedSize`), so the kernel may write a chain into the extra room.
    public static func query(capacity: Int = 256) -> [UInt8] {
        DeviceInfo(flags: [], numRegions: 0, numIRQs: 0).encoded(capacity: max(capacity, fixedSize))
    }

    public func encode(into writer: inout ByteWriter) {
        let start = writer.beginArgsz()
        let raw = capabilities.map(\.infoCapability)
        writer.u32((raw.isEmpty ? flags : flags.union(.caps)).rawValue)
        writer.u32(numRegions)
        writer.u32(numIRQs)
        writer.u32(raw.isEmpty ? 0 : UInt32(Self.fixedSize))
        writer.u32(0)  // pad
        InfoChainCodec.appendChain(raw, fixedSize: Self.fixedSize, to: &writer)
        writer.finishArgsz(at: start)
    }

    public init(from reader: inout ByteReader) throws(VFIOError) {
        let start = reader.offset
        let argsz = try reader.argsz(fixedSize: Self.fixedSize)
        flags = DeviceInfoFlags(rawValue: try reader.u32())
        numRegions = try reader.u32()
        numIRQs = try reader.u32()
        let capOffset = try reader.u32()
        try reader.skip(4)  // pad
        let raw = try InfoChainCodec.parseChain(
            reader, start: start, argsz: argsz, hasCaps: flags.contains(.caps),
            capOffset: capOffset, fixedSize: Self.unpaddedSize, context: Self.cName)
        var typed: [DeviceInfoCapability] = []
        for capability in raw { typed.append(try DeviceInfoCapability(capability)) }
        capabilities = typed
        InfoChainCodec.finish(&reader, start: start, argsz: argsz)
    }
}
