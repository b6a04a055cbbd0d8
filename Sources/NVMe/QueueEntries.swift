/// A 64-byte submission queue entry (NVMe 1.4, figure 105): CDW0 (opcode 7:0, FUSE 9:8,
/// PSDT 15:14, CID 31:16), NSID, CDW2-3, MPTR, the data pointer (PRP1, PRP2), CDW10-15.
public struct SubmissionQueueEntry: Sendable, Hashable {
    public static let size = 64

    public var opcode: UInt8
    /// FUSE, bits 9:8 of CDW0.
    public var fuse: UInt8
    /// PSDT, bits 15:14 of CDW0: 0 means PRPs (the only kind this module describes).
    public var dataTransfer: UInt8
    public var commandID: UInt16
    public var namespaceID: UInt32
    public var cdw2: UInt32
    public var cdw3: UInt32
    public var metadataPointer: UInt64
    public var prp1: UInt64
    public var prp2: UInt64
    public var cdw10: UInt32
    public var cdw11: UInt32
    public var cdw12: UInt32
    public var cdw13: UInt32
    public var cdw14: UInt32
    public var cdw15: UInt32

    public init(opcode: UInt8, commandID: UInt16, namespaceID: UInt32 = 0, prp1: UInt64 = 0, prp2: UInt64 = 0,
                cdw10: UInt32 = 0, cdw11: UInt32 = 0, cdw12: UInt32 = 0, cdw13: UInt32 = 0, cdw14: UInt32 = 0, cdw15: UInt32 = 0,
                fuse: UInt8 = 0, dataTransfer: UInt8 = 0, cdw2: UInt32 = 0, cdw3: UInt32 = 0, metadataPointer: UInt64 = 0) {
        self.opcode = opcode
        self.fuse = fuse
        self.dataTransfer = dataTransfer
        self.commandID = commandID
        self.namespaceID = namespaceID
        self.cdw2 = cdw2
        self.cdw3 = cdw3
        self.metadataPointer = metadataPointer
        self.prp1 = prp1
        self.prp2 = prp2
        self.cdw10 = cdw10
        self.cdw11 = cdw11
        self.cdw12 = cdw12
        self.cdw13 = cdw13
        self.cdw14 = cdw14
        self.cdw15 = cdw15
    }

    /// Decodes the first 64 bytes of `bytes`.
    /// - Precondition: `bytes.count >= 64`.
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count >= Self.size, "a submission queue entry is 64 bytes")
        let cdw0 = UInt32(bytes.le(0, 4))
        opcode = UInt8(truncatingIfNeeded: cdw0)
        fuse = UInt8(cdw0 >> 8 & 0x3)
        dataTransfer = UInt8(cdw0 >> 14 & 0x3)
        commandID = UInt16(cdw0 >> 16)
        namespaceID = UInt32(bytes.le(4, 4))
        cdw2 = UInt32(bytes.le(8, 4))
        cdw3 = UInt32(bytes.le(12, 4))
        metadataPointer = bytes.le(16, 8)
        prp1 = bytes.le(24, 8)
        prp2 = bytes.le(32, 8)
        cdw10 = UInt32(bytes.le(40, 4))
        cdw11 = UInt32(bytes.le(44, 4))
        cdw12 = UInt32(bytes.le(48, 4))
        cdw13 = UInt32(bytes.le(52, 4))
        cdw14 = UInt32(bytes.le(56, 4))
        cdw15 = UInt32(bytes.le(60, 4))
    }

    /// The 64 bytes.
    public var encoded: [UInt8] {
        var b = [UInt8](repeating: 0, count: Self.size)
        b.withUnsafeMutableBytes { store(to: $0.baseAddress!) }
        return b
    }

    /// Stores the 64 bytes at `address` (little-endian, no alignment needed): a queue
    /// slot written without an intermediate array.
    public func store(to address: UnsafeMutableRawPointer) {
        let cdw0 = UInt32(opcode) | UInt32(fuse & 0x3) << 8 | UInt32(dataTransfer & 0x3) << 14 | UInt32(commandID) << 16
        address.storeBytes(of: cdw0.littleEndian, toByteOffset: 0, as: UInt32.self)
        address.storeBytes(of: namespaceID.littleEndian, toByteOffset: 4, as: UInt32.self)
        address.storeBytes(of: cdw2.littleEndian, toByteOffset: 8, as: UInt32.self)
        address.storeBytes(of: cdw3.littleEndian, toByteOffset: 12, as: UInt32.self)
        address.storeBytes(of: metadataPointer.littleEndian, toByteOffset: 16, as: UInt64.self)
        address.storeBytes(of: prp1.littleEndian, toByteOffset: 24, as: UInt64.self)
        address.storeBytes(of: prp2.littleEndian, toByteOffset: 32, as: UInt64.self)
        address.storeBytes(of: cdw10.littleEndian, toByteOffset: 40, as: UInt32.self)
        address.storeBytes(of: cdw11.littleEndian, toByteOffset: 44, as: UInt32.self)
        address.storeBytes(of: cdw12.littleEndian, toByteOffset: 48, as: UInt32.self)
        address.storeBytes(of: cdw13.littleEndian, toByteOffset: 52, as: UInt32.self)
        address.storeBytes(of: cdw14.littleEndian, toByteOffset: 56, as: UInt32.self)
        address.storeBytes(of: cdw15.littleEndian, toByteOffset: 60, as: UInt32.self)
    }
}

