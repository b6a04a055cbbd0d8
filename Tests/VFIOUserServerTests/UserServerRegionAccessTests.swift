import CVFIO
import Glibc
import Synchronization
import Testing
import TestSupport
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserServer
@testable import VFIOUserWire

/// Regions of every kind a region access can meet: read-write, read-only and write-only
/// registers (callbacks), memory with one mmap area over its first half, and an absent
/// region. Counts the callbacks, which every refused access must leave alone.
final class AccessKindsModel: DeviceModel, @unchecked Sendable {
    static let memorySize: UInt64 = 64 << 10
    let deviceFlags: DeviceInfoFlags = [.pci]
    let regions = [
        RegionDescriptor(index: 0, size: 4096, flags: [.read, .write]),
        RegionDescriptor(index: 1, size: 4096, flags: [.read]),
        RegionDescriptor(index: 2, size: 4096, flags: [.write]),
        RegionDescriptor(index: 3, size: AccessKindsModel.memorySize, flags: [.read, .write],
                         backing: .memory(mmapAreas: [SparseMmapArea(offset: 0, size: AccessKindsModel.memorySize / 2)])),
        RegionDescriptor.absent(4),
    ]
    let irqs: [IRQDescriptor] = []
    private let counts = Mutex((reads: 0, writes: 0))

    var callbacks: Int { counts.withLock { $0.reads + $0.writes } }

    func attach(_ context: any DeviceContext) {}

    func read(region: UInt32, offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        counts.withLock { $0.reads += 1 }
        for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: offset &+ UInt64(i)) }
    }

    func write(region: UInt32, offset: UInt64, from buffer: UnsafeRawBufferPointer) throws(VFIOError) {
        counts.withLock { $0.writes += 1 }
    }

    func reset() throws(VFIOError) {}
}

/// Every malformed REGION_READ / REGION_WRITE gets exactly one error reply with the errno
/// of its fault (none with NO_REPLY), reaches no model callback, and the connection stays
/// up; descriptors that come with one are closed.
@Suite struct UserServerRegionAccessTests {
    static let max = 1 << 20

    static func read(_ region: UInt32, _ offset: UInt64, _ count: UInt32) -> (UInt16, [UInt8]) {
        (VFIOUserCommand.regionRead.rawValue, VFIOUserRegionAccess(offset: offset, region: region, count: count).encoded)
    }

    static func write(_ region: UInt32, _ offset: UInt64, count: UInt32, data: Int) -> (UInt16, [UInt8]) {
        (VFIOUserCommand.regionWrite.rawValue,
         VFIOUserRegionAccess(offset: offset, region: region, count: count, data: [UInt8](repeating: 0x5A, count: data)).encoded)
    }

    /// A read the server must answer from region 0 (the connection is up, and the reply
    /// to the request before it was the only one).
    static func expectServing(_ peer: RawPeer, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let reply = try peer.request(VFIOUserCommand.regionRead.rawValue, VFIOUserRegionAccess(offset: 8, region: 0, count: 4).encoded,
                                     sourceLocation: sourceLocation)
        #expect(!reply.header.isError && Array(reply.payload.suffix(4)) == [8, 9, 10, 11], "the connection broke", sourceLocation: sourceLocation)
    }

    @Test func eachMalformedAccessGetsOneErrorReply() throws {
        let model = AccessKindsModel()
        let fixture = try UserServerFixture(model: model)
        let peer = try RawPeer(path: fixture.path)
        let regionRead = VFIOUserCommand.regionRead.rawValue
        let regionWrite = VFIOUserCommand.regionWrite.rawValue
        let cases: [(String, (UInt16, [UInt8]), Int32)] = [
            ("a read shorter than vfio_user_region_access", (regionRead, [0, 0, 0]), EINVAL),
            ("a write shorter than vfio_user_region_access", (regionWrite, [UInt8](repeating: 0, count: 15)), EINVAL),
            ("a read that carries data", (regionRead, VFIOUserRegionAccess(offset: 0, region: 0, count: 4, data: [1, 2, 3, 4]).encoded), EINVAL),
            ("a write of fewer bytes than count", Self.write(0, 0, count: 8, data: 4), EINVAL),
            ("a write of more bytes than count", Self.write(0, 0, count: 4, data: 8), EINVAL),
            ("a write without data", Self.write(0, 0, count: 4, data: 0), EINVAL),
            ("a read of 0 bytes", Self.read(0, 0, 0), EINVAL),
            ("a read past the end", Self.read(0, 4094, 4), EINVAL),
            ("a read at an offset past the end", Self.read(0, 4096, 1), EINVAL),
            ("a read whose end overflows", Self.read(0, UInt64.max, 4), EINVAL),
            ("a read of a write-only region", Self.read(2, 0, 4), EINVAL),
            ("a write of a read-only region", Self.write(1, 0, count: 4, data: 4), EINVAL),
            ("a read of an absent region", Self.read(4, 0, 4), EINVAL),
            ("a read of a region the device does not have", Self.read(99, 0, 4), EINVAL),
            ("a read of memory past its end", Self.read(3, AccessKindsModel.memorySize - 2, 4), EINVAL),
            ("a read of count max_data_xfer_size + 1", Self.read(0, 0, UInt32(Self.max + 1)), E2BIG),
            ("a write of count max_data_xfer_size + 1", Self.write(3, 0, count: UInt32(Self.max + 1), data: Self.max + 1), E2BIG),
            ("a write past max_data_xfer_size + 4096", Self.write(3, 0, count: 4, data: Self.max + 4096), E2BIG),
        ]
        for (what, (command, payload), code) in cases {
            peer.expectError(try peer.request(command, payload), code, what)
            try Self.expectServing(peer)
        }
        #expect(model.callbacks == cases.count, "a refused access reached the model")
        // NO_REPLY: refused in silence (the next reply is the read's).
        try peer.socket.send(id: 0x7000, command: regionRead, flags: .noReply, payload: Self.read(4, 0, 4).1)
        try Self.expectServing(peer)
        peer.socket.close()
        try Self.expectServing(try RawPeer(path: fixture.path))
    }

