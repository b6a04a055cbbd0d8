import CVFIO
import Glibc
import Testing
import VFIO
import VFIOConformance
import VFIOSystem

/// STOPGAP, test-only: the smallest kernel-transport `VFIODevice` (legacy container and
/// group, type1v2, vfio-pci's fixed region offsets) that lets the conformance suite run
/// against QEMU's edu in the guest harness before `HostDevice` (VFIOHost, branch wt-host)
/// exists. Delete it, or keep it as a cross-check, once `HostDevice` is wired.
final class MinimalKernelDevice: VFIODevice {
    let name: String
    private let device: OwnedDescriptor
    private let group: OwnedDescriptor
    private let container: OwnedDescriptor

    init(address: String) throws(VFIOError) {
        name = address
        var link = [CChar](repeating: 0, count: 4096)
        let count = readlink("/sys/bus/pci/devices/\(address)/iommu_group", &link, link.count - 1)
        guard count > 0 else { throw .errno("readlink iommu_group", errno) }
        let groupNumber = String(decoding: link[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: "/").last.map(String.init) ?? ""
        let containerFD = try SystemCall.retrying("open /dev/vfio/vfio") { open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC) }
        container = OwnedDescriptor(containerFD)
        let groupFD = try SystemCall.retrying("open /dev/vfio/\(groupNumber)") { open("/dev/vfio/\(groupNumber)", O_RDWR | O_CLOEXEC) }
        group = OwnedDescriptor(groupFD)
        var raw = containerFD
        try SystemCall.retrying("VFIO_GROUP_SET_CONTAINER") { cvfio_ioctl_ptr(groupFD, CVFIO_VFIO_GROUP_SET_CONTAINER, &raw) }
        try SystemCall.retrying("VFIO_SET_IOMMU") { cvfio_ioctl_int(containerFD, CVFIO_VFIO_SET_IOMMU, 3) }
        let deviceFD = try SystemCall.retrying("VFIO_GROUP_GET_DEVICE_FD") {
            address.withCString { cvfio_ioctl_ptr(groupFD, CVFIO_VFIO_GROUP_GET_DEVICE_FD, UnsafeMutableRawPointer(mutating: $0)) }
        }
        device = OwnedDescriptor(deviceFD)
    }

    deinit {
        device.close()
        group.close()
        container.close()
    }

    private func ioctl(_ fd: OwnedDescriptor, _ request: UInt, _ name: String, _ bytes: inout [UInt8]) throws(VFIOError) {
        let raw = fd.raw
        try SystemCall.retrying(name) { bytes.withUnsafeMutableBytes { cvfio_ioctl_ptr(raw, request, $0.baseAddress) } }
    }

    func deviceInfo() throws(VFIOError) -> DeviceInfo {
        var bytes = DeviceInfo.query()
        try ioctl(device, CVFIO_VFIO_DEVICE_GET_INFO, "VFIO_DEVICE_GET_INFO", &bytes)
        return try DeviceInfo(decoding: bytes)
    }

    func regionInfo(_ index: UInt32) throws(VFIOError) -> RegionInfo {
        var bytes = RegionInfo.query(index: index, capacity: 1024)
        try ioctl(device, CVFIO_VFIO_DEVICE_GET_REGION_INFO, "VFIO_DEVICE_GET_REGION_INFO", &bytes)
        return try RegionInfo(decoding: bytes)
    }

    func irqInfo(_ index: UInt32) throws(VFIOError) -> IRQInfo {
        var bytes = IRQInfo.query(index: index)
        try ioctl(device, CVFIO_VFIO_DEVICE_GET_IRQ_INFO, "VFIO_DEVICE_GET_IRQ_INFO", &bytes)
        return try IRQInfo(decoding: bytes)
    }

    func read(region index: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        let fd = device.raw
        let done = try SystemCall.retrying("pread") { pread(fd, buffer.baseAddress, buffer.count, off_t((UInt64(index) << 40) + offset)) }
        guard done == buffer.count else { throw .errno("pread (short)", EIO) }
    }

    func write(region index: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        let fd = device.raw
        let done = try SystemCall.retrying("pwrite") { pwrite(fd, buffer.baseAddress, buffer.count, off_t((UInt64(index) << 40) + offset)) }
        guard done == buffer.count else { throw .errno("pwrite (short)", EIO) }
    }

    func mapRegion(_ index: UInt32, offset: UInt64, size: Int) throws(VFIOError) -> any MappedRegion {
        try DeviceMapping(fd: device.raw, fileOffset: (UInt64(index) << 40) + offset, size: size, regionOffset: offset)
    }

