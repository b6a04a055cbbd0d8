import CVFIO
import Foundation
import Synchronization
import Testing
import VFIO
import VFIOHost
import VFIOSystem

/// The device-feature request a fake kernel received: header and data.
struct FeatureCall {
    let argsz: UInt32
    let flags: UInt32
    let data: [UInt8]

    init(_ pointer: UnsafeMutableRawPointer) {
        argsz = pointer.loadUnaligned(as: UInt32.self)
        flags = pointer.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        data = Array(UnsafeRawBufferPointer(start: pointer + 8, count: max(Int(argsz) - 8, 0)))
    }

    var feature: UInt32 { flags & 0xffff }
    var isGet: Bool { flags & (1 << 16) != 0 }
    var isSet: Bool { flags & (1 << 17) != 0 }

    func u32(_ offset: Int) -> UInt32 { data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) } }
    func u64(_ offset: Int) -> UInt64 { data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self) } }
}

/// A scripted data fd: each `read`/`write` takes the next answer; past the script, reads
/// give 0 (end) and writes take everything.
final class ScriptedStream: @unchecked Sendable {
    private let lock = NSLock()
    private var readAnswers: [Int]
    private var writeAnswers: [Int]
    private(set) var readCalls = 0
    private(set) var writeCalls = 0
    private(set) var written: [UInt8] = []
    private(set) var descriptors: Set<Int32> = []
    /// The byte a successful read fills with.
    let fill: UInt8 = 0xa5

    init(reads: [Int] = [], writes: [Int] = []) {
        readAnswers = reads
        writeAnswers = writes
    }

    func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
        lock.withLock {
            readCalls += 1
            descriptors.insert(fd)
            let answer = readAnswers.isEmpty ? 0 : readAnswers.removeFirst()
            guard answer > 0 else { return answer }
            let count = min(answer, buffer.count)
            for i in 0..<count { buffer[i] = fill }
            return count
        }
    }

    func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Int {
        lock.withLock {
            writeCalls += 1
            descriptors.insert(fd)
            let answer = writeAnswers.isEmpty ? buffer.count : writeAnswers.removeFirst()
            guard answer > 0 else { return answer }
            let count = min(answer, buffer.count)
            written += buffer.prefix(count)
            return count
        }
    }
}

/// A device on a fake kernel whose data fds are real descriptors of the kernel's marker
/// file (counted in /proc/self/fd) read and written through `stream`.
func migrationDevice(_ kernel: FakeKernel, stream: ScriptedStream = ScriptedStream()) throws -> HostDevice {
    var system = kernel.system
    system.read = { fd, buffer in stream.read(fd, buffer) }
    system.write = { fd, buffer in stream.write(fd, buffer) }
    let container = try VFIOContainer(system: system)
    let group = try container.group(7)
    let fd = try group.openDevice("0000:01:00.0")
    return HostDevice(name: "0000:01:00.0", address: "0000:01:00.0", descriptor: fd, binding: .group(container, group),
                      space: container, system: system)
}

extension FakeKernel {
    /// A kernel whose MIG_DEVICE_STATE SET moves to the requested state and returns a new
    /// data fd (a descriptor of the marker file) for the states in `streams`; GET gives
    /// the current state; `rest` answers anything else.
    func migrationHandler(streams: Set<MigrationState> = [.preCopy, .preCopyP2P, .stopCopy, .resuming],
                          start: MigrationState = .running, failing: Int32? = nil,
                          rest: @escaping (Int32, UInt, UnsafeMutableRawPointer?) -> Int32 = { _, _, _ in -ENOTTY })
        -> (Int32, UInt, UnsafeMutableRawPointer?) -> Int32 {
        let state = Mutex(start)
        let path = filePath
        return groupHandler { fd, request, argument in
            guard request == CVFIO_VFIO_DEVICE_FEATURE, let argument else { return rest(fd, request, argument) }
            let call = FeatureCall(argument)
            guard call.feature == DeviceFeatureID.migrationDeviceState.rawValue else { return rest(fd, request, argument) }
            if call.isGet {
                argument.storeBytes(of: state.withLock { $0 }.rawValue, toByteOffset: 8, as: UInt32.self)
                argument.storeBytes(of: Int32(-1), toByteOffset: 12, as: Int32.self)
                return 0
            }
            if let failing { return -failing }
            let target = MigrationState(rawValue: call.u32(0))!
            let opens = streams.contains(target) && state.withLock { $0 } != .preCopy
            state.withLock { $0 = target }
            let dataFD: Int32 = opens ? Glibc.open(path, O_RDWR | O_CLOEXEC) : -1
            argument.storeBytes(of: dataFD, toByteOffset: 12, as: Int32.self)
            return 0
        }
    }
}

