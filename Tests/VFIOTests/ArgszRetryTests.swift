import Glibc
import Testing
import VFIO
import TestSupport

@Suite struct ArgszRetryTests {
    /// A request of `size` bytes whose argsz states `size`.
    func request(_ size: Int) -> [UInt8] {
        var writer = ByteWriter()
        let start = writer.beginArgsz()
        writer.zeros(size - 4)
        writer.finishArgsz(at: start)
        return writer.bytes
    }

    func setArgsz(_ buffer: inout [UInt8], _ value: Int) {
        withUnsafeBytes(of: UInt32(value).littleEndian) { for i in 0..<4 { buffer[i] = $0[i] } }
    }

    @Test func replyThatFitsIsReturnedAfterOneCall() throws {
        var calls = 0
        let reply = try ArgszRetry.run("TEST", request: request(16)) { buffer in
            calls += 1
            buffer[8] = 0x5a
        }
        #expect(calls == 1)
        #expect(reply.count == 16 && reply[8] == 0x5a)
    }

    @Test func largerArgszInASuccessfulReplyRetriesOnceWithThatSize() throws {
        var sizes: [Int] = []
        let reply = try ArgszRetry.run("VFIO_DEVICE_GET_REGION_INFO", request: request(32)) { buffer in
            sizes.append(buffer.count)
            #expect(le32(buffer, 0) == UInt32(buffer.count), "argsz states the offered buffer")
            if buffer.count < 72 { setArgsz(&buffer, 72) } else { buffer[71] = 1 }
        }
        #expect(sizes == [32, 72])
        #expect(reply.count == 72 && reply[71] == 1)
    }

    @Test func enospcWithLargerArgszRetriesOnce() throws {
        var calls = 0
        let reply = try ArgszRetry.run("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", request: request(16)) { (buffer: inout [UInt8]) throws(VFIOError) in
            calls += 1
            if buffer.count < 40 {
                setArgsz(&buffer, 40)
                throw .errno("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", ENOSPC)
            }
        }
        #expect(calls == 2 && reply.count == 40)
    }

    @Test func enospcWithoutLargerArgszIsTheCallersError() {
        #expect(throws: VFIOError.errno("X", ENOSPC)) {
            _ = try ArgszRetry.run("X", request: request(16)) { (_: inout [UInt8]) throws(VFIOError) in
                throw .errno("X", ENOSPC)
            }
        }
    }

    @Test func otherErrorsPassThroughWithoutRetry() {
        var calls = 0
        #expect(throws: VFIOError.errno("X", EINVAL)) {
            _ = try ArgszRetry.run("X", request: request(16)) { (_: inout [UInt8]) throws(VFIOError) in
                calls += 1
                throw .errno("X", EINVAL)
            }
        }
        #expect(calls == 1)
    }

    @Test func aSecondTooSmallIsRefusedNotLoopedOn() {
        var calls = 0
        do {
            _ = try ArgszRetry.run("X", request: request(16)) { buffer in
                calls += 1
                setArgsz(&buffer, buffer.count + 8)
            }
            Issue.record("a peer that keeps growing argsz must be refused")
        } catch {
            #expect(calls == 2)
            #expect(error.description.contains("after the retry"))
        }
    }

    @Test func anAbsurdArgszIsRefusedBeforeAllocating() {
        do {
            _ = try ArgszRetry.run("X", request: request(16)) { buffer in
                setArgsz(&buffer, Int(UInt32.max))
            }
            Issue.record("a 4 GiB argsz must be refused")
        } catch {
            guard case .malformed(let why) = error.reason else {
                Issue.record("expected .malformed, got \(error)")
                return
            }
            #expect(why.contains("limit"))
        }
    }
}

@Suite struct ByteCodecTests {
    @Test func integersAreLittleEndianAtTheirOffsets() throws {
        var writer = ByteWriter()
        writer.u8(0x11)
        writer.zeros(1)
        writer.u16(0x2233)
        writer.u32(0x4455_6677)
        writer.u64(0x8899_AABB_CCDD_EEFF)
        writer.i32(-2)
        #expect(writer.bytes == [0x11, 0, 0x33, 0x22, 0x77, 0x66, 0x55, 0x44,
                                 0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99, 0x88,
                                 0xFE, 0xFF, 0xFF, 0xFF])
        var reader = ByteReader(writer.bytes, context: "t")
        #expect(try reader.u8() == 0x11)
        try reader.skip(1)
        #expect(try reader.u16() == 0x2233)
        #expect(try reader.u32() == 0x4455_6677)
        #expect(try reader.u64() == 0x8899_AABB_CCDD_EEFF)
        #expect(try reader.i32() == -2)
        #expect(reader.remaining == 0)
    }

    @Test func shortReadsNameTheStructAndTheOffset() {
        var reader = ByteReader([1, 2, 3], context: "vfio_irq_info")
        do {
            _ = try reader.u32()
            Issue.record("a 3-byte buffer has no u32")
        } catch {
            #expect(error.operation == "vfio_irq_info")
            #expect(error.description.contains("offset 0"))
        }
    }

    @Test func argszBelowTheStructIsRefused() {
        var reader = ByteReader([8, 0, 0, 0], context: "vfio_region_info")
        #expect(throws: VFIOError.self) { _ = try reader.argsz(fixedSize: 32) }
    }

    @Test func errorDescriptionsCarryTheErrnoName() {
        let error = VFIOError.errno("VFIO_GROUP_SET_CONTAINER", EBUSY)
        #expect(error.description.hasPrefix("VFIO_GROUP_SET_CONTAINER: EBUSY (\(EBUSY))"))
        #expect(error.errnoValue == EBUSY)
        #expect(VFIOError.invalidArgument("x", "y").errnoValue == nil)
    }
}

@Suite struct ArgszRetryHotResetTests {
    /// The kernel answers a too-small VFIO_DEVICE_GET_PCI_HOT_RESET_INFO with ENOSPC and
    /// `count` set, leaving `argsz` alone; the retry sizes the buffer from `count`.
    @Test func hotResetInfoRetriesFromCount() throws {
        let devices = [
            PCIDependentDevice(groupID: 7, segment: 0, bus: 1, devfn: 0x08),
            PCIDependentDevice(groupID: 9, segment: 0, bus: 1, devfn: 0x10),
        ]
        let full = PCIHotResetInfo(flags: [], devices: devices).encoded()
        var calls = 0
        let reply = try ArgszRetry.run(
            "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO",
            request: PCIHotResetInfo(flags: [], devices: []).encoded(),
            neededSize: PCIHotResetInfo.neededSize
        ) { (buffer: inout [UInt8]) throws(VFIOError) in
            calls += 1
            if Int(le32(buffer, 0)) < full.count {
                buffer[8] = UInt8(devices.count)   // count, argsz untouched
                throw .errno("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", ENOSPC)
            }
            buffer = full
        }
        #expect(calls == 2)
        guard case .complete(let info) = try PCIHotResetInfo.reply(reply) else {
            Issue.record("the retried reply is complete")
            return
        }
        #expect(info.devices == devices)
    }
}