    @Test func anAccessBeforeVersionIsRefused() throws {
        let fixture = try UserServerFixture(model: AccessKindsModel())
        let peer = try RawPeer(path: fixture.path, negotiate: false)
        peer.expectError(try peer.request(Self.read(0, 0, 4).0, Self.read(0, 0, 4).1), EINVAL, "a read before VERSION")
        peer.expectError(try peer.request(Self.write(0, 0, count: 4, data: 4).0, Self.write(0, 0, count: 4, data: 4).1), EINVAL,
                         "a write before VERSION")
        let version = try peer.request(VFIOUserCommand.version.rawValue, VFIOUserVersion(capabilities: VFIOUserCapabilities(maxMessageFDs: 16, maxDataTransferSize: 1 << 20)).encoded)
        #expect(!version.header.isError)
        try Self.expectServing(peer)
    }

    /// A pipe whose write end goes to the server with a message: once the server has
    /// answered, its copy must be closed, which the read end sees as a hang-up.
    struct SentDescriptor {
        let readEnd: OwnedDescriptor
        let writeEnd: OwnedDescriptor

        init() throws {
            var fds: [Int32] = [-1, -1]
            try #require(pipe(&fds) == 0)
            readEnd = OwnedDescriptor(fds[0])
            writeEnd = OwnedDescriptor(fds[1])
        }

        /// Our copy is closed; true when no other copy is open.
        func allClosed() -> Bool {
            writeEnd.close()
            var ready = pollfd(fd: readEnd.raw, events: Int16(POLLIN), revents: 0)
            return poll(&ready, 1, 0) == 1 && ready.revents & Int16(POLLHUP) != 0
        }
    }

    /// Descriptors with a region access: EINVAL, and the server keeps none of them.
    @Test func descriptorsWithAnAccessAreRefusedAndClosed() throws {
        let model = AccessKindsModel()
        let fixture = try UserServerFixture(model: model)
        let peer = try RawPeer(path: fixture.path)
        for (what, request) in [("a read", Self.read(0, 0, 4)), ("a write", Self.write(0, 0, count: 4, data: 4)),
                                ("a read of memory", Self.read(3, 0, 4))] {
            let sent = try SentDescriptor()
            peer.expectError(try peer.request(request.0, request.1, fds: [sent.writeEnd.raw]), EINVAL, "\(what) with a descriptor")
            #expect(sent.allClosed(), "\(what): the server kept the descriptor")
            try Self.expectServing(peer)
        }
        #expect(model.callbacks == 3)
    }

    /// A write whose descriptor comes with its data, not with its first byte (sent apart):
    /// refused with EINVAL all the same, and the descriptor is closed (it was kept open
    /// before).
    @Test func aDescriptorThatComesWithAWritesDataIsClosed() throws {
        let fixture = try UserServerFixture(model: AccessKindsModel())
        let peer = try RawPeer(path: fixture.path)
        let count = 16 << 10
        let sent = try SentDescriptor()
        let header = VFIOUserHeader(messageID: 0x7001, command: VFIOUserCommand.regionWrite.rawValue,
                                    messageSize: UInt32(32 + count), flags: [])
        peer.writeRaw(header.encoded + VFIOUserRegionAccess(offset: 0, region: 3, count: UInt32(count)).encoded)
        // The server has read those 32 bytes (SIOCOUTQ: none is left unread) before the
        // data and the descriptor are sent, so that they come only with the data.
        let deadline = monotonicNanoseconds() + 10_000_000_000
        var unread: Int32 = 1
        while cvfio_ioctl_ptr(peer.socket.fd, 0x5411 /* SIOCOUTQ */, &unread) == 0 && unread > 0 {
            try #require(monotonicNanoseconds() < deadline, "the server did not read the header")
            sched_yield()
        }
        var data = [UInt8](repeating: 0xC3, count: count)
        let fds = [sent.writeEnd.raw]
        let written = data.withUnsafeMutableBytes { raw in
            var iov = iovec(iov_base: raw.baseAddress, iov_len: raw.count)
            return fds.withUnsafeBufferPointer { cvfio_sendmsg_fds(peer.socket.fd, &iov, 1, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) }
        }
        try #require(written == count)
        peer.expectError(try peer.receive(id: 0x7001), EINVAL, "a write with a descriptor among its data")
        #expect(sent.allClosed(), "the server kept the descriptor")
        try Self.expectServing(peer)
    }
}