@Suite struct HostMigrationTests {
    @Test func aStateSetReturnsAStreamOnlyWhenTheKernelGivesADataFD() throws {
        let kernel = FakeKernel()
        let requests = Mutex<[FeatureCall]>([])
        let base = kernel.migrationHandler(streams: [.preCopy])
        kernel.handler = { fd, request, argument in
            if request == CVFIO_VFIO_DEVICE_FEATURE, let argument { requests.withLock { $0.append(FeatureCall(argument)) } }
            return base(fd, request, argument)
        }
        let device = try migrationDevice(kernel)
        let baseline = openDescriptors(matching: kernel.marker)

        #expect(try device.setMigrationState(.runningP2P) == nil)
        #expect(openDescriptors(matching: kernel.marker) == baseline)
        let stream = try #require(try device.setMigrationStateReturningStream(.preCopy))
        #expect(stream.openedBy == .preCopy)
        #expect(stream.descriptor.raw >= 0)
        #expect(openDescriptors(matching: kernel.marker) == baseline + 1)
        // PRE_COPY -> STOP_COPY keeps the stream: the kernel answers data_fd -1.
        #expect(try device.setMigrationState(.stopCopy) == nil)
        #expect(try device.migrationState() == .stopCopy)

        let sets = requests.withLock { $0 }.filter(\.isSet)
        #expect(sets.count == 3)
        for (call, state) in zip(sets, [MigrationState.runningP2P, .preCopy, .stopCopy]) {
            #expect(call.argsz == 16)
            #expect(call.feature == 2)
            #expect(call.u32(0) == state.rawValue)
            #expect(Int32(bitPattern: call.u32(4)) == -1)
        }
        stream.close()
        #expect(openDescriptors(matching: kernel.marker) == baseline)
    }