/// A 16-byte completion queue entry (NVMe 1.4, figure 121): DW0 (command specific), DW1
/// (reserved), SQ head 15:0 and SQ identifier 31:16 of DW2, command identifier 15:0, phase
/// tag 16 and status field 31:17 of DW3.
public struct CompletionQueueEntry: Sendable, Hashable {
    public static let size = 16

    public var dword0: UInt32
    public var dword1: UInt32
    public var submissionQueueHead: UInt16
    public var submissionQueueID: UInt16
    public var commandID: UInt16
    public var phase: Bool
    public var status: NVMeStatus

    public init(dword0: UInt32 = 0, dword1: UInt32 = 0, submissionQueueHead: UInt16, submissionQueueID: UInt16,
                commandID: UInt16, phase: Bool, status: NVMeStatus) {
        self.dword0 = dword0
        self.dword1 = dword1
        self.submissionQueueHead = submissionQueueHead
        self.submissionQueueID = submissionQueueID
        self.commandID = commandID
        self.phase = phase
        self.status = status
    }

    /// Decodes the first 16 bytes of `bytes`.
    /// - Precondition: `bytes.count >= 16`.
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count >= Self.size, "a completion queue entry is 16 bytes")
        dword0 = UInt32(bytes.le(0, 4))
        dword1 = UInt32(bytes.le(4, 4))
        submissionQueueHead = UInt16(bytes.le(8, 2))
        submissionQueueID = UInt16(bytes.le(10, 2))
        commandID = UInt16(bytes.le(12, 2))
        let half = UInt16(bytes.le(14, 2))
        phase = half & 1 != 0
        status = NVMeStatus(completionHalfword: half)
    }

    /// Decodes the 16 bytes at `address` (little-endian, no alignment needed): a queue
    /// slot read without an intermediate array.
    public init(loadingFrom address: UnsafeRawPointer) {
        dword0 = UInt32(littleEndian: address.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        dword1 = UInt32(littleEndian: address.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        submissionQueueHead = UInt16(littleEndian: address.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
        submissionQueueID = UInt16(littleEndian: address.loadUnaligned(fromByteOffset: 10, as: UInt16.self))
        commandID = UInt16(littleEndian: address.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        let half = UInt16(littleEndian: address.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
        phase = half & 1 != 0
        status = NVMeStatus(completionHalfword: half)
    }

    /// The 16 bytes.
    public var encoded: [UInt8] {
        var b = [UInt8](repeating: 0, count: Self.size)
        b.putLE(UInt64(dword0), at: 0, width: 4)
        b.putLE(UInt64(dword1), at: 4, width: 4)
        b.putLE(UInt64(submissionQueueHead), at: 8, width: 2)
        b.putLE(UInt64(submissionQueueID), at: 10, width: 2)
        b.putLE(UInt64(commandID), at: 12, width: 2)
        b.putLE(UInt64(status.completionHalfword(phase: phase)), at: 14, width: 2)
        return b
    }
}
