import CVFIO
import Glibc
import Testing
import VFIO
import VFIOSystem
import TestSupport

@Suite struct SystemEventFDTests {
    @Test func signalThenWaitReturnsTheCountAndResets() async throws {
        let event = try EventFD()
        try event.signal(2)
        try event.signal(3)
        #expect(try await event.wait() == 5)
        #expect(try event.consume() == nil)
    }

    @Test func waitSuspendsUntilAnotherTaskSignals() async throws {
        let event = try EventFD()
        async let value = event.wait()
        // Suspended: the readiness poller watches the descriptor for it.
        try #require(await poll(for: .seconds(10)) { isRegisteredWithAnEpoll(event.fd) }, "the wait never went to the poller")
        try event.signal()
        #expect(try await value == 1)
    }

    @Test func waitTimesOutWithETIMEDOUT() async throws {
        let event = try EventFD()
        do {
            _ = try await event.wait(timeout: .milliseconds(30))
            Issue.record("nothing signalled, yet the wait returned")
        } catch let error as VFIOError {
            #expect(error.errnoValue == ETIMEDOUT)
        }
        // The poller is free for the descriptor again.
        try event.signal()
        #expect(try await event.wait(timeout: .seconds(5)) == 1)
    }

    @Test func cancellingAWaitEndsIt() async throws {
        let event = try EventFD()
        let task = Task { try await event.wait() }
        try #require(await poll(for: .seconds(10)) { isRegisteredWithAnEpoll(event.fd) }, "the wait never went to the poller")
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
    }

    @Test func manyEventFDsReleaseTheirDescriptors() throws {
        var tracked: [TrackedFile] = []
        for i in 0..<200 {
            let event = try EventFD()
            try event.signal()
            let file = try TrackedFile(event.fd, name: "eventfd \(i)")
            #expect(file.descriptors() == [event.fd], "the open eventfd is found, and only it")
            tracked.append(file)
        }
        for file in tracked { #expect(file.stillReferenced() == nil) }
    }
}

@Suite struct SystemMemoryTests {
    @Test func sharedDMABufferIsVisibleThroughItsDescriptor() throws {
        let memfd: TrackedFile
        do {
            let buffer = try DMABuffer(size: 5000)
            #expect(buffer.size == 2 * SystemCall.pageSize)
            #expect(Int(bitPattern: buffer.baseAddress) % SystemCall.pageSize == 0)
            buffer.bytes.storeBytes(of: UInt32(0xfeed_beef), toByteOffset: 4096, as: UInt32.self)
            let shared = try #require(buffer.sharedDescriptor)
            memfd = try TrackedFile(shared.fd, name: "the buffer's memfd")
            #expect(memfd.mappings.count == 1, "the buffer's own mapping")
            let view = try DeviceMapping(fd: shared.fd, fileOffset: 4096, size: 4096, regionOffset: 4096)
            #expect(view.load(UInt32.self, at: 0) == 0xfeed_beef)
            view.store(UInt16(0x1234), at: 8)
            #expect(buffer.bytes.load(fromByteOffset: 4096 + 8, as: UInt16.self) == 0x1234)
        }
        #expect(memfd.stillReferenced() == nil, "the memfd is closed and unmapped with the buffer and the view")
    }

    /// The memfd a peer gets cannot be shrunk or grown (a server maps it; a shrunk one
    /// would kill the server with SIGBUS, so servers map only sealed ones), nor resealed.
    @Test func sharedDMABufferIsSealed() throws {
        let buffer = try DMABuffer(size: 8192)
        let fd = try #require(buffer.sharedDescriptor).fd
        let seals = cvfio_get_seals(fd)
        #expect(seals == CVFIO_F_SEAL_SHRINK | CVFIO_F_SEAL_GROW | CVFIO_F_SEAL_SEAL, "seals 0x\(String(seals, radix: 16))")
        #expect(ftruncate(fd, 0) == -1 && errno == EPERM)
        #expect(ftruncate(fd, 16384) == -1 && errno == EPERM)
        #expect(cvfio_add_seals(fd, UInt32(CVFIO_F_SEAL_FUTURE_WRITE)) == -1 && errno == EPERM)
        buffer.bytes[8191] = 7
        #expect(buffer.bytes[8191] == 7)
    }

    @Test func anonymousBufferHasNoSharedDescriptor() throws {
        let buffer = try DMABuffer(size: 1, backing: .anonymous)
        #expect(buffer.sharedDescriptor == nil)
        #expect(buffer.size == SystemCall.pageSize)
    }

    @Test func badSizesAndOffsetsAreRefusedWithTheirCause() throws {
        #expect(throws: VFIOError.invalidArgument("DMABuffer", "size must be positive, got 0")) {
            _ = try DMABuffer(size: 0)
        }
        let buffer = try DMABuffer(size: 4096)
        do {
            _ = try DeviceMapping(fd: buffer.sharedDescriptor!.fd, fileOffset: 100, size: 4096, regionOffset: 0)
            Issue.record("a misaligned offset was mapped")
        } catch {
            #expect(error.description.contains("not page-aligned"))
        }
        #expect(throws: VFIOError.self) {
            _ = try DeviceMapping(fd: -1, fileOffset: 0, size: 4096, regionOffset: 0)
        }
    }
}
