import CVFIO
import Testing
@testable import VFIO
import TestSupport

@Suite struct MigrationV1Tests {
    /// The v1 rules written out for every combination of the three bits:
    /// (bits, VFIO_DEVICE_STATE_VALID, VFIO_DEVICE_STATE_IS_ERROR, name).
    static let table: [(UInt32, Bool, Bool, MigrationStateV1Name?)] = [
        (0b000, true, false, .stop),
        (0b001, true, false, .running),
        (0b010, true, false, .stopAndCopy),
        (0b011, true, false, .preCopy),
        (0b100, true, false, .resuming),
        (0b101, false, false, nil),
        (0b110, false, true, .error),
        (0b111, false, false, nil),
    ]

    @Test func rulesOverAllEightCombinations() {
        for (bits, valid, error, name) in Self.table {
            for reserved: UInt32 in [0, 0x8, 0xffff_fff8] {
                let state = MigrationStateV1(rawValue: bits | reserved)
                #expect(state.isValid == valid, "VALID(\(bits | reserved))")
                #expect(state.isError == error, "IS_ERROR(\(bits | reserved))")
                #expect(state.name == name, "name of \(bits)")
                let set = state.settingError
                #expect(set.rawValue == reserved | 0b110, "SET_ERROR(\(bits | reserved))")
                #expect(set.isError && !set.isValid)
            }
        }
    }

    @Test func bitsAndNames() {
        #expect(MigrationStateV1.stop.rawValue == 0)
        #expect(MigrationStateV1.running.rawValue == UInt32(VFIO_DEVICE_STATE_V1_RUNNING))
        #expect(MigrationStateV1.saving.rawValue == UInt32(VFIO_DEVICE_STATE_V1_SAVING))
        #expect(MigrationStateV1.resuming.rawValue == UInt32(VFIO_DEVICE_STATE_V1_RESUMING))
        #expect(MigrationStateV1.mask.rawValue == 7)
        #expect(MigrationStateV1Name.preCopy.state == [.saving, .running])
        #expect(MigrationStateV1Name.stopAndCopy.state == .saving)
        #expect(MigrationStateV1Name.error.state == [.saving, .resuming])
        #expect(MigrationStateV1Name.allCases.map(\.description) == ["STOP", "RUNNING", "PRE_COPY", "STOP_AND_COPY", "RESUMING", "ERROR"])
        #expect(MigrationStateV1(rawValue: 0b011).description == "PRE_COPY")
        #expect(MigrationStateV1(rawValue: 0b111).description == "INVALID(0x7)")
        #expect(MigrationStateV1(rawValue: 0x101).description == "RUNNING+reserved(0x100)")
    }

    @Test func infoRoundTrips() throws {
        try expectRoundTrip(MigrationInfoV1(deviceState: [.saving, .running], pendingBytes: 0x1_0000_0000, dataOffset: 0x1000, dataSize: 0x80_0000))
        try expectRoundTrip(MigrationInfoV1(deviceState: MigrationStateV1(rawValue: 0xf000_0006), pendingBytes: .max, dataOffset: 4096, dataSize: 1))
        // reserved is written as 0 and ignored on read.
        let bytes = featureLE32(4, 0xffff_ffff) + featureLE64(1, 2, 3)
        let info = try MigrationInfoV1(decoding: bytes)
        #expect(info == MigrationInfoV1(deviceState: .resuming, pendingBytes: 1, dataOffset: 2, dataSize: 3))
        #expect(le32(info.encoded(), 4) == 0)
    }

    @Test func layoutMatchesTheSystemHeader() {
        typealias C = vfio_device_migration_info
        #expect(MemoryLayout<C>.size == MigrationInfoV1.fixedSize)
        #expect(MemoryLayout<C>.offset(of: \C.device_state) == MigrationInfoV1.Field.deviceState.offset)
        #expect(MemoryLayout<C>.offset(of: \C.reserved) == MigrationInfoV1.Field.reserved.offset)
        #expect(MemoryLayout<C>.offset(of: \C.pending_bytes) == MigrationInfoV1.Field.pendingBytes.offset)
        #expect(MemoryLayout<C>.offset(of: \C.data_offset) == MigrationInfoV1.Field.dataOffset.offset)
        #expect(MemoryLayout<C>.offset(of: \C.data_size) == MigrationInfoV1.Field.dataSize.offset)
        let value = MigrationInfoV1(deviceState: [.saving], pendingBytes: 0xaaaa_bbbb_cccc, dataOffset: 0x2000, dataSize: 0x1234)
        let c = asCStruct(C.self, value.encoded())
        #expect(c.device_state == UInt32(VFIO_DEVICE_STATE_V1_SAVING) && c.reserved == 0)
        #expect(c.pending_bytes == 0xaaaa_bbbb_cccc && c.data_offset == 0x2000 && c.data_size == 0x1234)
        #expect(MigrationStateV1.mask.rawValue == UInt32(VFIO_DEVICE_STATE_V1_RUNNING | VFIO_DEVICE_STATE_V1_SAVING | VFIO_DEVICE_STATE_V1_RESUMING))
    }

    @Test func fieldsTileTheStruct() {
        var next = 0
        for field in MigrationInfoV1.Field.allCases {
            #expect(field.offset == next, "\(field.cName)")
            #expect(field.offset % field.size == 0, "\(field.cName) is naturally aligned")
            next = field.offset + field.size
        }
        #expect(next == MigrationInfoV1.fixedSize)
        #expect(MigrationInfoV1.Field.allCases.filter(\.isUserWritable) == [.deviceState, .dataSize])
    }

    @Test func shortRegionIsRefused() {
        expectFeatureMalformed("vfio_device_migration_info", "only 0 left") {
            _ = try MigrationInfoV1(decoding: featureLE32(1, 0) + featureLE64(1, 2))
        }
    }
}
