import VFIO
import VFIOSystem

/// The device features that change the device rather than describe it: runtime low
/// power (vfio-pci, added in Linux 6.1) and bus mastering (vfio-cdx, Linux 6.7 and later).
extension HostDevice {
    /// `VFIO_DEVICE_FEATURE` SET of `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY`: lets the kernel
    /// runtime-suspend the device while it is idle (with CONFIG_PM; `power/runtime_status`
    /// becomes `suspended`). Mapped regions are unusable meanwhile (vfio-pci zaps them; a
    /// touch is `SIGBUS`); a `pread`/`pwrite` or ioctl resumes the device for its duration
    /// and it may suspend again after. Until `exitLowPower()`.
    /// - Throws: `VFIOError.errno("VFIO_DEVICE_FEATURE", …)`: `EINVAL` when low power is
    ///   entered already; `ENOTTY` from a driver without the feature (an mdev sample:
    ///   `EINVAL`, from the VFIO core, for drivers with no feature handler at all).
    public func enterLowPower() throws(VFIOError) {
        _ = try feature(.set(.lowPowerEntry))
    }

    /// `VFIO_DEVICE_FEATURE` SET of `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP`: as
    /// `enterLowPower()`, and when the device is woken (any access that resumes it), the
    /// kernel signals `wakeup` and leaves low power by itself: the device stays awake
    /// until low power is entered again.
    /// - Throws: as `enterLowPower()`; `EBADF`/`EINVAL` for a descriptor that is not an eventfd.
    public func enterLowPower(wakeup: EventFD) throws(VFIOError) {
        _ = try feature(.set(.lowPowerEntryWithWakeup(LowPowerEntryWithWakeup(wakeupEventfd: wakeup.fd))))
    }

    /// `VFIO_DEVICE_FEATURE` SET of `VFIO_DEVICE_FEATURE_LOW_POWER_EXIT`: the device is
    /// resumed and kept awake. Succeeds also when low power was not entered.
    /// - Throws: `VFIOError.errno("VFIO_DEVICE_FEATURE", ENOTTY)` from a driver without it.
    public func exitLowPower() throws(VFIOError) {
        _ = try feature(.set(.lowPowerExit))
    }

    /// `VFIO_DEVICE_FEATURE` SET of `VFIO_DEVICE_FEATURE_BUS_MASTER`
    /// (`VFIO_DEVICE_FEATURE_SET_MASTER` or `CLEAR_MASTER`): lets the device do DMA or
    /// stops it. Only vfio-cdx implements it (added in Linux 6.7); a PCI device's bus
    /// mastering is bit 2 of its command register, written through the config region.
    /// - Throws: `VFIOError.errno("VFIO_DEVICE_FEATURE", ENOTTY)` from vfio-pci (6.1 and
    ///   6.12 alike: 6.1 has no such feature, 6.12's vfio-pci does not implement it).
    public func setBusMaster(_ enabled: Bool) throws(VFIOError) {
        _ = try feature(.set(.busMaster(BusMaster(enabled ? .setMaster : .clearMaster))))
    }
}
