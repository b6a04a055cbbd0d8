import Glibc
import NVMe
import NVMeController
import Testing
import TestSupport
import VFIO
import VFIODeviceKit

/// Enabling the controller and identifying it, through a vfio-user client.
@Suite struct ControllerBringUpTests {
    @Test func pciIdentityAndCapabilities() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20, ioQueues: 3), msixVectors: 0)
        let client = host.client
        #expect(try client.readConfig(UInt16.self, offset: 0) == NVMeDevice.vendorID)
        #expect(try client.readConfig(UInt32.self, offset: 8) >> 8 == 0x01_0802)
        // BAR0: 64-bit memory.
        #expect(try client.readConfig(UInt32.self, offset: 0x10) & 0x7 == 0x4)
        // The capability list holds PM, MSI-X (4 vectors: 3 I/O queues + admin), PCIe.
        var found: [UInt8: Int] = [:]
        var pointer = Int(try client.readConfig(UInt8.self, offset: 0x34))
        while pointer != 0 {
            let id = try client.readConfig(UInt8.self, offset: UInt64(pointer))
            found[id] = pointer
            pointer = Int(try client.readConfig(UInt8.self, offset: UInt64(pointer + 1)))
        }
        #expect(Set(found.keys) == [0x01, 0x11, 0x10])
        let msix = try #require(found[0x11])
        #expect(try client.readConfig(UInt16.self, offset: UInt64(msix + 2)) & 0x7FF == 3)
        #expect(try client.readConfig(UInt32.self, offset: UInt64(msix + 4)) == NVMeDevice.msixTableOffset)
        #expect(try client.irqInfo(PCIIRQIndex.msix.rawValue).count == 4)
        #expect(try client.irqInfo(PCIIRQIndex.intx.rawValue).count == 1)
    }

    @Test func registersAfterPowerOn() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20), msixVectors: 0)
        let cap = ControllerCapabilities(rawValue: try host.client.read(UInt64.self, region: 0, offset: 0))
        #expect(cap.maximumQueueEntries == NVMeDevice.maximumQueueEntries)
        #expect(cap.contiguousQueuesRequired)
        #expect(cap.doorbellStride == 0)
        #expect(cap.commandSets & 1 == 1)
        #expect(cap.timeout > 0)
        // Two 4-byte reads give the same value.
        let low = try host.read32(0), high = try host.read32(4)
        #expect(UInt64(high) << 32 | UInt64(low) == cap.rawValue)
        #expect(try host.read32(ControllerRegister.version) == 0x0001_0400)
        #expect(try host.status.rawValue == 0)
        // Widths the registers do not take.
        expectErrno(EINVAL) { _ = try host.client.read(UInt16.self, region: 0, offset: 0x14) }
        expectErrno(EINVAL) { _ = try host.client.read(UInt32.self, region: 0, offset: 0x16) }
        expectErrno(EINVAL) { _ = try host.client.read(UInt64.self, region: 0, offset: 0x14) }
    }

    @Test func enableAndIdentify() throws {
        let model = try NVMeDevice(ramBytes: 8 << 20, blockSize: 4096)
        let host = try NVMeTestHost(model: model)
        try host.enable()
        #expect(try host.status == ControllerStatus(ready: true))

        let (status, controller) = try host.identify(cns: .controller)
        #expect(status == .success)
        #expect(controller.le(0, 2) == UInt64(NVMeDevice.vendorID))
        #expect(String(decoding: controller[4..<24], as: UTF8.self) == "SWIFTVFIO0001".padding(toLength: 20, withPad: " ", startingAt: 0))
        #expect(controller[77] == NVMeDevice.maximumDataTransferShift)
        #expect(controller.le(80, 4) == 0x0001_0400)
        #expect(controller[512] == 0x66 && controller[513] == 0x44)
        #expect(controller.le(516, 4) == 1)  // NN
        #expect(controller[525] & 1 == 1)  // VWC

        let (nsStatus, namespace) = try host.identify(cns: .namespace, namespace: 1)
        #expect(nsStatus == .success)
        #expect(namespace.le(0, 8) == 2048)  // 8 MiB / 4096
        #expect(namespace[25] == 0 && namespace[26] == 0)
        #expect(namespace.le(128, 4) == 12 << 16)  // LBAF0: 4096-byte blocks, no metadata

        let (listStatus, list) = try host.identify(cns: .activeNamespaceList)
        #expect(listStatus == .success)
        #expect(list.le(0, 4) == 1 && list.le(4, 4) == 0)

        let (descStatus, descriptors) = try host.identify(cns: .namespaceDescriptorList, namespace: 1)
        #expect(descStatus == .success)
        #expect(descriptors[0] == 2 && descriptors[1] == 16)  // NGUID
        #expect(Array(descriptors[4..<20]) == Array(namespace[104..<120]))
        #expect(descriptors[20] == 4 && descriptors[21] == 1 && descriptors[24] == 0)  // CSI: NVM

        // The NVM command set's controller structure: no limits (all zero); another CSI: refused.
        let csi = try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.identify.rawValue, commandID: 0,
                                                      prp1: host.iova(NVMeTestHost.dataOffset), cdw10: 0x06))
        #expect(csi.status == .success && host.bytes(NVMeTestHost.dataOffset, 4096).allSatisfy { $0 == 0 })
        let zoned = try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.identify.rawValue, commandID: 0,
                                                        prp1: host.iova(NVMeTestHost.dataOffset), cdw10: 0x06, cdw11: 2 << 24))
        #expect(zoned.status == .invalidField)
        // A namespace that does not exist, and a CNS the controller does not know.
        #expect(try host.identify(cns: .namespace, namespace: 2).0 == .invalidNamespaceOrFormat)
        let unknown = try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.identify.rawValue, commandID: 0,
                                                          prp1: host.iova(NVMeTestHost.dataOffset), cdw10: 0x10))
        #expect(unknown.status == .invalidField)
    }

    /// Identify into a buffer that starts mid-page: PRP1 with an offset, PRP2 the next page.
    @Test func identifyIntoAnOffsetBufferUsesPRP2() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable()
        let at = NVMeTestHost.dataOffset + 0x100
        let (status, controller) = try host.identify(cns: .controller, at: at)
        #expect(status == .success)
        #expect(controller.le(0, 2) == UInt64(NVMeDevice.vendorID))
        #expect(controller.le(516, 4) == 1)
    }

    /// An I/O completion queue whose memory the host never mapped: posting to it is a
    /// fatal controller error, the process goes on, and a reset recovers.
    @Test func unmappedCompletionQueueIsFatal() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.enable()
        #expect(try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.createIOCompletionQueue.rawValue, commandID: 0, prp1: 0x7000_0000,
                                                    cdw10: 7 << 16 | 1, cdw11: 1 << 16 | 0x3)).status == .success)
        let sq = host.allocateQueueMemory(8 * 64)
        #expect(try host.admin(SubmissionQueueEntry(opcode: AdminOpcode.createIOSubmissionQueue.rawValue, commandID: 0, prp1: host.iova(sq),
                                                    cdw10: 7 << 16 | 1, cdw11: 1 << 16 | 0x1)).status == .success)
        host.queues[1] = NVMeTestHost.Queue(id: 1, submissionBase: host.iova(sq), completionBase: 0x7000_0000, size: 8, vector: 1)
        host.place(ioCommand(.read, lba: 0, blocks: 1, prp1: host.iova(NVMeTestHost.dataOffset)), queue: 1)
        try host.ring(1)
        #expect(try host.waitStatus { $0.fatal })
        #expect(host.model.fatalReason?.contains("completion queue 1") == true)
        try host.write32(0, ControllerRegister.configuration)
        #expect(try host.waitStatus { !$0.ready && !$0.fatal })
        host.queues = [:]
        try host.enable()
        #expect(try host.identify(cns: .controller).0 == .success)
    }

    @Test func badAdminQueueConfigurationSetsFatalStatus() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.write32(AdminQueueAttributes(submissionQueueSize: 3, completionQueueSize: 3).rawValue, ControllerRegister.adminQueueAttributes)
        try host.write64(host.iova(0x80), ControllerRegister.adminSubmissionQueue)  // not 4 KiB aligned
        try host.write64(host.iova(0x1000), ControllerRegister.adminCompletionQueue)
        try host.write32(ControllerConfiguration(enable: true).rawValue, ControllerRegister.configuration)
        #expect(try host.status.fatal)
        #expect(try !host.status.ready)
        #expect(host.model.fatalReason?.contains("ASQ") == true)
        // A reset (CC.EN = 0) clears it, and a good configuration enables.
        try host.write32(0, ControllerRegister.configuration)
        #expect(try !host.status.fatal)
        try host.enable()
    }

    /// An admin queue in memory the host never mapped: fetching from it is a fatal
    /// controller error (CSTS.CFS), not a crash, and a reset recovers.
    @Test func unmappedAdminQueueIsFatal() throws {
        let host = try NVMeTestHost(model: try NVMeDevice(ramBytes: 1 << 20))
        try host.write32(AdminQueueAttributes(submissionQueueSize: 3, completionQueueSize: 3).rawValue, ControllerRegister.adminQueueAttributes)
        try host.write64(0x7000_0000, ControllerRegister.adminSubmissionQueue)
        try host.write64(0x7000_1000, ControllerRegister.adminCompletionQueue)
        try host.write32(ControllerConfiguration(enable: true).rawValue, ControllerRegister.configuration)
        #expect(try host.waitStatus { $0.ready })
        try host.write32(1, ControllerRegister.submissionTailDoorbell(queue: 0))
        #expect(try host.waitStatus { $0.fatal })
        #expect(host.model.fatalReason?.contains("submission queue 0") == true)
        try host.write32(0, ControllerRegister.configuration)
        #expect(try host.waitStatus { !$0.ready && !$0.fatal })
        try host.enable()
        #expect(try host.identify(cns: .controller).0 == .success)
    }
}
