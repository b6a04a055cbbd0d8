// libFuzzer target: the vfio-user server's message decoding and dispatch.
//
// One input is one client's byte stream. A fresh `VFIOUserServer` hosting `EduDevice`
// gets the server end of a socket pair; the input is written into the client end (cut at
// each header's size field into one sendmsg per message, so that descriptors can ride
// along), the client end is shut for writing, and the server's own `serveOneMessage` (the
// code its serving thread runs for every message: receive, decode, dispatch, reply) is
// called on this thread, which stands for the serving thread, until the stream ends,
// with the model's `afterReply` work (edu DMA) run in between by `runQueuedWork` on the
// same thread: no work thread, so the run is deterministic, and DMA that would go through
// DMA_READ / DMA_WRITE messages fails at once with EDEADLK (as from the serving thread)
// instead of waiting for a reply nobody sends. Replies in the input go where replies go
// (none is awaited: they are dropped). The server's replies are drained and dropped; the
// session ends as a disconnect ends it (`endSession`).
//
// Descriptors: a message's header `error` field (unused in commands) asks for
// `error & 7` descriptors to be sent with it: memfds of 16 KiB for DMA_MAP (sealed against
// shrinking and growing, which the server maps, unless `error & 8`: unsealed, which it
// reaches through DMA messages) or when `error & 8`, eventfds otherwise. Every 64th input the open descriptors of the process
// are counted before and after: any difference is a leak and aborts.
//
// The server is configured small so that limits are reachable: max_msg_fds 4,
// max_data_xfer_size 16 KiB, max_dma_maps 8.
import CVFIO
import Glibc
import VFIO
import VFIODeviceKit
import VFIOSystem
@testable import VFIOUserServer
import VFIOUserWire

let configuration = VFIOUserServer.Configuration(capabilities: VFIOUserCapabilities(
    maxMessageFDs: 4, maxDataTransferSize: 16 << 10, maxDMAMaps: 8,
    pageSizes: UInt64(SystemCall.pageSize), writeMultiple: true))

func le16(_ bytes: UnsafeRawBufferPointer, _ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
func le32(_ bytes: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
    UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
}

func makeDescriptor(memfd: Bool, sealed: Bool) -> Int32 {
    if memfd {
        let fd = cvfio_memfd_create("fuzz-dma", UInt32(MFD_CLOEXEC | MFD_ALLOW_SEALING))
        precondition(fd >= 0 && ftruncate(fd, 16 << 10) == 0, "memfd: errno \(errno)")
        precondition(!sealed || cvfio_add_seals(fd, UInt32(CVFIO_F_SEAL_SHRINK | CVFIO_F_SEAL_GROW)) == 0, "F_ADD_SEALS: errno \(errno)")
        return fd
    }
    let fd = cvfio_eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
    precondition(fd >= 0, "eventfd: errno \(errno)")
    return fd
}

/// Writes the input into `fd`, one sendmsg per message; stops where the socket is full.
func writeStream(_ input: UnsafeRawBufferPointer, to fd: Int32) {
    var at = 0
    while at < input.count {
        let rest = input.count - at
        var length = rest
        var fds: [Int32] = []
        if rest >= VFIOUserHeader.size {
            let size = Int(le32(input, at + 4))
            length = min(max(size, VFIOUserHeader.size), rest)
            let command = le16(input, at + 2)
            let flags = le32(input, at + 8)
            let error = le32(input, at + 12)
            if flags & 0xF == 0 {
                for _ in 0..<Int(error & 7) {
                    let dmaMap = command == VFIOUserCommand.dmaMap.rawValue
                    fds.append(makeDescriptor(memfd: dmaMap || error & 8 != 0, sealed: dmaMap && error & 8 == 0))
                }
            }
        }
        var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: input.baseAddress! + at), iov_len: length)
        let sent = fds.withUnsafeBufferPointer { cvfio_sendmsg_fds(fd, &iov, 1, $0.baseAddress, Int32($0.count), 0) }
        for f in fds { close(f) }   // in flight, the kernel holds them; the server closes its copies
        if sent <= 0 { return }
        at += sent
        if sent < length { return }
    }
}

/// Reads and drops whatever the server sent (descriptors with it are dropped by the kernel).
func drain(_ fd: Int32) {
    while recv(fd, scratch, 1 << 16, Int32(MSG_DONTWAIT)) > 0 {}
}
nonisolated(unsafe) let scratch = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)

func openDescriptors() -> Int {
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while readdir(dir) != nil { count += 1 }
    return count
}

func serve(_ input: UnsafeRawBufferPointer) {
    let server: VFIOUserServer
    do { server = try VFIOUserServer(model: EduDevice(), configuration: configuration) } catch { fatalError("server: \(error)") }
    var pair: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &pair) == 0 else {
        fatalError("socketpair: errno \(errno)")
    }
    // Room for the whole input and for any one reply (a non-blocking send that finds the
    // socket full fails, and so ends the session, instead of hanging the fuzzer).
    var room: Int32 = 1 << 20
    for fd in pair { setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &room, socklen_t(MemoryLayout<Int32>.size)) }
    let client = pair[1]
    writeStream(input, to: client)
    shutdown(client, Int32(SHUT_WR))
    let socket = VFIOUserSocket(adopting: pair[0])
    server.threads.withLock { $0.serving = pthread_self() }
    guard server.beginSession(socket) != nil else { fatalError("the server refused the session") }
    // Each message takes at least 16 bytes of the input, so this ends.
    while true {
        do {
            if try !server.serveOneMessage(socket) { break }
        } catch {
            break
        }
        server.runQueuedWork()
        drain(client)
    }
    server.runQueuedWork()
    server.endSession(socket)
    close(client)
}

nonisolated(unsafe) var iterations = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    iterations += 1
    if iterations % 64 == 0 {
        let before = openDescriptors()
        serve(input)
        let after = openDescriptors()
        if after != before {
            fatalError("descriptor leak: \(before) open before this input, \(after) after")
        }
    } else {
        serve(input)
    }
    return 0
}
