import NVMe
import NVMeController
import Testing
import VFIO
import VFIODeviceKit

/// `NVMeDevice.waitUntilQuiescent`, which the fuzz target waits on after every action:
/// it returns once the worker has done all it can, including when it waits for room in a
/// full completion queue.
@Suite struct QuiescenceTests {
    static let asq: UInt64 = 0x1000, acq: UInt64 = 0x2000, data: UInt64 = 0x3000

    private func write(_ device: NVMeDevice, _ value: UInt64, width: Int, at offset: UInt64) throws {
        try withUnsafeBytes(of: value.littleEndian) { raw throws(VFIOError) in
            try device.write(region: PCIRegionIndex.bar0.rawValue, offset: offset, from: UnsafeRawBufferPointer(rebasing: raw[0..<width]))
        }
    }

    /// A controller on guest memory at IOVA 0 with an admin submission queue of 8 entries
    /// at 0x1000 and a completion queue of `completionEntries` at 0x2000, enabled.
    private func enabled(completionEntries: UInt32) throws -> (NVMeDevice, InMemoryDeviceContext) {
        let context = InMemoryDeviceContext(strictReplyRule: false)
        try context.map(iova: 0, size: 64 << 10)
        let device = try NVMeDevice(ramBytes: 1 << 20, ioQueues: 1)
        device.attach(context)
        try write(device, UInt64((completionEntries - 1) << 16 | 7), width: 4, at: ControllerRegister.adminQueueAttributes)
        try write(device, Self.asq, width: 8, at: ControllerRegister.adminSubmissionQueue)
        try write(device, Self.acq, width: 8, at: ControllerRegister.adminCompletionQueue)
        try write(device, 0x0046_0001, width: 4, at: ControllerRegister.configuration)
        #expect(device.waitUntilQuiescent(seconds: 10))
        #expect(device.controllerStatus.ready)
        return (device, context)
    }

    private func completion(_ context: InMemoryDeviceContext, slot: Int) throws -> CompletionQueueEntry {
        CompletionQueueEntry(try context.peek(iova: Self.acq + UInt64(slot * CompletionQueueEntry.size), count: CompletionQueueEntry.size))
    }

    private func identify(_ context: InMemoryDeviceContext, slot: Int) throws {
        let entry = SubmissionQueueEntry(opcode: AdminOpcode.identify.rawValue, commandID: UInt16(slot), prp1: Self.data, cdw10: 1)
        try context.poke(iova: Self.asq + UInt64(slot * SubmissionQueueEntry.size), entry.encoded)
    }

    @Test func commandsHaveCompletedWhenItReturns() throws {
        let (device, context) = try enabled(completionEntries: 8)
        for slot in 0..<3 { try identify(context, slot: slot) }
        try write(device, 3, width: 4, at: ControllerRegister.submissionTailDoorbell(queue: 0))
        #expect(device.waitUntilQuiescent(seconds: 10))
        for slot in 0..<3 {
            let entry = try completion(context, slot: slot)
            #expect(entry.phase && entry.status == .success && entry.commandID == UInt16(slot))
        }
    }

    /// Two commands, a completion queue of two entries (one usable until the host frees
    /// it): the worker posts one and waits for room, which is quiescent too.
    @Test func returnsWhileTheWorkerWaitsForRoomInAFullCompletionQueue() throws {
        let (device, context) = try enabled(completionEntries: 2)
        for slot in 0..<2 { try identify(context, slot: slot) }
        try write(device, 2, width: 4, at: ControllerRegister.submissionTailDoorbell(queue: 0))
        #expect(device.waitUntilQuiescent(seconds: 10))
        #expect(try completion(context, slot: 0).phase)
        #expect(try !completion(context, slot: 1).phase)
        // The host frees the entry: the held completion goes in.
        try write(device, 1, width: 4, at: ControllerRegister.completionHeadDoorbell(queue: 0))
        #expect(device.waitUntilQuiescent(seconds: 10))
        let second = try completion(context, slot: 1)
        #expect(second.phase && second.commandID == 1)
    }
}
