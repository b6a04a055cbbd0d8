import CVFIO
import Glibc
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

/// edu driven by a `RawPeer`: register access and one DMA transfer, with the peer
/// answering (or not) the server's DMA messages itself.
struct RawEdu {
    let peer: RawPeer
    static let iova: UInt64 = 0x80_0000

    func write(_ offset: UInt64, _ value: UInt64, width: Int = 8, region: UInt32 = bar0) throws {
        let data = withUnsafeBytes(of: value.littleEndian) { Array($0.prefix(width)) }
        let reply = try peer.request(VFIOUserCommand.regionWrite.rawValue,
                                     VFIOUserRegionAccess(offset: offset, region: region, count: UInt32(width), data: data).encoded)
        #expect(!reply.header.isError, "write of 0x\(String(offset, radix: 16))")
    }

    func read(_ offset: UInt64) throws -> UInt32 {
        let reply = try peer.request(VFIOUserCommand.regionRead.rawValue, VFIOUserRegionAccess(offset: offset, region: bar0, count: 4).encoded)
        let access = try VFIOUserRegionAccess(decoding: reply.payload)
        return access.data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
    }

    func enableBusMaster() throws { try write(4, 0x6, width: 2, region: config) }

    func map(_ fd: Int32, size: UInt64) -> VFIOUserMessage? {
        try? peer.request(VFIOUserCommand.dmaMap.rawValue,
                          VFIOUserDMAMap(flags: [.read, .write], offset: 0, address: Self.iova, size: size).encoded, fds: [fd])
    }

    /// Starts a transfer of `count` bytes between RAM at `iova` and the start of edu's
    /// buffer (`toRAM`: the device writes RAM). The server runs it once the command's
    /// reply is out.
    func start(toRAM: Bool, count: UInt64 = 64, iova: UInt64 = RawEdu.iova) throws {
        try write(0x80, toRAM ? EduDevice.dmaBufferAddress : iova)
        try write(0x88, toRAM ? iova : EduDevice.dmaBufferAddress)
        try write(0x90, count)
        try write(0x98, toRAM ? 0x3 : 0x1)
    }

    /// The next message the server sends on its own (a DMA message; it may already be in
    /// the socket's read-ahead), waited for 10 s at most: a server that sends none fails
    /// the test instead of hanging it.
    func nextServerMessage(sourceLocation: SourceLocation = #_sourceLocation) throws -> VFIOUserMessage {
        var ready = pollfd(fd: peer.socket.fd, events: Int16(POLLIN), revents: 0)
        guard peer.socket.hasInput() || poll(&ready, 1, 10_000) == 1, case .message(let message) = try peer.socket.receive(maxPayload: 1 << 20, maxFDs: 4) else {
            Issue.record("no message from the server", sourceLocation: sourceLocation)
            throw VFIOError.errno("waiting for a DMA message", ETIMEDOUT)
        }
        return message
    }

    /// The next message from the server, which must be a DMA_READ / DMA_WRITE at `iova`
    /// of `count` bytes; answered with `error`.
    func refuseDMAMessage(toRAM: Bool, count: UInt64 = 64, error: Int32 = EFAULT, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let message = try nextServerMessage(sourceLocation: sourceLocation)
        let expected: VFIOUserCommand = toRAM ? .dmaWrite : .dmaRead
        #expect(!message.header.isReply && message.header.command == expected.rawValue,
                "expected \(expected.cName), got \(message.header)", sourceLocation: sourceLocation)
        let access = try VFIOUserDMAAccess(decoding: message.payload)
        #expect(access.address == Self.iova && access.count == count, sourceLocation: sourceLocation)
        try peer.socket.send(id: message.header.messageID, command: message.header.command, flags: [.reply, .error], error: UInt32(error))
    }
}

/// What a client can do to the descriptors it passes with DMA_MAP, and to the memory the
/// server passes for its regions, without killing the server (SIGBUS on a shrunken file).
@Suite struct UserDMADescriptorTests {
    enum Descriptor: String, CaseIterable, CustomStringConvertible {
        case unsealedMemfd = "an unsealed memfd"
        case memfdSealedAgainstGrowingOnly = "a memfd sealed against growing only"
        case fileInTmp = "a file in /tmp"
        var description: String { rawValue }

        /// A descriptor of 8 KiB of this kind.
        func make() throws -> OwnedDescriptor {
            let fd: Int32
            switch self {
            case .unsealedMemfd, .memfdSealedAgainstGrowingOnly:
                fd = cvfio_memfd_create("dma-descriptor-test", UInt32(MFD_CLOEXEC | MFD_ALLOW_SEALING))
            case .fileInTmp:
                let directory = try makeTemporaryDirectory("/tmp/swift-vfio-dma-XXXXXX")
                let path = directory + "/ram"
                fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                unlink(path)
                rmdir(directory)
            }
            try #require(fd >= 0, "errno \(errno)")
            let owned = OwnedDescriptor(fd)
            try #require(ftruncate(fd, 8192) == 0)
            if self == .memfdSealedAgainstGrowingOnly { try #require(cvfio_add_seals(fd, UInt32(CVFIO_F_SEAL_GROW)) == 0) }
            return owned
        }
    }