    func setIRQs(_ set: IRQSet) throws(VFIOError) {
        var bytes = set.encoded()
        try ioctl(device, CVFIO_VFIO_DEVICE_SET_IRQS, "VFIO_DEVICE_SET_IRQS", &bytes)
    }

    func reset() throws(VFIOError) {
        let fd = device.raw
        try SystemCall.retrying("VFIO_DEVICE_RESET") { cvfio_ioctl_int(fd, CVFIO_VFIO_DEVICE_RESET, 0) }
    }

    func feature(_ request: DeviceFeature) throws(VFIOError) -> DeviceFeaturePayload? {
        throw .unsupported("VFIO_DEVICE_FEATURE", "not in the stopgap device")
    }

    func validIOVARanges() throws(VFIOError) -> [IOVARange] {
        var bytes = Type1Info.request()
        try ioctl(container, CVFIO_VFIO_IOMMU_GET_INFO, "VFIO_IOMMU_GET_INFO", &bytes)
        for capability in try Type1Info(decoding: bytes).capabilities {
            if case .iovaRanges(let ranges) = capability {
                var result: [IOVARange] = []
                for range in ranges { result.append(try IOVARange(start: range.start, last: range.end)) }
                return result
            }
        }
        return [try IOVARange(start: 0, last: .max)]
    }

    func mapDMA(_ memory: any DMAMemory, offset: Int, size: Int, iova: UInt64, access: DMAAccess) throws(VFIOError) {
        var flags: Type1DMAMapFlags = []
        if access.contains(.read) { flags.insert(.read) }
        if access.contains(.write) { flags.insert(.write) }
        let vaddr = UInt64(UInt(bitPattern: memory.baseAddress + offset))
        var bytes = Type1DMAMap(flags: flags, vaddr: vaddr, iova: iova, size: UInt64(size)).encoded()
        try ioctl(container, CVFIO_VFIO_IOMMU_MAP_DMA, "VFIO_IOMMU_MAP_DMA", &bytes)
    }

    func unmapDMA(iova: UInt64, size: UInt64) throws(VFIOError) {
        var bytes = Type1DMAUnmap(iova: iova, size: size).encoded()
        try ioctl(container, CVFIO_VFIO_IOMMU_UNMAP_DMA, "VFIO_IOMMU_UNMAP_DMA", &bytes)
    }

    func hotResetInfo() throws(VFIOError) -> PCIHotResetInfo {
        var bytes = PCIHotResetInfo.query()
        try ioctl(device, CVFIO_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", &bytes)
        return try PCIHotResetInfo(decoding: bytes)
    }

    func setIOEventfd(_ ioeventfd: IOEventfd) throws(VFIOError) {
        var bytes = ioeventfd.encoded()
        try ioctl(device, CVFIO_VFIO_DEVICE_IOEVENTFD, "VFIO_DEVICE_IOEVENTFD", &bytes)
    }
}

/// QEMU's edu through the real kernel, in the guest harness (`Tests/Guest/run.sh`, which
/// sets SWIFT_VFIO_GUEST=1 and lists the edu devices bound to vfio-pci in SWIFT_VFIO_EDU).
@Suite(.serialized, .enabled(if: getenv("SWIFT_VFIO_GUEST") != nil && getenv("SWIFT_VFIO_EDU") != nil))
struct ConformanceGuestTests {
    @Test func qemuEduThroughTheKernelPassesTheSuite() async throws {
        let addresses = String(cString: getenv("SWIFT_VFIO_EDU")).split(separator: " ").map(String.init)
        let address = try #require(addresses.first)
        let report = await EduConformance.runner(options: ConformanceOptions(timeout: .seconds(10), leakCycles: 2))
            .run(deviceName: address) { try MinimalKernelDevice(address: address) }
        print(report)
        #expect(report.failed.isEmpty, "\(report)")
    }

    @Test func andWithOneDeviceSharedByTheChecks() async throws {
        let addresses = String(cString: getenv("SWIFT_VFIO_EDU")).split(separator: " ").map(String.init)
        let address = try #require(addresses.first)
        let options = ConformanceOptions(timeout: .seconds(10), leakCycles: 2, reopenPerCheck: false)
        let report = await EduConformance.runner(options: options)
            .run(deviceName: address) { try MinimalKernelDevice(address: address) }
        #expect(report.failed.isEmpty, "\(report)")
    }
}
