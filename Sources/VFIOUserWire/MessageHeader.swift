import Glibc
import VFIO
import VFIOSystem

/// The commands of the vfio-user protocol (`enum vfio_user_command`), numbered as in
/// QEMU's docs/interop/vfio-user.rst. 14 is the deprecated `VFIO_USER_DIRTY_PAGES`,
/// which the current specification no longer lists (dirty tracking moved to
/// `VFIO_USER_DEVICE_FEATURE`).
public enum VFIOUserCommand: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case version = 1
    case dmaMap = 2
    case dmaUnmap = 3
    case deviceGetInfo = 4
    case deviceGetRegionInfo = 5
    case deviceGetRegionIOFDs = 6
    case deviceGetIRQInfo = 7
    case deviceSetIRQs = 8
    case regionRead = 9
    case regionWrite = 10
    case dmaRead = 11
    case dmaWrite = 12
    case deviceReset = 13
    case dirtyPages = 14
    case regionWriteMulti = 15
    case deviceFeature = 16
    case migDataRead = 17
    case migDataWrite = 18

    /// The C name, `VFIO_USER_…`, used in errors and logs.
    public var cName: String {
        switch self {
        case .version: return "VFIO_USER_VERSION"
        case .dmaMap: return "VFIO_USER_DMA_MAP"
        case .dmaUnmap: return "VFIO_USER_DMA_UNMAP"
        case .deviceGetInfo: return "VFIO_USER_DEVICE_GET_INFO"
        case .deviceGetRegionInfo: return "VFIO_USER_DEVICE_GET_REGION_INFO"
        case .deviceGetRegionIOFDs: return "VFIO_USER_DEVICE_GET_REGION_IO_FDS"
        case .deviceGetIRQInfo: return "VFIO_USER_DEVICE_GET_IRQ_INFO"
        case .deviceSetIRQs: return "VFIO_USER_DEVICE_SET_IRQS"
        case .regionRead: return "VFIO_USER_REGION_READ"
        case .regionWrite: return "VFIO_USER_REGION_WRITE"
        case .dmaRead: return "VFIO_USER_DMA_READ"
        case .dmaWrite: return "VFIO_USER_DMA_WRITE"
        case .deviceReset: return "VFIO_USER_DEVICE_RESET"
        case .dirtyPages: return "VFIO_USER_DIRTY_PAGES"
        case .regionWriteMulti: return "VFIO_USER_REGION_WRITE_MULTI"
        case .deviceFeature: return "VFIO_USER_DEVICE_FEATURE"
        case .migDataRead: return "VFIO_USER_MIG_DATA_READ"
        case .migDataWrite: return "VFIO_USER_MIG_DATA_WRITE"
        }
    }

    public var description: String { cName }

    /// The name for a raw command number, known or not.
    public static func name(_ raw: UInt16) -> String {
        VFIOUserCommand(rawValue: raw)?.cName ?? "command \(raw)"
    }
}

/// The `flags` word of the message header.
public struct VFIOUserMessageFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    // Computed, not stored: a stored static is reached through an accessor and a
    // once-check on every use, and a reply's flags are built per message.

    /// `VFIO_USER_F_TYPE` (bits 0-3): the message type field.
    @inlinable public static var typeMask: VFIOUserMessageFlags { VFIOUserMessageFlags(rawValue: 0xF) }
    /// Type value 1, `VFIO_USER_F_TYPE_REPLY` (type 0 is a command).
    @inlinable public static var reply: VFIOUserMessageFlags { VFIOUserMessageFlags(rawValue: 0x1) }
    /// `VFIO_USER_F_NO_REPLY` (bit 4): the sender wants no reply to this command.
    @inlinable public static var noReply: VFIOUserMessageFlags { VFIOUserMessageFlags(rawValue: 0x10) }
    /// `VFIO_USER_F_ERROR` (bit 5): a reply reporting failure; `error` holds the errno.
    @inlinable public static var error: VFIOUserMessageFlags { VFIOUserMessageFlags(rawValue: 0x20) }
}

/// The 16-byte header every vfio-user message starts with.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 2 | message id (echoed in the reply) |
/// | 2 | 2 | command |
/// | 4 | 4 | message size, header included |
/// | 8 | 4 | flags (type, NO_REPLY, ERROR) |
/// | 12 | 4 | error number (replies with ERROR) |
public struct VFIOUserHeader: Sendable, Hashable, CustomStringConvertible {
    @inlinable public static var size: Int { 16 }

    public var messageID: UInt16
    /// The raw command number (unknown numbers are kept so they can be answered).
    public var command: UInt16
    /// The whole message's size, header included.
    public var messageSize: UInt32
    public var flags: VFIOUserMessageFlags
    public var error: UInt32

