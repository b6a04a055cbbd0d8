import Synchronization
import VFIO
import VFIODeviceKit

/// A migratable model that records what the kit asks of it, with switches to make each
/// hook fail. Its state is `data`; it is a `DeviceModel` (no regions) so that it can be
/// attached through `AttachedDevice`, and `ring()` signals an interrupt through its context.
final class RecordingModel: DeviceModel, MigratableDevice {
    struct Log: Sendable {
        var data: [UInt8]
        var runStates: [MigrationRunState] = []
        var saves = 0
        var loads: [(state: [UInt8], version: UInt32)] = []
        var failSave = false
        var failLoad = false
        var failRun: Set<MigrationRunState> = []
        var runState = MigrationRunState.running
    }

    let migrationFeatures: MigrationFeatures
    let migrationIdentity: MigrationIdentity
    let log: Mutex<Log>
    private let contextBox = Mutex<(any DeviceContext)?>(nil)

    let deviceFlags: DeviceInfoFlags = [.platform, .reset]
    let regions: [RegionDescriptor] = []
    let irqs = [IRQDescriptor(index: 0, count: 1, flags: [.eventfd])]

    let stateSizeHint: Int?

    init(features: MigrationFeatures = [.stopCopy, .p2p, .preCopy], name: String = "recorder", version: UInt32 = 2,
         data: [UInt8] = Array(0..<200).map { UInt8($0 & 0xFF) }, stateSizeHint: Int? = nil) {
        self.stateSizeHint = stateSizeHint
        migrationFeatures = features
        migrationIdentity = MigrationIdentity(name: name, version: version)
        log = Mutex(Log(data: data))
    }

    var migration: (any MigratableDevice)? { self }
    func attach(_ context: any DeviceContext) { contextBox.withLock { $0 = context } }
    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        throw .errno("read", DeviceErrno.EINVAL)
    }
    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        throw .errno("write", DeviceErrno.EINVAL)
    }
    func reset() throws(VFIOError) {}

    func ring() { contextBox.withLock { $0 }?.triggerIRQ(index: 0, vector: 0) }

    func setMigrationRunState(_ state: MigrationRunState) throws(VFIOError) {
        try log.withLock { (l: inout Log) throws(VFIOError) in
            if l.failRun.contains(state) { throw .errno("recorder run state \(state)", DeviceErrno.EIO) }
            l.runStates.append(state)
            l.runState = state
        }
    }

    func saveState() throws(VFIOError) -> [UInt8] {
        try log.withLock { (l: inout Log) throws(VFIOError) -> [UInt8] in
            if l.failSave { throw .errno("recorder save", DeviceErrno.EIO) }
            l.saves += 1
            return l.data
        }
    }

    func loadState(_ state: [UInt8], version: UInt32) throws(VFIOError) {
        try log.withLock { (l: inout Log) throws(VFIOError) in
            if l.failLoad { throw .malformed("recorder state", "refused") }
            l.loads.append((state, version))
            l.data = state
        }
    }

    var data: [UInt8] {
        get { log.withLock { $0.data } }
        set { log.withLock { $0.data = newValue } }
    }

    func clearLog() {
        log.withLock { l in
            l.runStates = []
            l.saves = 0
            l.loads = []
        }
    }
}

/// `0..<count` cut in pieces of `sizes` (cycled; the last piece is what is left).
func pieces(of count: Int, sizes: [Int]) -> [Range<Int>] {
    var ranges: [Range<Int>] = []
    var at = 0
    while at < count {
        let n = min(sizes[ranges.count % sizes.count], count - at)
        ranges.append(at..<(at + n))
        at += n
    }
    return ranges
}

/// Reads the saving stream until an empty read, `chunk` bytes at a time.
func drain(_ driver: MigrationDriver, chunk: Int = 777) throws(VFIOError) -> [UInt8] {
    var all: [UInt8] = []
    while true {
        let part = try driver.readData(max: chunk)
        if part.isEmpty { return all }
        all += part
    }
}

/// A complete stream saved from a fresh model holding `data` (STOP -> STOP_COPY).
func savedStream(name: String = "recorder", version: UInt32 = 2, data: [UInt8]) throws(VFIOError) -> [UInt8] {
    let model = RecordingModel(name: name, version: version, data: data)
    let driver = try MigrationDriver(device: model)
    try driver.setState(.stopCopy)
    return try drain(driver)
}

/// The text of an error, for checking that it names what was wrong.
func text(_ error: (any Error)?) -> String { error.map { "\($0)" } ?? "no error" }
