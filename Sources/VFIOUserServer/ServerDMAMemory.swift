import CVFIO
import Glibc
import VFIO
import VFIOSystem
import VFIOUserWire

/// One DMA mapping the client made with `VFIO_USER_DMA_MAP` (its range is the table's
/// key): the client's memory mapped here, or reachable only through DMA_READ / DMA_WRITE
/// messages.
struct ServerDMAMapping: @unchecked Sendable {
    let flags: VFIOUserDMAMapFlags
    /// The range's first byte inside `file`; nil for message-based access.
    let base: UnsafeMutableRawPointer?
    /// The mapping of the client's file that `base` points into.
    let file: DMAFileMapping?
}

/// Which file and which access a mapping of a client's descriptor serves: mappings of
/// one file with one protection share one `mmap` (QEMU behind a vIOMMU sends one DMA_MAP
/// per 4 KiB page of one memfd; a mapping each would pass the kernel's `vm.max_map_count`,
/// 65530 by default, before `max_dma_maps`).
struct DMAFileKey: Hashable {
    let device: UInt64
    let inode: UInt64
    let protection: Int32
}

/// A client's file mapped here (the whole file when it could be, else one DMA_MAP's
/// window), unmapped when the last `ServerDMAMapping` into it is gone.
final class DMAFileMapping: @unchecked Sendable {
    let key: DMAFileKey
    let base: UnsafeMutableRawPointer
    /// Where the mapping starts in the file, and its length.
    let fileOffset: UInt64
    let length: Int
    /// Shared by later DMA_MAPs of the same key (a whole-file mapping).
    let shareable: Bool
    /// The session's mappings into it (guarded by the server's `resources`).
    var users = 0

    /// Maps `length` bytes of `fd` from `fileOffset` with `key.protection`.
    /// - Throws: mmap's errno (`EACCES` for a descriptor opened without the access asked,
    ///   `EPERM` for a memfd sealed against writing, `ENOMEM`, `ENODEV`).
    init(fd: Int32, key: DMAFileKey, fileOffset: UInt64, length: Int, shareable: Bool) throws(VFIOError) {
        guard let mapped = mmap(nil, length, key.protection, MAP_SHARED, fd, off_t(fileOffset)), mapped != MAP_FAILED else {
            throw .errno("VFIO_USER_DMA_MAP: mmap of \(length) byte(s) at file offset 0x\(String(fileOffset, radix: 16))", errno)
        }
        self.key = key
        base = mapped
        self.fileOffset = fileOffset
        self.length = length
        self.shareable = shareable
    }

    /// Whether `[offset, offset + size)` of the file lies inside this mapping.
    func covers(offset: UInt64, size: UInt64) -> Bool {
        offset >= fileOffset && offset - fileOffset <= UInt64(length) && size <= UInt64(length) - (offset - fileOffset)
    }

    deinit { _ = try? SystemCall.retrying("munmap") { munmap(base, length) } }
}

/// How the server may reach the memory behind a descriptor passed with DMA_MAP.
enum DMADescriptorAccess {
    /// Directly: a memfd (shmem) sealed against shrinking, of `fileSize` bytes, whose
    /// pages cannot vanish under a mapping.
    case direct(DMAFileKey, fileSize: UInt64)
    /// Only through DMA_READ / DMA_WRITE messages: the client could take the memory away
    /// under a mapping (shrink the file, free its huge pages), and the server's next copy
    /// would die of SIGBUS.
    case messages(reason: String)

