import Foundation
import Glibc
import Testing
import VFIO
import VFIOHost
import VFIOSystem
import TestSupport

/// The kernel's mdev sample `mtty` (samples/vfio-mdev/mtty.c): one 16550-like serial
/// port behind an 8-byte I/O BAR (region 0), read and written a byte at a time.
enum Mtty {
    static let bar: UInt32 = 0
    /// RX (read) / TX (write), or the divisor's low byte while LCR.DLAB is set.
    static let data: UInt64 = 0
    /// Interrupt enable (reads back its low nibble), or the divisor's high byte with DLAB.
    static let ier: UInt64 = 1
    /// FIFO control (write).
    static let fcr: UInt64 = 2
    static let lcr: UInt64 = 3
    static let mcr: UInt64 = 4
    /// Line status: bit 0 = data ready (the loop-back FIFO holds bytes).
    static let lsr: UInt64 = 5
    static let scratch: UInt64 = 7
    static let dlab: UInt8 = 0x80
    /// The saved state: a 24-byte header (magic, version 1.0, ports, flags) and one
    /// 36-byte `struct serial_port` per port.
    static let headerSize = 24
    static let stateSize = 60
    static let magic: UInt64 = 0x7e9d_0989_8c3e_2c4e
}

extension VFIODevice {
    func mttyRead(_ register: UInt64) throws -> UInt8 { try read(UInt8.self, region: Mtty.bar, offset: register) }
    func mttyWrite(_ register: UInt64, _ value: UInt8) throws { try write(value, region: Mtty.bar, offset: register) }
}

/// What the test programs into a port and expects to find on the migration's destination.
struct SerialPortPicture: Equatable {
    var lcr: UInt8
    var ier: UInt8
    var mcr: UInt8
    var scratch: UInt8
    var divisor: UInt16
    var fifo: [UInt8]

    static let programmed = SerialPortPicture(lcr: 0x03 | Mtty.dlab, ier: 0x05, mcr: 0x03, scratch: 0xa5, divisor: 0x1234,
                                              fifo: Array("mig".utf8))

    /// Clears the FIFO, then sets the registers, loops `fifo` back into it, and leaves
    /// DLAB set with `divisor` loaded (writing DLAB clears the divisor, so it goes last).
    func program(_ device: some VFIODevice) throws {
        try device.mttyWrite(Mtty.fcr, 0x07)  // FIFO on, both cleared
        try device.mttyWrite(Mtty.lcr, lcr & ~Mtty.dlab)
        try device.mttyWrite(Mtty.ier, ier)
        try device.mttyWrite(Mtty.mcr, mcr)
        try device.mttyWrite(Mtty.scratch, scratch)
        for byte in fifo { try device.mttyWrite(Mtty.data, byte) }
        if lcr & Mtty.dlab != 0 {
            try device.mttyWrite(Mtty.lcr, lcr)
            try device.mttyWrite(Mtty.data, UInt8(divisor & 0xff))
            try device.mttyWrite(Mtty.ier, UInt8(divisor >> 8))
        }
    }

    /// Reads the port back (draining its FIFO; DLAB ends cleared).
    static func read(_ device: some VFIODevice) throws -> SerialPortPicture {
        let lcr = try device.mttyRead(Mtty.lcr)
        var divisor: UInt16 = 0
        if lcr & Mtty.dlab != 0 {
            divisor = UInt16(try device.mttyRead(Mtty.data)) | UInt16(try device.mttyRead(Mtty.ier)) << 8
            try device.mttyWrite(Mtty.lcr, lcr & ~Mtty.dlab)  // clearing DLAB keeps the divisor
        }
        let ier = try device.mttyRead(Mtty.ier)
        let mcr = try device.mttyRead(Mtty.mcr)
        let scratch = try device.mttyRead(Mtty.scratch)
        var fifo: [UInt8] = []
        while try device.mttyRead(Mtty.lsr) & 1 != 0, fifo.count <= 16 {
            fifo.append(try device.mttyRead(Mtty.data))
        }
        return SerialPortPicture(lcr: lcr, ier: ier, mcr: mcr, scratch: scratch, divisor: divisor, fifo: fifo)
    }
}

extension MigrationDataStream {
    /// Reads until the stream answers 0 (the end, or in PRE_COPY "nothing for now").
    func readAvailable() throws -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16)  // small, to cross the header's end
        while true {
            let got = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if got == 0 { return result }
            result += chunk[0..<got]
        }
    }

    func writeAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write(from: $0) }
    }
}