    @Test func aFailedStateSetNamesTheFeatureTheTargetAndWhereTheDeviceIs() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.migrationHandler(start: .resuming, failing: EINVAL)
        let device = try migrationDevice(kernel)
        let baseline = openDescriptors(matching: kernel.marker)
        let error = #expect(throws: VFIOError.self) { try device.setMigrationState(.stop) }
        #expect(error?.errnoValue == EINVAL)
        #expect(error?.operation == "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET STOP (the device is now in RESUMING)")
        #expect(error?.description.contains("EINVAL") == true)
        #expect(openDescriptors(matching: kernel.marker) == baseline)
    }

    @Test func eintrOnTheStateSetIsRetried() throws {
        let kernel = FakeKernel()
        let interruptions = Mutex(2)
        let base = kernel.migrationHandler()
        kernel.handler = { fd, request, argument in
            if request == CVFIO_VFIO_DEVICE_FEATURE, interruptions.withLock({ count in
                defer { count -= 1 }
                return count > 0
            }) { return -EINTR }
            return base(fd, request, argument)
        }
        let device = try migrationDevice(kernel)
        let stream = try #require(try device.setMigrationState(.preCopy))
        #expect(interruptions.withLock { $0 } < 0)
        stream.close()
    }

    @Test func readRetriesEINTRAndMapsENOMSGToZero() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.migrationHandler()
        let script = ScriptedStream(reads: [-Int(EINTR), -Int(EINTR), 5, -Int(ENOMSG), -Int(EINTR), 3, 0])
        let device = try migrationDevice(kernel, stream: script)
        let stream = try #require(try device.setMigrationStateReturningStream(.preCopy))
        var buffer = [UInt8](repeating: 0, count: 16)
        let first = try buffer.withUnsafeMutableBytes { try stream.read(into: $0) }
        #expect(first == 5)
        #expect(buffer.prefix(5).allSatisfy { $0 == script.fill })
        #expect(try buffer.withUnsafeMutableBytes { try stream.read(into: $0) } == 0)  // ENOMSG: nothing for now
        #expect(try buffer.withUnsafeMutableBytes { try stream.read(into: $0) } == 3)
        #expect(try buffer.withUnsafeMutableBytes { try stream.read(into: $0) } == 0)  // the end
        #expect(script.readCalls == 7)
        #expect(script.descriptors == [stream.descriptor.raw])
        // An empty buffer reads nothing and asks the kernel nothing.
        #expect(try stream.read(into: UnsafeMutableRawBufferPointer(start: nil, count: 0)) == 0)
        #expect(script.readCalls == 7)
    }

    @Test func aReadErrorNamesTheStreamAndTheErrno() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.migrationHandler()
        let device = try migrationDevice(kernel, stream: ScriptedStream(reads: [-Int(ENODEV)]))
        let stream = try #require(try device.setMigrationState(.stopCopy))
        var buffer = [UInt8](repeating: 0, count: 8)
        let error = #expect(throws: VFIOError.self) { try buffer.withUnsafeMutableBytes { try stream.read(into: $0) } }
        #expect(error?.operation == "migration data read")
        #expect(error?.errnoValue == ENODEV)
    }

    @Test func writeLoopsOnShortWritesAndRetriesEINTR() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.migrationHandler(start: .stop)
        let script = ScriptedStream(writes: [7, -Int(EINTR), 1, -Int(EINTR), -Int(EINTR), 20])
        let device = try migrationDevice(kernel, stream: script)
        let stream = try #require(try device.setMigrationState(.resuming))
        let data = (0..<60).map { UInt8($0 * 3 & 0xff) }
        try data.withUnsafeBytes { try stream.write(from: $0) }
        #expect(script.written == data)
        #expect(script.writeCalls == 7)  // 7, EINTR, 1, EINTR, EINTR, 20, then the last 32
    }

    @Test func aWriteErrorSaysHowFarItGotAndAWriteTakingNothingIsEIO() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.migrationHandler(start: .stop)
        let script = ScriptedStream(writes: [24, -Int(EFAULT)])
        let device = try migrationDevice(kernel, stream: script)
        let stream = try #require(try device.setMigrationState(.resuming))
        let data = [UInt8](repeating: 1, count: 60)
        let error = #expect(throws: VFIOError.self) { try data.withUnsafeBytes { try stream.write(from: $0) } }
        #expect(error?.operation == "migration data write (after 24 of 60 bytes)")
        #expect(error?.errnoValue == EFAULT)

        let stuck = try #require(try migrationDevice(kernel, stream: ScriptedStream(writes: [0])).setMigrationState(.resuming))
        let eio = #expect(throws: VFIOError.self) { try data.withUnsafeBytes { try stuck.write(from: $0) } }
        #expect(eio?.errnoValue == EIO)
    }

    @Test func precopyInfoIsAskedOnTheDataFD() throws {
        let kernel = FakeKernel()
        let asked = Mutex<(fd: Int32, argsz: Int)?>(nil)
        kernel.handler = kernel.migrationHandler { fd, request, argument in
            guard request == CVFIO_VFIO_MIG_GET_PRECOPY_INFO, let argument else { return -ENOTTY }
            asked.withLock { $0 = (fd, argsz(argument)) }
            argument.storeBytes(of: UInt64(24), toByteOffset: 8, as: UInt64.self)
            argument.storeBytes(of: UInt64(7), toByteOffset: 16, as: UInt64.self)
            return 0
        }
        let device = try migrationDevice(kernel)
        let stream = try #require(try device.setMigrationStateReturningStream(.preCopy))
        let info = try stream.precopyInfo()
        #expect(info.initialBytes == 24 && info.dirtyBytes == 7)
        #expect(asked.withLock { $0?.fd } == stream.descriptor.raw)
        #expect(asked.withLock { $0?.argsz } == 24)

        kernel.handler = kernel.migrationHandler { _, request, _ in request == CVFIO_VFIO_MIG_GET_PRECOPY_INFO ? -EINVAL : -ENOTTY }
        let error = #expect(throws: VFIOError.self) { try stream.precopyInfo() }
        #expect(error?.operation == "VFIO_MIG_GET_PRECOPY_INFO")
        #expect(error?.errnoValue == EINVAL)
    }

    @Test func theDataFDIsClosedOnEveryPath() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.migrationHandler()
        let device = try migrationDevice(kernel, stream: ScriptedStream(reads: [-Int(EIO)]))
        let baseline = openDescriptors(matching: kernel.marker)

        // Released without close().
        do {
            let stream = try device.setMigrationState(.preCopy)
            #expect(stream != nil)
            #expect(openDescriptors(matching: kernel.marker) == baseline + 1)
        }
        #expect(openDescriptors(matching: kernel.marker) == baseline)

        // close(), twice; then every call is EBADF.
        _ = try device.setMigrationState(.running)
        let stream = try #require(try device.setMigrationState(.preCopy))
        stream.close()
        stream.close()
        #expect(openDescriptors(matching: kernel.marker) == baseline)
        var buffer = [UInt8](repeating: 0, count: 4)
        let read = #expect(throws: VFIOError.self) { try buffer.withUnsafeMutableBytes { try stream.read(into: $0) } }
        #expect(read?.errnoValue == EBADF)
        let write = #expect(throws: VFIOError.self) { try buffer.withUnsafeBytes { try stream.write(from: $0) } }
        #expect(write?.errnoValue == EBADF)
        #expect((#expect(throws: VFIOError.self) { try stream.precopyInfo() })?.errnoValue == EBADF)

        // A failed read leaves the stream to its owner, which still closes it.
        _ = try device.setMigrationState(.running)
        do {
            let failing = try #require(try device.setMigrationState(.preCopy))
            #expect(throws: VFIOError.self) { try buffer.withUnsafeMutableBytes { try failing.read(into: $0) } }
        }
        #expect(openDescriptors(matching: kernel.marker) == baseline)

        // A stream outlives its device and closes with its last reference.
        var device2: HostDevice? = try migrationDevice(kernel)
        _ = try device2?.setMigrationState(.running)  // (the fake kernel's state is shared)
        let kept = try #require(try device2?.setMigrationState(.preCopy))
        device2 = nil
        #expect(openDescriptors(matching: kernel.marker) == baseline + 1)
        kept.close()
        #expect(openDescriptors(matching: kernel.marker) == baseline)

        // A closed device asks the kernel nothing.
        let before = kernel.count(CVFIO_VFIO_DEVICE_FEATURE)
        device.descriptor.close()
        let closed = #expect(throws: VFIOError.self) { try device.setMigrationState(.stop) }
        #expect(closed?.errnoValue == EBADF)
        #expect(kernel.count(CVFIO_VFIO_DEVICE_FEATURE) == before)
    }

    @Test func dirtyLoggingStartPointsAtThePackedRangesAndReturnsThePageSizeChosen() throws {
        let kernel = FakeKernel()
        let seen = Mutex<(call: FeatureCall, ranges: [DMALoggingRange])?>(nil)
        kernel.handler = kernel.groupHandler { _, request, argument in
            guard request == CVFIO_VFIO_DEVICE_FEATURE, let argument else { return -ENOTTY }
            let call = FeatureCall(argument)
            guard call.feature == DeviceFeatureID.dmaLoggingStart.rawValue else { return -ENOTTY }
            let count = Int(call.u32(8))
            let pointer = UnsafeRawPointer(bitPattern: UInt(call.u64(16)))!
            let bytes = Array(UnsafeRawBufferPointer(start: pointer, count: count * 16))
            let ranges = try! DMALoggingRange.decodeArray(bytes, count: count)
            seen.withLock { $0 = (call, ranges) }
            argument.storeBytes(of: UInt64(0x10000), toByteOffset: 8, as: UInt64.self)  // the device's choice
            return 0
        }
        let device = try migrationDevice(kernel)
        let ranges = [DMALoggingRange(iova: 0x10_0000, length: 0x4000), DMALoggingRange(iova: 0x8000_0000, length: 0x20_0000),
                      DMALoggingRange(iova: 0xffff_f000_0000, length: 0x1000)]
        #expect(try device.startDirtyLogging(ranges: ranges, pageSize: 4096) == 0x10000)
        let (call, passed) = try #require(seen.withLock { $0 })
        #expect(call.isSet && !call.isGet)
        #expect(call.argsz == 8 + 24)
        #expect(call.u64(0) == 4096)
        #expect(call.u32(8) == 3 && call.u32(12) == 0)
        #expect(passed == ranges)
    }

    @Test func dirtyLoggingStartWithNoRangesPassesNoPointerAndErrorsNameTheFeature() throws {
        let kernel = FakeKernel()
        let pointer = Mutex<UInt64?>(nil)
        kernel.handler = kernel.groupHandler { _, request, argument in
            guard request == CVFIO_VFIO_DEVICE_FEATURE, let argument else { return -ENOTTY }
            let call = FeatureCall(argument)
            pointer.withLock { $0 = call.u64(16) }
            return call.u32(8) == 0 ? -EINVAL : -EBUSY
        }
        let device = try migrationDevice(kernel)
        let none = #expect(throws: VFIOError.self) { try device.startDirtyLogging(ranges: [], pageSize: 4096) }
        #expect(none?.operation == "VFIO_DEVICE_FEATURE_DMA_LOGGING_START")
        #expect(none?.errnoValue == EINVAL)
        #expect(pointer.withLock { $0 } == 0)
        let busy = #expect(throws: VFIOError.self) {
            try device.startDirtyLogging(ranges: [DMALoggingRange(iova: 0, length: 4096)], pageSize: 4096)
        }
        #expect(busy?.errnoValue == EBUSY)
    }

    @Test func dirtyLoggingStopIsASetWithoutData() throws {
        let kernel = FakeKernel()
        let calls = Mutex<[FeatureCall]>([])
        kernel.handler = kernel.groupHandler { _, request, argument in
            guard request == CVFIO_VFIO_DEVICE_FEATURE, let argument else { return -ENOTTY }
            let call = FeatureCall(argument)
            calls.withLock { $0.append(call) }
            return calls.withLock { $0.count } == 1 ? 0 : -EINVAL
        }
        let device = try migrationDevice(kernel)
        try device.stopDirtyLogging()
        let call = try #require(calls.withLock { $0.first })
        #expect(call.argsz == 8 && call.isSet && call.feature == DeviceFeatureID.dmaLoggingStop.rawValue)
        let error = #expect(throws: VFIOError.self) { try device.stopDirtyLogging() }
        #expect(error?.operation == "VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP")
    }

    @Test func dirtyLoggingReportFillsABitmapSizedFromLengthAndPageSize() throws {
        let kernel = FakeKernel()
        let seen = Mutex<FeatureCall?>(nil)
        kernel.handler = kernel.groupHandler { _, request, argument in
            guard request == CVFIO_VFIO_DEVICE_FEATURE, let argument else { return -ENOTTY }
            let call = FeatureCall(argument)
            guard call.feature == DeviceFeatureID.dmaLoggingReport.rawValue else { return -ENOTTY }
            seen.withLock { $0 = call }
            let pages = (call.u64(8) + call.u64(16) - 1) / call.u64(16)
            let words = Int((pages + 63) / 64)
            let bitmap = UnsafeMutablePointer<UInt64>(bitPattern: UInt(call.u64(24)))!
            // Every word must start zeroed; mark page 0, page 64 and the last page.
            for i in 0..<words where bitmap[i] != 0 { return -EFAULT }
            bitmap[0] = 1
            bitmap[1] |= 1
            bitmap[words - 1] |= 1 << ((pages - 1) % 64)
            return 0
        }
        let device = try migrationDevice(kernel)
        // 130 pages of 4 KiB plus a partial one: 131 pages, 3 words.
        let words = try device.reportDirtyPages(iova: 0x4000_0000, length: 130 * 4096 + 100, pageSize: 4096)
        #expect(words == [1, 1, 1 << 2])
        let call = try #require(seen.withLock { $0 })
        #expect(call.isGet && call.argsz == 8 + 32)
        #expect(call.u64(0) == 0x4000_0000 && call.u64(8) == 130 * 4096 + 100 && call.u64(16) == 4096)

        let before = kernel.count(CVFIO_VFIO_DEVICE_FEATURE)
        let zero = #expect(throws: VFIOError.self) { try device.reportDirtyPages(iova: 0, length: 4096, pageSize: 0) }
        if case .invalidArgument = zero?.reason {} else { Issue.record("expected .invalidArgument, got \(String(describing: zero))") }
        let huge = #expect(throws: VFIOError.self) { try device.reportDirtyPages(iova: 0, length: .max, pageSize: 4096) }
        #expect(huge?.operation == "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT")
        #expect(kernel.count(CVFIO_VFIO_DEVICE_FEATURE) == before)
    }

    @Test func aReportErrorNamesTheFeature() throws {
        let kernel = FakeKernel()
        kernel.handler = kernel.groupHandler { _, _, _ in -EINVAL }
        let device = try migrationDevice(kernel)
        let error = #expect(throws: VFIOError.self) { try device.reportDirtyPages(iova: 0, length: 4096, pageSize: 4096) }
        #expect(error?.operation == "VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT")
        #expect(error?.errnoValue == EINVAL)
    }
}