    /// Checks the descriptor of a DMA_MAP of `[offset, offset + size)` with `flags`.
    ///
    /// - Throws: `EINVAL` for a descriptor that is neither a file nor a device, or when
    ///   the range passes the end of a regular file (checked for every file, whichever
    ///   way it is reached, so that a client learns of its mistake); `EACCES`
    ///   when the descriptor was opened without the access `flags` ask for; `EPERM` for
    ///   write access to a memfd sealed against writing.
    static func inspect(_ fd: Int32, offset: UInt64, size: UInt64, flags: VFIOUserDMAMapFlags) throws(VFIOError) -> DMADescriptorAccess {
        var info = stat()
        try SystemCall.retrying("VFIO_USER_DMA_MAP: fstat of the descriptor") { fstat(fd, &info) }
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFCHR || type == S_IFBLK else {
            throw .errno("VFIO_USER_DMA_MAP: the descriptor is neither a file nor a device (an eventfd, a socket, a pipe, a directory?)", EINVAL)
        }
        let regular = type == S_IFREG
        if regular, UInt64(info.st_size) < offset + size {
            throw .errno("VFIO_USER_DMA_MAP: offset + size pass the end of the \(info.st_size)-byte file", EINVAL)
        }
        // F_GET_SEALS fails (EINVAL) for a file that takes no seals: not a memfd.
        guard regular, let seals = try? SystemCall.retrying("F_GET_SEALS", { cvfio_get_seals(fd) }) else {
            return .messages(reason: regular ? "not a memfd" : "a device")
        }
        guard seals & CVFIO_F_SEAL_SHRINK != 0 else { return .messages(reason: "a memfd not sealed against shrinking (F_SEAL_SHRINK)") }
        if try SystemCall.retrying("VFIO_USER_DMA_MAP: fstatfs of the descriptor", { cvfio_on_hugetlbfs(fd) }) == 1 {
            return .messages(reason: "a hugetlbfs memfd (its pages can be freed under a mapping)")
        }
        let mode = try SystemCall.retrying("VFIO_USER_DMA_MAP: F_GETFL", { fcntl(fd, F_GETFL) }) & O_ACCMODE
        if mode == O_WRONLY || (flags.contains(.write) && mode != O_RDWR) {
            throw .errno("VFIO_USER_DMA_MAP: the descriptor is not open for the access asked", EACCES)
        }
        if flags.contains(.write), seals & (CVFIO_F_SEAL_WRITE | CVFIO_F_SEAL_FUTURE_WRITE) != 0 {
            throw .errno("VFIO_USER_DMA_MAP: write access to a memfd sealed against writing", EPERM)
        }
        var protection: Int32 = 0
        if flags.contains(.read) { protection |= PROT_READ }
        if flags.contains(.write) { protection |= PROT_WRITE }
        let key = DMAFileKey(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), protection: protection == 0 ? PROT_NONE : protection)
        return .direct(key, fileSize: UInt64(info.st_size))
    }
}

extension ClientResources {
    /// Maps `[offset, offset + size)` of the client's sealed memfd `fd` for a new
    /// DMA_MAP: into the session's mapping of the whole file when there is one that
    /// covers it, else a new mapping of the whole file (or, when that fails or would pass
    /// `limit` bytes mapped in all, of the window alone). Returns the mapping (not yet
    /// counted: `retain` it) and the window's address.
    /// - Throws: `ENOMEM` when even the window would pass `limit`; mmap's errno.
    func fileMapping(_ fd: Int32, key: DMAFileKey, fileSize: UInt64, offset: UInt64, size: UInt64,
                     limit: UInt64) throws(VFIOError) -> (DMAFileMapping, UnsafeMutableRawPointer) {
        if let shared = mappedFiles[key], shared.covers(offset: offset, size: size) {
            return (shared, shared.base + Int(offset - shared.fileOffset))
        }
        let room = limit >= mappedBytes ? limit - mappedBytes : 0
        let file: DMAFileMapping
        if fileSize <= room, fileSize <= UInt64(Int.max),
           let whole = try? DMAFileMapping(fd: fd, key: key, fileOffset: 0, length: Int(fileSize), shareable: true) {
            file = whole
        } else {
            guard size <= room else {
                throw .errno("VFIO_USER_DMA_MAP: \(mappedBytes) byte(s) of the client's files are mapped, \(size) more would pass the limit of \(limit)", ENOMEM)
            }
            file = try DMAFileMapping(fd: fd, key: key, fileOffset: offset, length: Int(size), shareable: false)
        }
        return (file, file.base + Int(offset - file.fileOffset))
    }

    /// Counts a new DMA mapping into `file`; a whole-file mapping becomes the one later
    /// DMA_MAPs of its file share.
    mutating func retain(_ file: DMAFileMapping) {
        if file.users == 0 { mappedBytes += UInt64(file.length) }
        file.users += 1
        if file.shareable, mappedFiles[file.key] !== file { mappedFiles[file.key] = file }
    }

    /// Uncounts a removed DMA mapping into `file`; after the last one the file is no
    /// longer shared (and is unmapped when the removed mappings are released).
    mutating func release(_ file: DMAFileMapping) {
        file.users -= 1
        guard file.users == 0 else { return }
        mappedBytes -= UInt64(file.length)
        if mappedFiles[file.key] === file { mappedFiles[file.key] = nil }
    }
}