/// Migration through the kernel against mtty in the guest (`run.sh --kernel custom
/// --mtty 2`): features, sizes, a full save and restore between two mttys (one opened
/// through its group and a type1 container, the other through its cdev and iommufd),
/// the P2P and stop-copy-only saves, and streams the device refuses. Skipped without
/// two mttys.
@Suite(.serialized, .enabled(if: GuestEnvironment.enabled && GuestEnvironment.mttys.count >= 2,
                             "needs two mtty mdevs (Tests/Guest/run.sh --kernel custom --mtty 2)"))
struct GuestMigrationTests {
    var source: String { GuestEnvironment.mttys[0] }
    var destination: String { GuestEnvironment.mttys[1] }

    /// Opens mtty `uuid` through `access` and runs `body`; afterwards the device is put
    /// back in RUNNING with no data session (mtty's reset), whatever `body` left.
    func withMtty<T>(_ uuid: String, _ access: HostDevice.Access, _ body: (HostDevice) throws -> T) throws -> T {
        let device = try HostDevice.open(mdev: uuid, access: access)
        defer {
            if (try? device.migrationState()) != .running { try? device.resetIgnoringFlags() }
        }
        return try body(device)
    }

    /// A stop-copy save of `device` from RUNNING, back to RUNNING afterwards.
    func save(_ device: HostDevice) throws -> [UInt8] {
        #expect(try device.setMigrationState(.stop) == nil)
        let stream = try #require(try device.setMigrationState(.stopCopy))
        let bytes = try stream.readAvailable()
        stream.close()
        #expect(try device.setMigrationState(.stop) == nil)
        #expect(try device.setMigrationState(.running) == nil)
        return bytes
    }

    @Test func mttyOffersStopCopyP2PAndPreCopyAndSixtyBytesOfStateThroughBothPaths() throws {
        for access in [HostDevice.Access.container, .iommufd] {
            try withMtty(source, access) { device throws in
                #expect(device.access == access)
                #expect(device.name == source && device.address == nil)
                let info = try device.deviceInfo()
                #expect(info.flags.contains(.pci) && !info.flags.contains(.reset))
                #expect(try device.migrationFeatures() == [.stopCopy, .p2p, .preCopy])
                #expect(try device.migrationDataSize() == UInt64(Mtty.stateSize))
                #expect(try device.migrationState() == .running)
                // Dirty logging is offered and does nothing (mtty does no DMA).
                let page = try device.startDirtyLogging(ranges: [DMALoggingRange(iova: 0x10_0000, length: 0x10_0000)], pageSize: 4096)
                #expect(page == 4096)
                #expect(try device.reportDirtyPages(iova: 0x10_0000, length: 0x10_0000, pageSize: 4096) == [UInt64](repeating: 0, count: 4))
                try device.stopDirtyLogging()
            }
        }
        // By path: the group (its mdev is found through sysfs) and the cdev.
        // (The group must be closed, not just the device: an open group makes the cdev's
        // VFIO_DEVICE_BIND_IOMMUFD fail with EBUSY.)
        do {
            let byGroup = try HostDevice.open(path: GuestEnvironment.mttyGroups[0])
            #expect(byGroup.access == .container && byGroup.address == nil)
            #expect(try byGroup.migrationFeatures() == [.stopCopy, .p2p, .preCopy])
        }
        let byCdev = try HostDevice.open(path: GuestEnvironment.mttyCdevs[0])
        #expect(byCdev.access == .iommufd && byCdev.address == nil)
        #expect(try byCdev.migrationDataSize() == UInt64(Mtty.stateSize))
    }

