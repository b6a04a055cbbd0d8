import Glibc
import Synchronization
import Testing
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserClient
@testable import VFIOUserServer
@testable import VFIOUserWire
import TestSupport

// DMA_LOGGING_START with `num_ranges` 0, as libvfio-user's sample client sends it, from a
// raw client on a real socket against this library's server.

@Suite struct UserDMALoggingAllTests {
    /// DMA_LOGGING_START with `num_ranges` 0 ("all writes should be logged"), sent as raw
    /// bytes: the server logs all mapped memory (and a mapping made while logging), the
    /// reply repeats the request, and REPORT gives the pages the device wrote anywhere in
    /// it, read-and-clear; pages written before an unmap stay reported; unmapped memory
    /// is not logged.
    @Test func loggingWithNoRangesCoversAllMappedMemory() throws {
        let model = DMAProbeModel()
        let fixture = try UserServerFixture(model: model)
        let peer = try RawPeer(path: fixture.path)
        let memory = try DMABuffer(size: 0x8000)
        let shared = try #require(memory.sharedDescriptor)
        let feature = VFIOUserCommand.deviceFeature.rawValue
        func map(_ iova: UInt64, _ size: UInt64, at offset: UInt64) throws {
            let request = VFIOUserDMAMap(flags: [.read, .write], offset: UInt64(shared.offset) + offset, address: iova, size: size)
            #expect(!(try peer.request(VFIOUserCommand.dmaMap.rawValue, request.encoded, fds: [shared.fd])).header.isError)
        }
        func deviceWrite(_ iova: UInt64, _ bytes: [UInt8]) throws {
            try bytes.withBytes { (raw: UnsafeRawBufferPointer) throws(VFIOError) in try model.context!.dmaWrite(iova: iova, from: raw) }
        }
        /// The bitmap REPORT returns for `[iova, iova + length)` at 4 KiB, or the errno.
        func report(_ iova: UInt64, _ length: UInt64) throws -> Result<[UInt64], VFIOError> {
            let words = Int((length / 0x1000 + 63) / 64)
            let request = u32le(UInt32(32 + 8 * words)) + u32le(0x1_0008) + u64le(iova) + u64le(length) + u64le(0x1000)
            let reply = try peer.request(feature, request)
            if reply.header.isError { return .failure(.errno("report", Int32(reply.header.error))) }
            #expect(Array(reply.payload[0..<32]) == request, "the reply repeats the request's fields")
            #expect(reply.payload.count == 32 + 8 * words)
            return .success((0..<words).map { le64Word(reply.payload, 32 + 8 * $0) })
        }

        try map(0x1_0000, 0x4000, at: 0)
        try map(0x10_0000, 0x2000, at: 0x4000)
        // SET DMA_LOGGING_START: argsz 24, page_size 4096, num_ranges 0, reserved 0.
        let start = u32le(24) + u32le(0x2_0006) + u64le(0x1000) + u32le(0) + u32le(0)
        let started = try peer.request(feature, start)
        #expect(!started.header.isError && started.payload == start, "\(started.header)")

        try deviceWrite(0x1_3000, [1, 2, 3, 4])
        try deviceWrite(0x10_1800, [UInt8](repeating: 0x5A, count: 16))
        try map(0x20_0000, 0x1000, at: 0x6000)   // while logging
        try deviceWrite(0x20_0010, [9])
        #expect(memory.bytes[0x3000] == 1 && memory.bytes[0x5800] == 0x5A && memory.bytes[0x6010] == 9, "the writes land in the mapped memory")

        #expect(try report(0x1_0000, 0x4000).get() == [0b1000])
        #expect(try report(0x10_0000, 0x2000).get() == [0b10])
        #expect(try report(0x20_0000, 0x1000).get() == [0b1])
        #expect(try report(0x1_0000, 0x4000).get() == [0], "read-and-clear")
        // An unmap keeps what was written before it.
        try deviceWrite(0x10_0000, [7])
        #expect(!(try peer.request(VFIOUserCommand.dmaUnmap.rawValue, VFIOUserDMAUnmap(address: 0x10_0000, size: 0x2000).encoded)).header.isError)
        #expect(try report(0x10_0000, 0x2000).get() == [0b1])
        // Memory never mapped is not logged.
        #expect(throws: VFIOError.self) { try report(0x30_0000, 0x1000).get() }
        #expect(throws: VFIOError.self) { try report(0x1_0000, 0x20_0000).get() }
        // A second START is refused while logging. After STOP nothing is logged; a new
        // START covers what is mapped then.
        peer.expectError(try peer.request(feature, start), EBUSY, "a second START")
        #expect(!(try peer.request(feature, u32le(8) + u32le(0x2_0007))).header.isError)
        #expect(throws: VFIOError.self) { try report(0x1_0000, 0x4000).get() }
        try map(0x40_0000, 0x1000, at: 0x7000)
        #expect(try peer.request(feature, start).payload == start)
        try deviceWrite(0x40_0000, [3])
        try deviceWrite(0x1_0000, [3])
        #expect(try report(0x40_0000, 0x1000).get() == [0b1])
        #expect(try report(0x1_0000, 0x4000).get() == [0b1])
        #expect(throws: VFIOError.self) { try report(0x10_0000, 0x2000).get() }
    }
}

private func le64Word(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
}