    @inlinable
    public init(messageID: UInt16, command: UInt16, messageSize: UInt32, flags: VFIOUserMessageFlags, error: UInt32 = 0) {
        self.messageID = messageID
        self.command = command
        self.messageSize = messageSize
        self.flags = flags
        self.error = error
    }

    /// The type field: 0 for a command, 1 for a reply, anything else is invalid.
    @inlinable public var type: UInt32 { flags.rawValue & 0xF }
    @inlinable public var isReply: Bool { type == 1 }
    @inlinable public var isCommand: Bool { type == 0 }
    @inlinable public var wantsReply: Bool { isCommand && !flags.contains(.noReply) }
    @inlinable public var isError: Bool { flags.contains(.error) }
    /// The payload's size (never negative: decoding refuses a size below the header).
    @inlinable public var payloadSize: Int { Int(messageSize) - Self.size }

    public func encode(into writer: inout ByteWriter) {
        writer.u16(messageID)
        writer.u16(command)
        writer.u32(messageSize)
        writer.u32(flags.rawValue)
        writer.u32(error)
    }

    /// Stores the 16 bytes at the start of `raw` (at least 16 bytes long).
    @inlinable @inline(__always)
    public func store(into raw: UnsafeMutableRawBufferPointer) {
        precondition(raw.count >= Self.size)
        raw.storeBytes(of: messageID.littleEndian, toByteOffset: 0, as: UInt16.self)
        raw.storeBytes(of: command.littleEndian, toByteOffset: 2, as: UInt16.self)
        raw.storeBytes(of: messageSize.littleEndian, toByteOffset: 4, as: UInt32.self)
        raw.storeBytes(of: flags.rawValue.littleEndian, toByteOffset: 8, as: UInt32.self)
        raw.storeBytes(of: error.littleEndian, toByteOffset: 12, as: UInt32.self)
    }

    /// Loads a header from 16 bytes at `raw` (no checks: see `init(decoding:)`).
    @inlinable @inline(__always)
    public init(loading raw: UnsafeRawPointer) {
        self.init(messageID: UInt16(littleEndian: raw.loadUnaligned(as: UInt16.self)),
                  command: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self)),
                  messageSize: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
                  flags: VFIOUserMessageFlags(rawValue: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))),
                  error: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
    }

    public var encoded: [UInt8] {
        var writer = ByteWriter(capacity: Self.size)
        encode(into: &writer)
        return writer.bytes
    }

    /// Decodes a header.
    /// - Throws: `.malformed` for fewer than 16 bytes, a message size below 16, or a type
    ///   other than command and reply.
    public init(decoding bytes: [UInt8]) throws(VFIOError) {
        var reader = ByteReader(bytes, context: "vfio_user_header")
        messageID = try reader.u16()
        command = try reader.u16()
        messageSize = try reader.u32()
        flags = VFIOUserMessageFlags(rawValue: try reader.u32())
        error = try reader.u32()
        if messageSize < UInt32(Self.size) {
            throw .malformed("vfio_user_header", "message size \(messageSize) is smaller than the 16-byte header")
        }
        if type > 1 {
            throw .malformed("vfio_user_header", "message type \(type) is neither command (0) nor reply (1)")
        }
    }

    public var description: String {
        let kind = isReply ? "reply" : "command"
        var text = "\(VFIOUserCommand.name(command)) \(kind) #\(messageID) size \(messageSize)"
        if flags.contains(.noReply) { text += " no-reply" }
        if isError { text += " error \(VFIOError.errnoName(Int32(bitPattern: error)))" }
        return text
    }
}

/// One whole message: header, payload and the descriptors that came with it.
///
/// Descriptors are owned by the message: they are closed when the message is released,
/// unless taken with `takeDescriptors()`.
public final class VFIOUserMessage: @unchecked Sendable {
    public let header: VFIOUserHeader
    public let payload: [UInt8]
    private var descriptors: [Int32]

    public init(header: VFIOUserHeader, payload: [UInt8], descriptors: [Int32] = []) {
        self.header = header
        self.payload = payload
        self.descriptors = descriptors
    }

    /// The descriptors still owned by the message.
    public var fds: [Int32] { descriptors }

    /// Hands the descriptors over to the caller, who must close them.
    public func takeDescriptors() -> [Int32] {
        defer { descriptors = [] }
        return descriptors
    }

    /// Closes the descriptors now.
    public func closeDescriptors() {
        for fd in takeDescriptors() { closeDescriptor(fd) }
    }

    deinit { for fd in descriptors { closeDescriptor(fd) } }

    /// Throws the reply's error when it has the ERROR flag (errno 0 becomes `EIO`).
    public func checkReply(_ operation: String) throws(VFIOError) {
        if header.isError {
            let code = Int32(bitPattern: header.error)
            throw .errno(operation, code == 0 ? EIO : code)
        }
    }
}
