import CVFIO
import Testing
@testable import VFIO
import TestSupport

@Suite struct IRQInfoTests {
    @Test func roundTripAndLayout() throws {
        let info = IRQInfo(flags: [.eventfd, .maskable, .automasked], index: 0, count: 1)
        try expectRoundTrip(info)
        try expectRoundTrip(IRQInfo(flags: [.eventfd, .noResize], index: 2, count: 2048))
        #expect(MemoryLayout<vfio_irq_info>.size == IRQInfo.fixedSize)
        let c = asCStruct(vfio_irq_info.self, IRQInfo(flags: [.eventfd, .noResize], index: 2, count: 2048).encoded())
        #expect(c.argsz == 16 && c.index == 2 && c.count == 2048)
        #expect(c.flags == UInt32(VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE))
        #expect(IRQInfoFlags.maskable.rawValue == UInt32(VFIO_IRQ_INFO_MASKABLE))
        #expect(IRQInfoFlags.automasked.rawValue == UInt32(VFIO_IRQ_INFO_AUTOMASKED))
        let query = IRQInfo.query(index: 4)
        #expect(query.count == 16 && le32(query, 0) == 16 && le32(query, 8) == 4)
    }

    @Test func rejectsSmallArgsz() {
        #expect(throws: VFIOError.malformed("vfio_irq_info", "argsz 12 is smaller than the 16-byte structure")) {
            _ = try IRQInfo(decoding: [12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])
        }
    }
}

@Suite struct IRQSetTests {
    /// Built on each use: a static array of enum payloads would stay allocated to the end
    /// in a form LeakSanitizer cannot see through (reported as a leak).
    static var samples: [IRQSet] { [
        .enableMSIX([10, -1, 12, 13]),
        .enableEventfds(index: PCIIRQIndex.msi.rawValue, start: 1, [20, 21]),
        .disable(index: PCIIRQIndex.msix.rawValue),
        .maskINTx(),
        .unmaskINTx(),
        .trigger(index: PCIIRQIndex.msix.rawValue, start: 3, count: 2),
        IRQSet(index: 0, start: 1, action: .mask, data: .bools([true, false, true])),
        IRQSet(index: PCIIRQIndex.intx.rawValue, action: .unmask, data: .eventfds([42])),
        IRQSet(index: PCIIRQIndex.err.rawValue, action: .trigger, data: .eventfds([-1])),
    ] }

    @Test func roundTrips() throws {
        for sample in Self.samples { try expectRoundTrip(sample) }
    }

    @Test func encodingIsHeaderThenData() throws {
        let set = IRQSet.enableMSIX([10, -1, 12])
        let bytes = set.encoded()
        #expect(bytes.count == 20 + 12)
        #expect(le32(bytes, 0) == 32)
        #expect(le32(bytes, 4) == UInt32(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER))
        #expect(le32(bytes, 8) == UInt32(VFIO_PCI_MSIX_IRQ_INDEX))
        #expect(le32(bytes, 12) == 0 && le32(bytes, 16) == 3)
        #expect(le32(bytes, 20) == 10 && le32(bytes, 24) == 0xffff_ffff && le32(bytes, 28) == 12)
        #expect(set.header == (try IRQSetHeader(decoding: bytes)))

        let bools = IRQSet(index: 0, start: 1, action: .mask, data: .bools([true, false, true])).encoded()
        #expect(bools.count == 23 && Array(bools[20...]) == [1, 0, 1])
        #expect(le32(bools, 4) == UInt32(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK))

        let disable = IRQSet.disable(index: 2).encoded()
        #expect(disable.count == 20 && le32(disable, 16) == 0)
        #expect(le32(disable, 4) == UInt32(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER))

        let unmask = IRQSet.unmaskINTx().encoded()
        #expect(le32(unmask, 4) == UInt32(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK))
        #expect(le32(unmask, 8) == 0 && le32(unmask, 16) == 1)
    }

    @Test func layoutAgainstHeader() throws {
        #expect(MemoryLayout<vfio_irq_set>.size == IRQSet.fixedSize)
        let set = IRQSet.enableEventfds(index: 1, start: 2, [7, 8])
        let c = asCStruct(vfio_irq_set.self, set.encoded())
        #expect(c.argsz == 28 && c.index == 1 && c.start == 2 && c.count == 2)
        #expect(c.flags == UInt32(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER))
        #expect(IRQSetFlags.dataTypeMask.rawValue == UInt32(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD))
        #expect(IRQSetFlags.actionTypeMask.rawValue == UInt32(VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER))
    }

