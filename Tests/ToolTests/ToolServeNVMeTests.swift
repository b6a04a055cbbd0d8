import Glibc
import NVMe
import Testing
import TestSupport
import VFIO
import VFIOSystem
import VFIOUserClient

/// `vfio serve nvme`: a RAM namespace by default, file namespaces with `--backing` and
/// `--lba-size`, and the options refused where they do not apply.
@Suite struct ToolServeNVMeTests {
    /// Brings the controller up over `client` and returns Identify Namespace 1.
    private func identifyNamespace(_ client: VFIOUserClient) throws -> [UInt8] {
        let memory = try DMABuffer(size: 4 * 4096)
        let iova: UInt64 = 0x4000_0000
        try client.mapDMA(memory, offset: 0, size: memory.size, iova: iova, access: [.read, .write])
        try client.writeConfig(UInt16(0x6), offset: 4)
        let vector = try EventFD()
        try client.setIRQs(.enableEventfds(index: PCIIRQIndex.msix.rawValue, [vector.fd]))
        try client.write(AdminQueueAttributes(submissionQueueSize: 1, completionQueueSize: 1).rawValue, region: 0, offset: ControllerRegister.adminQueueAttributes)
        try client.write(iova, region: 0, offset: ControllerRegister.adminSubmissionQueue)
        try client.write(iova + 0x1000, region: 0, offset: ControllerRegister.adminCompletionQueue)
        try client.write(ControllerConfiguration(enable: true).rawValue, region: 0, offset: ControllerRegister.configuration)
        #expect(poll(for: .seconds(10)) { (try? client.read(UInt32.self, region: 0, offset: ControllerRegister.status)) == 1 })
        let identify = SubmissionQueueEntry(opcode: AdminOpcode.identify.rawValue, commandID: 9, namespaceID: 1, prp1: iova + 0x2000, cdw10: 0)
        identify.encoded.withUnsafeBytes { memory.baseAddress.copyMemory(from: $0.baseAddress!, byteCount: 64) }
        try client.write(UInt32(1), region: 0, offset: ControllerRegister.submissionTailDoorbell(queue: 0))
        #expect(try waitSignalled(vector) != nil)
        let completion = CompletionQueueEntry(Array(UnsafeRawBufferPointer(start: memory.baseAddress + 0x1000, count: 16)))
        #expect(completion.commandID == 9 && completion.status == .success && completion.phase)
        let bytes = Array(UnsafeRawBufferPointer(start: memory.baseAddress + 0x2000, count: 4096))
        try client.unmapDMA(iova: iova, size: UInt64(memory.size))
        return bytes
    }

    private func serve(_ arguments: [String], check: (VFIOUserClient) throws -> Void) throws {
        guard let tool = builtToolPath() else {
            print("ToolServeNVMeTests: no built vfio next to the tests; skipped")
            return
        }
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-nvme-XXXXXX")
        defer { rmdir(directory) }
        let socket = directory + "/nvme.sock"
        defer { unlink(socket) }
        let process = try ToolProcess(tool: tool, ["serve", "nvme", "--socket", socket] + arguments)
        try #require(process.readUntil("serving nvme on \(socket)", timeout: .seconds(30)), "\(process.log)")
        let client = try VFIOUserClient(path: socket, name: "unix:\(socket)")
        #expect(try client.readConfig(UInt32.self, offset: 8) >> 8 == 0x01_0802)
        try check(client)
        client.close()
        #expect(kill(process.pid, SIGTERM) == 0)
        #expect(process.waitForExit(timeout: .seconds(30)) == .exited(0), "\(process.log)")
    }

    @Test func ramNamespaceByDefault() throws {
        try serve([]) { client in
            let namespace = try identifyNamespace(client)
            #expect(namespace.le(0, 8) == (64 << 20) / 512)
            #expect(namespace.le(128, 4) == 9 << 16)
        }
    }

    @Test func fileNamespacesWithTheirBlockSize() throws {
        let directory = try makeTemporaryDirectory("/tmp/swift-vfio-nvme-XXXXXX")
        defer { rmdir(directory) }
        let first = directory + "/a.img", second = directory + "/b.img"
        defer { unlink(first); unlink(second) }
        #expect(writeFile(first, [UInt8](repeating: 0, count: 1 << 20)))
        #expect(writeFile(second, [UInt8](repeating: 0, count: 2 << 20)))
        try serve(["--backing", "\(first),\(second)", "--lba-size", "4096"]) { client in
            let namespace = try identifyNamespace(client)
            #expect(namespace.le(0, 8) == (1 << 20) / 4096)
            #expect(namespace.le(128, 4) == 12 << 16)
        }
    }

    @Test(arguments: [
        (["nvme", "--lba-size", "1024"], "--lba-size must be 512 or 4096"),
        (["edu", "--lba-size", "4096"], "--backing and --lba-size are options of the nvme model"),
        (["nvme", "--backing", "/nonexistent/nvme.img"], "open /nonexistent/nvme.img"),
        (["nvme", "--backing", "a,,b"], "--backing has an empty path"),
    ])
    func refusedOptions(arguments: [String], message: String) throws {
        guard let tool = builtToolPath() else { return }
        let process = try ToolProcess(tool: tool, ["serve"] + arguments + ["--socket", "/tmp/swift-vfio-nvme-refused.sock"])
        let ending = process.waitForExit(timeout: .seconds(30))
        #expect(ending != .exited(0))
        #expect(process.log.contains(message), "\(process.log)")
    }
}