extension FakeSysfs {
    /// Adds a mediated device with its own IOMMU group and, optionally, a cdev.
    func addMdev(_ uuid: String, group: Int, cdev: String? = nil, driver: String = "mtty", type: String = "mtty-1") throws {
        let files = FileManager.default
        let devices = root + "/bus/mdev/devices"
        let path = root + "/devices/virtual/mtty/mtty/" + uuid
        try files.createDirectory(atPath: path, withIntermediateDirectories: true)
        try files.createDirectory(atPath: devices, withIntermediateDirectories: true)
        try files.createSymbolicLink(atPath: devices + "/" + uuid, withDestinationPath: path)
        try files.createDirectory(atPath: root + "/bus/mdev/drivers/" + driver, withIntermediateDirectories: true)
        try files.createSymbolicLink(atPath: path + "/driver", withDestinationPath: root + "/bus/mdev/drivers/" + driver)
        try files.createDirectory(atPath: root + "/types/" + type, withIntermediateDirectories: true)
        try files.createSymbolicLink(atPath: path + "/mdev_type", withDestinationPath: root + "/types/" + type)
        let groupPath = root + "/kernel/iommu_groups/\(group)/devices"
        try files.createDirectory(atPath: groupPath, withIntermediateDirectories: true)
        try files.createSymbolicLink(atPath: groupPath + "/" + uuid, withDestinationPath: path)
        try files.createSymbolicLink(atPath: path + "/iommu_group", withDestinationPath: root + "/kernel/iommu_groups/\(group)")
        if let cdev {
            try files.createDirectory(atPath: path + "/vfio-dev/" + cdev, withIntermediateDirectories: true)
            try files.createDirectory(atPath: root + "/class/vfio-dev/" + cdev, withIntermediateDirectories: true)
            try files.createSymbolicLink(atPath: root + "/class/vfio-dev/\(cdev)/device", withDestinationPath: path)
        }
    }
}

