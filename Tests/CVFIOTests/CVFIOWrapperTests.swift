import CVFIO
import Glibc
import Testing
import TestSupport

/// The CVFIO syscall wrappers against the real kernel (no VFIO device needed).
@Suite struct CVFIOWrapperTests {
    // MARK: helpers

    static func writeCounter(_ fd: Int32, _ value: UInt64) -> Int {
        var v = value
        return withUnsafeBytes(of: &v) { write(fd, $0.baseAddress, 8) }
    }

    static func readCounter(_ fd: Int32) -> UInt64? {
        var v: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &v) { read(fd, $0.baseAddress, 8) }
        return n == 8 ? v : nil
    }

    static func socketPair() throws -> (Int32, Int32) {
        var pair: [Int32] = [-1, -1]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair)
        try #require(rc == 0, "socketpair failed, errno \(errno)")
        return (pair[0], pair[1])
    }

    static func eventfds(_ count: Int) throws -> [Int32] {
        try (0..<count).map { _ in
            let fd = cvfio_eventfd(0, Int32(EFD_CLOEXEC))
            try #require(fd >= 0, "eventfd failed, errno \(cvfio_errno())")
            return fd
        }
    }

    /// Sends `payload` and `fds` in one message.
    static func send(_ sock: Int32, _ payload: [UInt8], _ fds: [Int32]) -> Int {
        var payload = payload
        return payload.withUnsafeMutableBytes { bytes in
            var iov = iovec(iov_base: bytes.baseAddress, iov_len: bytes.count)
            return fds.withUnsafeBufferPointer { fdBuffer in
                cvfio_sendmsg_fds(sock, &iov, 1, fdBuffer.baseAddress, Int32(fds.count), 0)
            }
        }
    }

    struct Received {
        var bytes: [UInt8]
        var fds: [Int32]
        var truncated: Bool
    }

    /// Receives up to `capacity` bytes and at most `maxFds` descriptors.
    static func receive(_ sock: Int32, capacity: Int, maxFds: Int) throws -> Received {
        var bytes = [UInt8](repeating: 0, count: capacity)
        var fds = [Int32](repeating: -1, count: max(maxFds, 1))
        var nfds: Int32 = -1
        var truncated: Int32 = -1
        let n = bytes.withUnsafeMutableBytes { buffer in
            var iov = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
            return fds.withUnsafeMutableBufferPointer { fdBuffer in
                cvfio_recvmsg_fds(sock, &iov, 1, fdBuffer.baseAddress, Int32(maxFds), &nfds, &truncated, 0)
            }
        }
        try #require(n >= 0, "recvmsg failed, errno \(cvfio_errno())")
        return Received(bytes: Array(bytes[..<n]), fds: Array(fds[..<Int(nfds)]), truncated: truncated != 0)
    }

    // MARK: eventfd, memfd, ioctl

    @Test func eventfdCountsWhatIsWritten() throws {
        let fd = try #require(Self.eventfds(1).first)
        defer { close(fd) }
        #expect(Self.writeCounter(fd, 3) == 8)
        #expect(Self.readCounter(fd) == 3)
    }

    @Test func memfdIsMappableAndReadable() throws {
        let fd = cvfio_memfd_create("cvfio-test", UInt32(MFD_CLOEXEC))
        try #require(fd >= 0, "memfd_create failed, errno \(cvfio_errno())")
        defer { close(fd) }
        let size = 4096
        #expect(ftruncate(fd, off_t(size)) == 0)
        let mapping = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        try #require(mapping != MAP_FAILED, "mmap failed, errno \(errno)")
        defer { munmap(mapping, size) }
        let pattern: [UInt8] = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let bytes = mapping!.bindMemory(to: UInt8.self, capacity: size)
        for (i, b) in pattern.enumerated() { bytes[100 + i] = b }
        var readBack = [UInt8](repeating: 0, count: pattern.count)
        let n = readBack.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 100) }
        #expect(n == pattern.count)
        #expect(readBack == pattern)
    }

    @Test func ioctlOnNonDeviceFailsWithENOTTY() throws {
        let fd = try #require(Self.eventfds(1).first)
        defer { close(fd) }
        var info = vfio_device_info()
        info.argsz = UInt32(MemoryLayout<vfio_device_info>.size)
        let rc = cvfio_ioctl_ptr(fd, CVFIO_VFIO_DEVICE_GET_INFO, &info)
        let err = cvfio_errno()
        #expect(rc == -1)
        #expect(err == ENOTTY)
        let rcInt = cvfio_ioctl_int(fd, CVFIO_VFIO_CHECK_EXTENSION, 1)
        let errInt = cvfio_errno()
        #expect(rcInt == -1)
        #expect(errInt == ENOTTY)
    }

    // MARK: SCM_RIGHTS

    @Test func passesDescriptorsOverSocketPair() throws {
        let (a, b) = try Self.socketPair()
        defer { close(a); close(b) }
        let originals = try Self.eventfds(3)
        defer { originals.forEach { close($0) } }
        let payload: [UInt8] = Array("three eventfds".utf8)
        #expect(Self.send(a, payload, originals) == payload.count)

        let got = try Self.receive(b, capacity: 64, maxFds: 8)
        defer { got.fds.forEach { close($0) } }
        #expect(got.bytes == payload)
        #expect(got.truncated == false)
        try #require(got.fds.count == 3)
        for (i, (received, original)) in zip(got.fds, originals).enumerated() {
            #expect(received >= 0 && !originals.contains(received), "descriptor \(i) is not new")
            #expect(fcntl(received, F_GETFD) & FD_CLOEXEC != 0, "descriptor \(i) lacks close-on-exec")
            // Same open file: what goes in through the copy comes out of the original.
            let value = UInt64(10 + i)
            #expect(Self.writeCounter(received, value) == 8)
            #expect(Self.readCounter(original) == value)
        }
    }

    /// Only the descriptors that fit are installed: each of the others refers to nothing
    /// in this process but its original (the eventfds, told apart by their ids).
    @Test func excessDescriptorsAreClosedNotLeaked() throws {
        let (a, b) = try Self.socketPair()
        defer { close(a); close(b) }
        let originals = try Self.eventfds(5)
        defer { originals.forEach { close($0) } }
        let tracked = try originals.enumerated().map { try TrackedFile($1, name: "eventfd \($0)") }
        #expect(Self.send(a, [0x5A], originals) == 1)
        let got = try Self.receive(b, capacity: 8, maxFds: 2)
        #expect(got.bytes == [0x5A])
        #expect(got.truncated == true)
        try #require(got.fds.count == 2)
        for (received, original) in zip(got.fds, originals) {
            #expect(Self.writeCounter(received, 7) == 8)
            #expect(Self.readCounter(original) == 7)
        }
        for (i, file) in tracked.enumerated() {
            #expect(file.descriptors(besides: originals) == (i < 2 ? [got.fds[i]] : []), "\(file.name)")
        }
        got.fds.forEach { close($0) }
        for file in tracked { #expect(file.stillReferenced(besides: originals) == nil) }
    }

    @Test func receivingWithNoRoomForDescriptorsClosesThemAll() throws {
        let (a, b) = try Self.socketPair()
        defer { close(a); close(b) }
        let originals = try Self.eventfds(2)
        defer { originals.forEach { close($0) } }
        let tracked = try originals.enumerated().map { try TrackedFile($1, name: "eventfd \($0)") }
        #expect(Self.send(a, [1, 2, 3], originals) == 3)
        let got = try Self.receive(b, capacity: 8, maxFds: 0)
        #expect(got.bytes == [1, 2, 3])
        #expect(got.fds.isEmpty)
        #expect(got.truncated == true)
        for file in tracked { #expect(file.stillReferenced(besides: originals) == nil) }
    }

    @Test func sendingTooManyDescriptorsFailsWithEINVAL() throws {
        let (a, b) = try Self.socketPair()
        defer { close(a); close(b) }
        // The wrapper must refuse before looking at the descriptors, so -1s are fine here.
        let fds = [Int32](repeating: -1, count: Int(CVFIO_MAX_FDS) + 1)
        let rc = Self.send(a, [0], fds)
        let err = cvfio_errno()
        #expect(rc == -1)
        #expect(err == EINVAL)
    }

    @Test func sendingDescriptorsWithoutPayloadFailsWithEINVAL() throws {
        let (a, b) = try Self.socketPair()
        defer { close(a); close(b) }
        let fds = try Self.eventfds(1)
        defer { fds.forEach { close($0) } }
        let rc = Self.send(a, [], fds)
        let err = cvfio_errno()
        #expect(rc == -1)
        #expect(err == EINVAL)
    }

    @Test func plainMessageWithoutDescriptors() throws {
        let (a, b) = try Self.socketPair()
        defer { close(a); close(b) }
        #expect(Self.send(a, [9, 8, 7], []) == 3)
        let got = try Self.receive(b, capacity: 8, maxFds: 4)
        #expect(got.bytes == [9, 8, 7])
        #expect(got.fds.isEmpty)
        #expect(got.truncated == false)
    }
}
