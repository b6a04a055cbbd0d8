/// Typed views of the command dwords the controller and a driver both need.
extension SubmissionQueueEntry {
    /// Read / Write / Write Zeroes / Compare: SLBA (CDW11:CDW10).
    public var startingLBA: UInt64 { UInt64(cdw11) << 32 | UInt64(cdw10) }
    /// Read / Write / Write Zeroes: NLB (CDW12 15:0), 0-based.
    public var blockCountMinusOne: UInt16 { UInt16(truncatingIfNeeded: cdw12) }
    /// FUA (CDW12 bit 30).
    public var forceUnitAccess: Bool { cdw12 >> 30 & 1 != 0 }
    /// Write Zeroes DEAC (CDW12 bit 25).
    public var deallocate: Bool { cdw12 >> 25 & 1 != 0 }

    /// Create I/O SQ/CQ, Delete I/O SQ/CQ: QID (CDW10 15:0).
    public var queueID: UInt16 { UInt16(truncatingIfNeeded: cdw10) }
    /// Create I/O SQ/CQ: QSIZE (CDW10 31:16), 0-based.
    public var queueSizeMinusOne: UInt16 { UInt16(cdw10 >> 16) }
    /// Create I/O SQ/CQ: PC (CDW11 bit 0), physically contiguous.
    public var physicallyContiguous: Bool { cdw11 & 1 != 0 }
    /// Create I/O CQ: IEN (CDW11 bit 1).
    public var interruptsEnabled: Bool { cdw11 >> 1 & 1 != 0 }
    /// Create I/O CQ: IV (CDW11 31:16).
    public var interruptVector: UInt16 { UInt16(cdw11 >> 16) }
    /// Create I/O SQ: CQID (CDW11 31:16).
    public var completionQueueID: UInt16 { UInt16(cdw11 >> 16) }
    /// Create I/O SQ: QPRIO (CDW11 2:1).
    public var queuePriority: UInt8 { UInt8(cdw11 >> 1 & 0x3) }

    /// Identify: CNS (CDW10 7:0).
    public var cns: UInt8 { UInt8(truncatingIfNeeded: cdw10) }
    /// Get/Set Features: FID (CDW10 7:0).
    public var featureID: UInt8 { UInt8(truncatingIfNeeded: cdw10) }
    /// Get Features: SEL (CDW10 10:8).
    public var featureSelect: UInt8 { UInt8(cdw10 >> 8 & 0x7) }
    /// Set Features: SV (CDW10 bit 31).
    public var saveFeature: Bool { cdw10 >> 31 & 1 != 0 }

    /// Get Log Page: LID (CDW10 7:0).
    public var logPageID: UInt8 { UInt8(truncatingIfNeeded: cdw10) }
    /// Get Log Page: RAE (CDW10 bit 15).
    public var retainAsynchronousEvent: Bool { cdw10 >> 15 & 1 != 0 }
    /// Get Log Page: NUMD (CDW11 15:0 upper, CDW10 31:16 lower), 0-based dwords.
    public var logDwordsMinusOne: UInt32 { UInt32(cdw11 & 0xFFFF) << 16 | cdw10 >> 16 }
    /// Get Log Page: LPO (CDW13:CDW12), bytes, dword aligned.
    public var logOffset: UInt64 { UInt64(cdw13) << 32 | UInt64(cdw12) }

    /// Abort: SQID (CDW10 15:0) and CID (CDW10 31:16).
    public var abortSubmissionQueueID: UInt16 { UInt16(truncatingIfNeeded: cdw10) }
    public var abortCommandID: UInt16 { UInt16(cdw10 >> 16) }

    /// Dataset Management: NR (CDW10 7:0), 0-based number of ranges.
    public var rangeCountMinusOne: UInt8 { UInt8(truncatingIfNeeded: cdw10) }
    /// Dataset Management: AD (CDW11 bit 2), deallocate.
    public var deallocateAttribute: Bool { cdw11 >> 2 & 1 != 0 }
}