    @Test func aFullSaveAndRestoreCarriesTheSerialPortToTheOtherMtty() throws {
        let started = ContinuousClock.now
        let bytes: [UInt8] = try withMtty(source, .container) { device throws in
            try SerialPortPicture.programmed.program(device)
            // RUNNING -> PRE_COPY opens the stream: first the 24-byte header.
            // mtty's data fds are anonymous inodes named mtty_mig.
            #expect(openDescriptors(matching: "mtty_mig") == 0)
            let stream = try #require(try device.setMigrationStateReturningStream(.preCopy))
            #expect(stream.openedBy == .preCopy)
            #expect(openDescriptors(matching: "mtty_mig") == 1)
            let before = try stream.precopyInfo()
            #expect(before.initialBytes == UInt64(Mtty.headerSize) && before.dirtyBytes == 0)
            var bytes = try stream.readAvailable()
            #expect(bytes.count == Mtty.headerSize)
            let after = try stream.precopyInfo()
            #expect(after.initialBytes == 0 && after.dirtyBytes == 0)
            #expect(try stream.readAvailable().isEmpty)  // idle: nothing more for now
            // PRE_COPY -> STOP_COPY returns no new stream: the same one carries the rest.
            #expect(try device.setMigrationState(.stopCopy) == nil)
            #expect(try device.migrationState() == .stopCopy)
            #expect((#expect(throws: VFIOError.self) { try stream.precopyInfo() })?.errnoValue == EINVAL)
            bytes += try stream.readAvailable()
            #expect(try device.setMigrationState(.stop) == nil)
            stream.close()
            #expect(openDescriptors(matching: "mtty_mig") == 0)
            #expect(try device.setMigrationState(.running) == nil)
            return bytes
        }
        #expect(bytes.count == Mtty.stateSize)
        let header = bytes.withUnsafeBytes { raw in
            (raw.loadUnaligned(as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
             raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self), raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self),
             raw.loadUnaligned(fromByteOffset: 20, as: UInt32.self))
        }
        #expect(header == (Mtty.magic, 1, 0, 1, 0))  // magic, version 1.0, one port, no flags

