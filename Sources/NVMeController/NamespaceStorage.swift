import Glibc
import VFIO
import VFIODeviceKit

/// Where a namespace's blocks live. Called from the controller's one I/O worker (and from
/// migration while the worker is idle), never concurrently with itself.
public protocol NamespaceStorage: AnyObject, Sendable {
    /// The logical block size in bytes (512 or 4096).
    var blockSize: Int { get }
    /// The number of logical blocks.
    var blockCount: UInt64 { get }
    /// A stable identity for Identify (NGUID/EUI64 are derived from it) and migration: a
    /// destination whose namespace has another identity refuses the state.
    var identity: String { get }
    /// Reads `buffer.count` bytes at byte `offset` (inside the namespace).
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError)
    /// Writes `buffer` at byte `offset`; with `durable`, the bytes reach stable storage
    /// before this returns (the volatile write cache is off, or FUA).
    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, durable: Bool) throws(VFIOError)
    /// Makes every completed write durable (Flush with the write cache on).
    func flush() throws(VFIOError)
    /// Makes `[offset, offset + count)` read as zeroes (Write Zeroes, deallocate).
    func zero(at offset: UInt64, count: UInt64, durable: Bool) throws(VFIOError)
}

/// A namespace in anonymous memory (pages appear as they are first written; never-written
/// blocks read as zeroes). Not durable: `flush` does nothing.
public final class RAMNamespaceStorage: NamespaceStorage, @unchecked Sendable {
    public let blockSize: Int
    public let blockCount: UInt64
    public let identity: String
    private let base: UnsafeMutableRawPointer
    private let size: Int

    /// - Throws: `EINVAL` for a block size other than 512/4096 or a zero size; `ENOMEM`.
    public init(bytes: Int, blockSize: Int = 512, identity: String = "ram") throws(VFIOError) {
        guard blockSize == 512 || blockSize == 4096 else { throw .invalidArgument("RAM namespace", "LBA size \(blockSize) is not 512 or 4096") }
        guard bytes >= blockSize else { throw .invalidArgument("RAM namespace", "\(bytes) bytes hold no \(blockSize)-byte block") }
        size = bytes / blockSize * blockSize
        let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let mapped, mapped != MAP_FAILED else { throw .errno("mmap (RAM namespace)", errno) }
        base = mapped
        self.blockSize = blockSize
        blockCount = UInt64(size / blockSize)
        self.identity = identity
    }

    deinit { munmap(base, size) }

    private func check(_ offset: UInt64, _ count: Int) throws(VFIOError) {
        guard offset <= UInt64(size), UInt64(count) <= UInt64(size) - offset else {
            throw .errno("RAM namespace access at \(offset) (+\(count))", DeviceErrno.EINVAL)
        }
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        try check(offset, buffer.count)
        if buffer.count > 0 { buffer.baseAddress!.copyMemory(from: base + Int(offset), byteCount: buffer.count) }
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, durable: Bool) throws(VFIOError) {
        try check(offset, buffer.count)
        if buffer.count > 0 { (base + Int(offset)).copyMemory(from: buffer.baseAddress!, byteCount: buffer.count) }
    }

    public func flush() throws(VFIOError) {}

    public func zero(at offset: UInt64, count: UInt64, durable: Bool) throws(VFIOError) {
        guard count <= UInt64(Int.max) else { throw .errno("RAM namespace zero", DeviceErrno.EINVAL) }
        try check(offset, Int(count))
        // Whole pages go back to the system (they read as zeroes again); the rest is cleared.
        let page = 4096
        var start = Int(offset)
        let end = Int(offset) + Int(count)
        let firstPage = (start + page - 1) / page * page
        let lastPage = end / page * page
        if firstPage < lastPage {
            memset(base + start, 0, firstPage - start)
            _ = madvise(base + firstPage, lastPage - firstPage, MADV_DONTNEED)
            start = lastPage
        }
        if start < end { memset(base + start, 0, end - start) }
    }
}

/// A namespace on a regular file or a block device, through `pread`/`pwrite`; durability
/// by `fdatasync`. The size is the file's (rounded down to whole blocks) or the device's
/// (`BLKGETSIZE64`).
public final class FileNamespaceStorage: NamespaceStorage, @unchecked Sendable {
    public let blockSize: Int
    public let blockCount: UInt64
    public let identity: String
    private let fd: Int32

    /// - Throws: the `open`/`fstat`/`ioctl` errno naming `path`; `EINVAL` for a block
    ///   size other than 512/4096 or a file smaller than one block.
    public init(path: String, blockSize: Int) throws(VFIOError) {
        guard blockSize == 512 || blockSize == 4096 else { throw .invalidArgument("--lba-size", "\(blockSize) is not 512 or 4096") }
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .errno("open \(path)", errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw .errno("fstat \(path)", code)
        }
        var bytes: UInt64
        if info.st_mode & S_IFMT == S_IFBLK {
            bytes = 0
            // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
            let request: UInt = 0x8008_1272
            guard ioctl(fd, request, &bytes) == 0 else {
                let code = errno
                close(fd)
                throw .errno("BLKGETSIZE64 \(path)", code)
            }
        } else if info.st_mode & S_IFMT == S_IFREG {
            bytes = UInt64(info.st_size)
        } else {
            close(fd)
            throw .invalidArgument("--backing", "\(path) is neither a regular file nor a block device")
        }
        guard bytes >= UInt64(blockSize) else {
            close(fd)
            throw .invalidArgument("--backing", "\(path) has \(bytes) bytes, less than one \(blockSize)-byte block")
        }
        self.fd = fd
        self.blockSize = blockSize
        blockCount = bytes / UInt64(blockSize)
        identity = "file:\(info.st_dev):\(info.st_ino)"
    }

    deinit { close(fd) }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(VFIOError) {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .errno("pread", errno)
            }
            if n == 0 {  // past the end of a file that shrank: zeroes
                memset(buffer.baseAddress! + done, 0, buffer.count - done)
                return
            }
            done += n
        }
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer, durable: Bool) throws(VFIOError) {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .errno("pwrite", errno)
            }
            done += n
        }
        if durable { try flush() }
    }

    public func flush() throws(VFIOError) {
        while fdatasync(fd) != 0 {
            if errno != EINTR { throw .errno("fdatasync", errno) }
        }
    }

    public func zero(at offset: UInt64, count: UInt64, durable: Bool) throws(VFIOError) {
        // Written as zeroes, 1 MiB at a time (no hole punching: the file keeps its blocks).
        let chunk = 1 << 20
        let zeroes = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { zeroes.deallocate() }
        zeroes.initializeMemory(as: UInt8.self, repeating: 0)
        var done: UInt64 = 0
        while done < count {
            let n = Int(min(UInt64(chunk), count - done))
            try write(at: offset + done, from: UnsafeRawBufferPointer(rebasing: zeroes[0..<n]), durable: false)
            done += UInt64(n)
        }
        if durable { try flush() }
    }
}