@Suite struct HostMigrationMdevOpeningTests {
    static let uuid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"

    @Test func sysfsDescribesAnMdevByUUIDInAnyCase() throws {
        let tree = try FakeSysfs()
        try tree.addMdev(Self.uuid, group: 4, cdev: "vfio1")
        let record = try tree.sysfs.mdevDevice(Self.uuid.uppercased())
        #expect(record == MdevDeviceRecord(uuid: Self.uuid, type: "mtty-1", driver: "mtty", iommuGroup: 4, vfioDeviceName: "vfio1"))
        #expect(record.cdevPath == "/dev/vfio/devices/vfio1")
        #expect(tree.sysfs.mdevDevices().map(\.uuid) == [Self.uuid])
        #expect(tree.sysfs.isMdev(Self.uuid))
        #expect(try tree.sysfs.addressOfCdev("vfio1") == Self.uuid)
        let missing = #expect(throws: VFIOError.self) { try tree.sysfs.mdevDevice("00000000-0000-0000-0000-000000000000") }
        #expect(missing?.errnoValue == ENOENT)
        #expect(MdevDeviceRecord.isUUID(Self.uuid))
        #expect(!MdevDeviceRecord.isUUID("0000:01:00.0"))
        #expect(!MdevDeviceRecord.isUUID("83b8f4f2-509f-382f-3c1e-e6bfe0fa100g"))
        #expect(Sysfs(root: "/nonexistent").mdevDevices().isEmpty)
    }