        try withMtty(destination, .iommufd) { device throws in
            // Something else first, so that the load is seen.
            try SerialPortPicture(lcr: 0, ier: 0, mcr: 0, scratch: 0x11, divisor: 0, fifo: []).program(device)
            #expect(try device.setMigrationState(.stop) == nil)
            let stream = try #require(try device.setMigrationState(.resuming))
            #expect(try device.migrationState() == .resuming)
            try stream.writeAll(bytes)
            #expect(try device.setMigrationState(.stop) == nil)
            #expect(openDescriptors(matching: "mtty_mig") == 1)
            stream.close()
            #expect(openDescriptors(matching: "mtty_mig") == 0)
            #expect(try device.setMigrationState(.running) == nil)
            #expect(try device.migrationState() == .running)
            #expect(try SerialPortPicture.read(device) == .programmed)
        }
        print("GuestMigrationTests: mtty save (pre-copy, stop-copy) and restore of \(bytes.count) bytes in \(ContinuousClock.now - started)")
    }

    @Test func theP2PAndStopCopyOnlySavesGiveTheSameState() throws {
        try withMtty(source, .iommufd) { device throws in
            try SerialPortPicture.programmed.program(device)
            #expect(try device.setMigrationState(.runningP2P) == nil)
            let stream = try #require(try device.setMigrationStateReturningStream(.preCopyP2P))
            #expect(try stream.precopyInfo().initialBytes == UInt64(Mtty.headerSize))
            var viaP2P = try stream.readAvailable()
            #expect(try device.setMigrationState(.stopCopy) == nil)
            viaP2P += try stream.readAvailable()
            stream.close()
            #expect(try device.setMigrationState(.stop) == nil)

            // STOP -> STOP_COPY opens a new stream holding everything at once; a
            // stop-copy stream has no pre-copy info.
            let direct = try #require(try device.setMigrationState(.stopCopy))
            #expect((#expect(throws: VFIOError.self) { try direct.precopyInfo() })?.errnoValue == EINVAL)
            let viaStop = try direct.readAvailable()
            direct.close()
            #expect(try device.setMigrationState(.running) == nil)
            #expect(viaP2P.count == Mtty.stateSize)
            #expect(viaP2P == viaStop)

            // PRE_COPY -> RUNNING abandons a save; the device runs on.
            let abandoned = try #require(try device.setMigrationState(.preCopy))
            #expect(try device.setMigrationState(.running) == nil)
            var buffer = [UInt8](repeating: 0, count: 8)
            let gone = #expect(throws: VFIOError.self) { try buffer.withUnsafeMutableBytes { try abandoned.read(into: $0) } }
            #expect(gone?.errnoValue == ENODEV)
        }
    }

    @Test func aTruncatedOrCorruptStreamIsRefusedAndResetBringsMttyBack() throws {
        let good = try withMtty(source, .container) { device throws in
            try SerialPortPicture.programmed.program(device)
            return try save(device)
        }
        #expect(good.count == Mtty.stateSize)

        try withMtty(destination, .container) { device throws in
            func resume(_ bytes: [UInt8]) throws -> HostMigrationStream {
                #expect(try device.setMigrationState(.stop) == nil)
                let stream = try #require(try device.setMigrationStateReturningStream(.resuming))
                try stream.writeAll(bytes)
                return stream
            }

            // Truncated: RESUMING -> STOP fails and the device stays in RESUMING (mtty
            // never enters ERROR); its reset (unadvertised) brings it back to RUNNING.
            let truncated = try resume(Array(good.dropLast()))
            let refused = #expect(throws: VFIOError.self) { try device.setMigrationState(.stop) }
            #expect(refused?.errnoValue == EINVAL)
            #expect(refused?.operation == "VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET STOP (the device is now in RESUMING)")
            print("GuestMigrationTests: truncated stream: \(refused.map(String.init(describing:)) ?? "-")")
            #expect(try device.migrationState() == .resuming)
            #expect((#expect(throws: VFIOError.self) { try device.reset() }).map { error in
                if case .unsupported = error.reason { return true } else { return false }
            } == true)
            try device.resetIgnoringFlags()
            #expect(try device.migrationState() == .running)
            // The reset dropped the session: its fd now answers ENODEV.
            let dropped = #expect(throws: VFIOError.self) { try truncated.writeAll([0]) }
            #expect(dropped?.errnoValue == ENODEV)
            truncated.close()

            // A corrupt header (magic flipped): mtty refuses the write that completes the
            // header with EFAULT.
            var flipped = good
            flipped[0] ^= 0xff
            #expect(try device.setMigrationState(.stop) == nil)
            let corrupt = try #require(try device.setMigrationStateReturningStream(.resuming))
            let badHeader = #expect(throws: VFIOError.self) { try corrupt.writeAll(flipped) }
            #expect(badHeader?.errnoValue == EFAULT)
            print("GuestMigrationTests: corrupt header: \(badHeader.map(String.init(describing:)) ?? "-")")
            // mtty counts the refused bytes anyway; what RESUMING -> STOP makes of them is
            // reported, not required.
            let afterRefusedWrite = Result { () throws(VFIOError) in try device.setMigrationState(.stop) }
            print("GuestMigrationTests: RESUMING -> STOP after the refused header: \(afterRefusedWrite.map { _ in "accepted" }), state \(String(describing: try? device.migrationState()))")
            corrupt.close()
            try device.resetIgnoringFlags()
            #expect(try device.migrationState() == .running)

            // A flipped byte in the port's data (the scratch register, byte 24 + 7): mtty
            // has no checksum, so it is loaded as it is.
            var flippedData = good
            flippedData[Mtty.headerSize + Int(Mtty.scratch)] ^= 0xff
            let loose = try resume(flippedData)
            let looseStop = Result { () throws(VFIOError) in try device.setMigrationState(.stop) }
            loose.close()
            print("GuestMigrationTests: RESUMING -> STOP with a flipped data byte: \(looseStop.map { _ in "accepted" }), scratch then 0x\(String((try? device.mttyRead(Mtty.scratch)) ?? 0, radix: 16))")
            try device.resetIgnoringFlags()

            // Too long: a write past the state's 60 bytes is ENOMEM.
            #expect(try device.setMigrationState(.stop) == nil)
            let long = try #require(try device.setMigrationStateReturningStream(.resuming))
            let tooLong = #expect(throws: VFIOError.self) { try long.writeAll(good + [0]) }
            #expect(tooLong?.errnoValue == ENOMEM)
            long.close()
            try device.resetIgnoringFlags()

            // After all that a good stream still loads.
            try SerialPortPicture(lcr: 0, ier: 0, mcr: 0, scratch: 0x22, divisor: 0, fifo: []).program(device)
            let fine = try resume(good)
            #expect(try device.setMigrationState(.stop) == nil)
            fine.close()
            #expect(try device.setMigrationState(.running) == nil)
            #expect(try SerialPortPicture.read(device) == .programmed)
        }
    }

    @Test func closingTheDeviceKeepsMttysMigrationState() throws {
        try withMtty(destination, .iommufd) { device throws in
            #expect(try device.setMigrationState(.stop) == nil)
        }
        // withMtty's cleanup reset it; stop it again and close without the reset.
        do {
            let device = try HostDevice.open(mdev: destination, access: .iommufd)
            #expect(try device.setMigrationState(.stop) == nil)
            device.descriptor.close()
        }
        try withMtty(destination, .container) { device throws in
            // mtty's close_device drops the data sessions and interrupts, not the state.
            #expect(try device.migrationState() == .stop)
            #expect(try device.setMigrationState(.running) == nil)
        }
    }
}