    @Test func boolBytesDecodeAsNonZero() throws {
        var bytes = IRQSet(index: 0, action: .unmask, data: .bools([false, false])).encoded()
        bytes[21] = 0x80
        #expect(try IRQSet(decoding: bytes).data == .bools([false, true]))
    }

    @Test func argszMayExceedData() throws {
        // A caller may state a larger buffer; the reader moves past all of it.
        let set = IRQSet.maskINTx()
        var bytes = set.encoded()
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(28).littleEndian, toByteOffset: 0, as: UInt32.self) }
        bytes += Array(repeating: 0xEE, count: 8)
        var reader = ByteReader(bytes, context: "t")
        #expect(try IRQSet(from: &reader) == set)
        #expect(reader.offset == 28)
    }

    private func header(argsz: UInt32, flags: UInt32, index: UInt32 = 0, start: UInt32 = 0, count: UInt32) -> [UInt8] {
        IRQSetHeader(argsz: argsz, flags: IRQSetFlags(rawValue: flags), index: index, start: start, count: count).encoded()
    }

    @Test func rejections() throws {
        let none = IRQSetFlags.dataNone.rawValue, bool = IRQSetFlags.dataBool.rawValue, efd = IRQSetFlags.dataEventfd.rawValue
        let mask = IRQSetFlags.actionMask.rawValue, trigger = IRQSetFlags.actionTrigger.rawValue
        #expect(throws: VFIOError.malformed("vfio_irq_set", "argsz 16 is smaller than the 20-byte header")) {
            _ = try IRQSet(decoding: header(argsz: 16, flags: none | trigger, count: 0))
        }
        #expect(throws: VFIOError.malformed("vfio_irq_set", "flags 0x41 have unknown bits 0x40")) {
            _ = try IRQSet(decoding: header(argsz: 20, flags: none | 0x40, count: 0))
        }
        #expect(throws: VFIOError.malformed("vfio_irq_set", "flags 0x23 must have exactly one DATA_ bit, not 2")) {
            _ = try IRQSet(decoding: header(argsz: 20, flags: none | bool | trigger, count: 0))
        }
        #expect(throws: VFIOError.malformed("vfio_irq_set", "flags 0x20 must have exactly one DATA_ bit, not 0")) {
            _ = try IRQSet(decoding: header(argsz: 20, flags: trigger, count: 0))
        }
        #expect(throws: VFIOError.malformed("vfio_irq_set", "flags 0x29 must have exactly one ACTION_ bit, not 2")) {
            _ = try IRQSet(decoding: header(argsz: 20, flags: none | mask | trigger, count: 0))
        }
        #expect(throws: VFIOError.malformed("vfio_irq_set", "flags 0x1 must have exactly one ACTION_ bit, not 0")) {
            _ = try IRQSet(decoding: header(argsz: 20, flags: none, count: 1))
        }
        #expect(throws: VFIOError.malformed("vfio_irq_set", "start 4294967290 + count 5 reaches U32_MAX")) {
            _ = try IRQSet(decoding: header(argsz: 20, flags: none | trigger, start: 0xffff_fffa, count: 5))
        }
        // argsz too small for count eventfds.
        #expect(throws: VFIOError.malformed("vfio_irq_set", "argsz 28 leaves 8 byte(s) for data, count 3 needs 12")) {
            _ = try IRQSet(decoding: header(argsz: 28, flags: efd | trigger, count: 3) + Array(repeating: 0, count: 12))
        }
        // argsz claims the data but the buffer stops short.
        #expect(throws: VFIOError.malformed("vfio_irq_set", "count 3 needs 12 byte(s) of data, the buffer has 8")) {
            _ = try IRQSet(decoding: header(argsz: 32, flags: efd | trigger, count: 3) + Array(repeating: 0, count: 8))
        }
        // A count that would need gigabytes.
        #expect(throws: VFIOError.self) {
            _ = try IRQSet(decoding: header(argsz: 0xffff_ffff, flags: efd | trigger, count: 0x7fff_ffff))
        }
        #expect(throws: VFIOError.malformed("vfio_irq_set", "count 2 needs 2 byte(s) of data, the buffer has 1")) {
            _ = try IRQSet(decoding: header(argsz: 22, flags: bool | mask, count: 2) + [1])
        }
    }
}