    /// A kernel that records the names `VFIO_GROUP_GET_DEVICE_FD` is asked for.
    final class NameLog: Sendable {
        let names = Mutex<[String]>([])
        func withLock<T>(_ body: (inout [String]) -> T) -> T { names.withLock { body(&$0) } }
    }

    func recordingKernel() -> (FakeKernel, NameLog) {
        let kernel = FakeKernel()
        let names = NameLog()
        let base = kernel.groupHandler()
        kernel.handler = { fd, request, argument in
            if request == CVFIO_VFIO_GROUP_GET_DEVICE_FD, let argument {
                names.withLock { $0.append(String(cString: argument.assumingMemoryBound(to: CChar.self))) }
            }
            return base(fd, request, argument)
        }
        return (kernel, names)
    }

    @Test func anMdevOpensThroughItsGroupByUUID() throws {
        let tree = try FakeSysfs()
        try tree.addMdev(Self.uuid, group: 4, cdev: "vfio1")
        let (kernel, names) = recordingKernel()
        let device = try HostDevice.open(mdev: Self.uuid, access: .container, sysfs: tree.sysfs, system: kernel.system)
        #expect(device.name == Self.uuid && device.address == nil && device.access == .container)
        if case .group(_, let group) = device.binding { #expect(group.number == 4) } else { Issue.record("not opened through a group") }
        #expect(names.withLock { $0 } == [Self.uuid])

        // The group path finds the mdev when the group has no PCI device.
        let byPath = try HostDevice.open(path: "/dev/vfio/4", sysfs: tree.sysfs, system: kernel.system)
        #expect(byPath.name == "/dev/vfio/4" && byPath.address == nil)
        #expect(names.withLock { $0 } == [Self.uuid, Self.uuid])
    }

    @Test func anMdevWithoutACdevIsUnsupportedThroughIOMMUFDAndAMissingOneIsENOENT() throws {
        let tree = try FakeSysfs()
        try tree.addMdev(Self.uuid, group: 4)
        let (kernel, names) = recordingKernel()
        let error = #expect(throws: VFIOError.self) {
            try HostDevice.open(mdev: Self.uuid, access: .iommufd, sysfs: tree.sysfs, system: kernel.system)
        }
        if case .unsupported = error?.reason {} else { Issue.record("expected .unsupported, got \(String(describing: error))") }
        let missing = #expect(throws: VFIOError.self) {
            try HostDevice.open(mdev: "00000000-0000-0000-0000-000000000000", access: .container, sysfs: tree.sysfs, system: kernel.system)
        }
        #expect(missing?.errnoValue == ENOENT)
        #expect(names.withLock { $0 }.isEmpty)
        #expect(openDescriptors(matching: kernel.marker) == 0)
    }
}
