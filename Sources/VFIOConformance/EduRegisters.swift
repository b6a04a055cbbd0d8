import CVFIO
import VFIO
import VFIOSystem

/// The register map of QEMU's `edu` device (hw/misc/edu.c, 1234:11e8), which the Swift
/// `EduDevice` model in `VFIODeviceKit` copies. Every register is accessed 4 bytes wide:
/// QEMU's edu ignores other widths below 0x80, and a 32-bit IOVA fits its 28-bit DMA mask.
public enum Edu {
    public static let vendorID: UInt16 = 0x1234
    public static let deviceID: UInt16 = 0x11e8
    /// BAR0's size: 1 MiB.
    public static let bar0Size: UInt64 = 1 << 20

    /// 0x00: reads `0x010000ed` (major 1, minor 0, 0xed).
    public static let identification: UInt64 = 0x00
    public static let identificationValue: UInt32 = 0x0100_00ed
    /// 0x04: reads the bitwise inverse of what was last written.
    public static let liveness: UInt64 = 0x04
    /// 0x08: write n, read n! once status bit 0 clears.
    public static let factorial: UInt64 = 0x08
    /// 0x20: bit 0 computing (read only), bit 7 raise an interrupt when the factorial is done.
    public static let status: UInt64 = 0x20
    public static let statusComputing: UInt32 = 0x01
    public static let statusRaiseIRQ: UInt32 = 0x80
    /// 0x24: interrupt status, the OR of the raised values.
    public static let interruptStatus: UInt64 = 0x24
    /// 0x60: write a value to OR it into the interrupt status and raise the interrupt.
    public static let interruptRaise: UInt64 = 0x60
    /// 0x64: write a value to clear those bits of the interrupt status (lowers INTx at 0).
    public static let interruptAcknowledge: UInt64 = 0x64
    /// The interrupt status bit the factorial unit raises.
    public static let factorialIRQ: UInt32 = 0x0000_0001
    /// The interrupt status bit the DMA engine raises.
    public static let dmaIRQ: UInt32 = 0x0000_0100

    /// 0x80, 0x88, 0x90: DMA source, destination and byte count.
    public static let dmaSource: UInt64 = 0x80
    public static let dmaDestination: UInt64 = 0x88
    public static let dmaCount: UInt64 = 0x90
    /// 0x98: DMA command: bit 0 start (clears when done), bit 1 direction, bit 2 interrupt.
    public static let dmaCommand: UInt64 = 0x98
    public static let dmaStart: UInt32 = 0x1
    /// Direction bit: set = device buffer -> RAM (`EDU_DMA_TO_PCI`), clear = RAM -> device buffer.
    public static let dmaToRAM: UInt32 = 0x2
    public static let dmaRaiseIRQ: UInt32 = 0x4
    /// The device's DMA buffer, as addressed by the DMA engine (not through the BAR).
    public static let dmaBuffer: UInt64 = 0x40000
    public static let dmaBufferSize = 4096
    /// The largest transfer used: QEMU 7.2 aborts on exactly 4096 bytes.
    public static let maxTransfer = 4095
    /// IOVAs must stay below this: edu masks DMA addresses to 28 bits.
    public static let iovaLimit: UInt64 = 1 << 28
}

/// PCI configuration space offsets and bits the suite uses.
enum PCIConfig {
    static let vendorID: UInt64 = 0x00
    static let deviceID: UInt64 = 0x02
    static let command: UInt64 = 0x04
    static let commandMemory: UInt16 = 1 << 1
    static let commandBusMaster: UInt16 = 1 << 2
}

/// BAR0 register access, always 4 bytes wide.
extension VFIODevice {
    func eduRead(_ register: UInt64) throws(VFIOError) -> UInt32 {
        try read(UInt32.self, region: PCIRegionIndex.bar0.rawValue, offset: register)
    }

    func eduWrite(_ register: UInt64, _ value: UInt32) throws(VFIOError) {
        try write(value, region: PCIRegionIndex.bar0.rawValue, offset: register)
    }

    /// Sets memory decoding and bus mastering in the Command register (read-modify-write):
    /// vfio-pci refuses BAR access with memory decoding off, and edu's DMA and MSI writes
    /// go nowhere without bus mastering.
    func enableMemoryAndBusMaster() throws(VFIOError) {
        let command = try readConfig(UInt16.self, offset: PCIConfig.command)
        let wanted = command | PCIConfig.commandMemory | PCIConfig.commandBusMaster
        if wanted != command {
            try writeConfig(wanted, offset: PCIConfig.command)
        }
    }
}

/// One volatile 32-bit access to a mapped region, whatever type the transport returned.
enum MMIO {
    static func load32(_ region: any MappedRegion, at offset: Int) -> UInt32 {
        precondition(offset >= 0 && offset + 4 <= region.size && offset % 4 == 0)
        if let mapping = region as? DeviceMapping { return mapping.load(UInt32.self, at: offset) }
        return UInt32(littleEndian: cvfio_mmio_read32(region.baseAddress + offset))
    }

    static func store32(_ value: UInt32, _ region: any MappedRegion, at offset: Int) {
        precondition(offset >= 0 && offset + 4 <= region.size && offset % 4 == 0)
        if let mapping = region as? DeviceMapping { return mapping.store(value, at: offset) }
        cvfio_mmio_write32(region.baseAddress + offset, value.littleEndian)
    }
}
