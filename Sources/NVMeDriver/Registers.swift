import NVMe
import VFIO

/// The controller registers of BAR0 through region accesses (bring-up and shutdown only;
/// doorbells go through `Doorbells`). 64-bit registers are accessed as two 32-bit halves,
/// low first, which every controller accepts.
struct Registers {
    let device: any VFIODevice
    private var bar: UInt32 { PCIRegionIndex.bar0.rawValue }

    func read32(_ offset: UInt64) throws(NVMeDriverError) -> UInt32 {
        do { return try device.read(UInt32.self, region: bar, offset: offset) } catch { throw .transport(error) }
    }

    func write32(_ value: UInt32, _ offset: UInt64) throws(NVMeDriverError) {
        do { try device.write(value, region: bar, offset: offset) } catch { throw .transport(error) }
    }

    func read64(_ offset: UInt64) throws(NVMeDriverError) -> UInt64 {
        let low = try read32(offset)
        let high = try read32(offset + 4)
        return UInt64(high) << 32 | UInt64(low)
    }

    func write64(_ value: UInt64, _ offset: UInt64) throws(NVMeDriverError) {
        try write32(UInt32(truncatingIfNeeded: value), offset)
        try write32(UInt32(truncatingIfNeeded: value >> 32), offset + 4)
    }

    var capabilities: ControllerCapabilities { get throws(NVMeDriverError) { ControllerCapabilities(rawValue: try read64(ControllerRegister.capabilities)) } }
    var status: ControllerStatus { get throws(NVMeDriverError) { ControllerStatus(rawValue: try read32(ControllerRegister.status)) } }
    var configuration: ControllerConfiguration {
        get throws(NVMeDriverError) { ControllerConfiguration(rawValue: try read32(ControllerRegister.configuration)) }
    }

    /// Polls CSTS until `condition` holds (no event announces a register change), every
    /// 100 µs at first, backing off to 10 ms; `.timeout(what)` after `timeout`. A fatal
    /// status (CFS) ends the wait with `.controllerFatal` unless `fatalIsAnswer`.
    func wait(for what: String, timeout: Duration, fatalIsAnswer: Bool = false,
              _ condition: (ControllerStatus) -> Bool) async throws(NVMeDriverError) -> ControllerStatus {
        let deadline = ContinuousClock.now + timeout
        var pause = Duration.microseconds(100)
        while true {
            let s = try status
            if condition(s) { return s }
            if s.fatal && !fatalIsAnswer { throw .controllerFatal("waiting for \(what)") }
            if ContinuousClock.now > deadline { throw .timeout("\(what) (CSTS 0x\(String(s.rawValue, radix: 16)))") }
            do { try await Task.sleep(for: pause) } catch { throw .timeout("\(what): cancelled") }
            pause = min(pause * 2, .milliseconds(10))
        }
    }

    /// Clears CC.EN (a controller reset) and waits for CSTS.RDY = 0 within `timeout`.
    func disable(timeout: Duration) async throws(NVMeDriverError) {
        let cc = try configuration
        if cc.enable { try write32(cc.rawValue & ~1, ControllerRegister.configuration) }
        _ = try await wait(for: "CSTS.RDY = 0", timeout: timeout, fatalIsAnswer: true) { !$0.ready }
    }

    /// A normal shutdown: CC.SHN = 01b, then waits for CSTS.SHST = complete. Does nothing
    /// on a controller that is not enabled.
    func shutDown(timeout: Duration) async throws(NVMeDriverError) {
        let cc = try configuration
        guard cc.enable, try status.ready else { return }
        let shn = cc.rawValue & ~(0x3 << 14) | UInt32(ControllerConfiguration.ShutdownNotification.normal.rawValue) << 14
        try write32(shn, ControllerRegister.configuration)
        _ = try await wait(for: "CSTS.SHST = shutdown complete", timeout: max(timeout, .seconds(5))) { $0.shutdown == .complete }
    }
}
