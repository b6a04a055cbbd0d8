import Glibc
import Synchronization
import VFIO
import VFIODeviceKit

/// A device whose whole state is `state` (several MiB: more than one max_data_xfer_size).
package final class StateModel: DeviceModel, MigratableDevice {
    package static let size = (5 << 19) + 4321   // 2.5 MiB and some
    package let deviceFlags: DeviceInfoFlags = [.platform, .reset]
    package let regions: [RegionDescriptor] = []
    package let irqs: [IRQDescriptor] = []
    package let migrationFeatures: MigrationFeatures = [.stopCopy, .preCopy]
    package let migrationIdentity = MigrationIdentity(name: "state", version: 1)
    private let box = Mutex<[UInt8]>((0..<StateModel.size).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ $0 >> 11) })

    package init() {}

    package var state: [UInt8] {
        get { box.withLock { $0 } }
        set { box.withLock { $0 = newValue } }
    }

    package var migration: (any MigratableDevice)? { self }
    package func attach(_ context: any DeviceContext) {}
    package func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) { throw .errno("read", EINVAL) }
    package func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) { throw .errno("write", EINVAL) }
    package func reset() throws(VFIOError) {}
    package func setMigrationRunState(_ state: MigrationRunState) throws(VFIOError) {}
    package func saveState() throws(VFIOError) -> [UInt8] { state }
    package func loadState(_ state: [UInt8], version: UInt32) throws(VFIOError) { self.state = state }
}