    /// A client maps memory it can shrink, shrinks it to nothing and has edu DMA into and
    /// out of it: the server never touches that memory (it asks the client with DMA
    /// messages), the device sees the error the client answers, and the server keeps
    /// serving.
    @Test(arguments: Descriptor.allCases)
    func shrinkableMemoryIsReachedThroughMessagesOnly(_ kind: Descriptor) throws {
        let edu = EduDevice()
        let fixture = try UserServerFixture(model: edu)
        let peer = try RawPeer(path: fixture.path)
        let device = RawEdu(peer: peer)
        try device.enableBusMaster()
        let fd = try kind.make()
        defer { fd.close() }
        let reply = try #require(device.map(fd.raw, size: 8192))
        try #require(!reply.header.isError, "DMA_MAP of \(kind): \(reply.header)")
        #expect(ftruncate(fd.raw, 0) == 0)
        for toRAM in [false, true] {
            try device.start(toRAM: toRAM)
            try device.refuseDMAMessage(toRAM: toRAM)
            #expect(try device.read(0x98) & 1 == 0, "the transfer did not end")
            #expect(edu.lastDMAError?.errnoValue == EFAULT, "\(String(describing: edu.lastDMAError))")
        }
        // Answered, the same transfer succeeds: the mapping itself is fine.
        try device.start(toRAM: false)
        let message = try device.nextServerMessage()
        #expect(message.header.command == VFIOUserCommand.dmaRead.rawValue)
        let data = (0..<64).map { UInt8($0) ^ 0x5A }
        try peer.socket.send(id: message.header.messageID, command: message.header.command, flags: .reply,
                             payload: VFIOUserDMAAccess(address: RawEdu.iova, count: 64, data: data).encoded)
        #expect(try device.read(0x98) & 1 == 0)
        #expect(edu.lastDMAError == nil)
        try expectNextClientServed(fixture, leaving: peer)
    }

    /// Memory sealed against shrinking (what `DMABuffer` makes, and QEMU's
    /// `memory-backend-memfd`) is copied directly: no DMA message reaches the client.
    @Test func memfdSealedAgainstShrinkingIsCopiedDirectly() throws {
        let edu = EduDevice()
        let fixture = try UserServerFixture(model: edu)
        let peer = try RawPeer(path: fixture.path)
        let device = RawEdu(peer: peer)
        try device.enableBusMaster()
        let memory = try DMABuffer(size: 8192)
        let shared = try #require(memory.sharedDescriptor)
        for i in 0..<64 { memory.bytes[i] = UInt8(i) &* 7 }
        let reply = try #require(device.map(shared.fd, size: 8192))
        try #require(!reply.header.isError)
        // RawPeer.request checks that the next message is the reply to the request: a DMA
        // message in between fails it.
        try device.start(toRAM: false)
        #expect(try device.read(0x98) & 1 == 0)
        try device.start(toRAM: true, iova: RawEdu.iova + 4096)
        #expect(try device.read(0x98) & 1 == 0)
        #expect(edu.lastDMAError == nil)
        #expect(Array(memory.bytes[4096..<4160]) == Array(memory.bytes[0..<64]))
        try expectNextClientServed(fixture, leaving: peer)
    }

    /// A hugetlbfs memfd, even sealed, may lose its pages under the server (a hole punched,
    /// the pool used up): it is reached through messages. (Needs no huge page: the server
    /// never maps it.)
    @Test func sealedHugePageMemfdIsReachedThroughMessages() throws {
        let raw = cvfio_memfd_create("dma-hugetlb-test", UInt32(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB))
        guard raw >= 0 else { return }   // no hugetlbfs in this kernel
        let fd = OwnedDescriptor(raw)
        defer { fd.close() }
        try #require(ftruncate(raw, 2 << 20) == 0)
        try #require(cvfio_add_seals(raw, UInt32(CVFIO_F_SEAL_SHRINK | CVFIO_F_SEAL_GROW)) == 0)
        let edu = EduDevice()
        let fixture = try UserServerFixture(model: edu)
        let peer = try RawPeer(path: fixture.path)
        let device = RawEdu(peer: peer)
        try device.enableBusMaster()
        let reply = try #require(device.map(raw, size: 4096))
        try #require(!reply.header.isError, "\(reply.header)")
        try device.start(toRAM: false)
        try device.refuseDMAMessage(toRAM: false)
        #expect(try device.read(0x98) & 1 == 0)
        #expect(edu.lastDMAError?.errnoValue == EFAULT)
        try expectNextClientServed(fixture, leaving: peer)
    }

    /// The memory of a memory-backed region reaches the client as a memfd: sealed, the
    /// client cannot shrink it under the server.
    @Test func regionMemoryCannotBeShrunkByTheClient() throws {
        let fixture = try UserServerFixture(model: BulkMemoryModel())
        let client = try fixture.connect()
        defer { client.close() }
        let (_, descriptor) = try client.regionInfoWithDescriptor(0)
        let fd = try #require(descriptor)
        defer { fd.close() }
        #expect(ftruncate(fd.raw, 0) == -1 && errno == EPERM)
        #expect(ftruncate(fd.raw, off_t(BulkMemoryModel.size) * 2) == -1 && errno == EPERM)
        let bytes = (0..<64).map { UInt8($0) &+ 1 }
        try client.writeBytes(bytes, region: 0, offset: BulkMemoryModel.size - 64)
        #expect(try client.readBytes(region: 0, offset: BulkMemoryModel.size - 64, count: 64) == bytes)
    }
}
