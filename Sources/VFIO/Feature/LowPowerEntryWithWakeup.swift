/// `struct vfio_device_low_power_entry_with_wakeup`: the data of a SET of
/// `VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP`.
///
/// Like `LOW_POWER_ENTRY`, but the kernel signals `wakeupEventfd` when the device is
/// woken from low power, and does not let it re-enter low power until the user asks
/// again. Mapped regions are unusable until the low-power exit.
public struct LowPowerEntryWithWakeup: KernelStruct {
    public static let cName = "vfio_device_low_power_entry_with_wakeup"
    /// `sizeof(struct vfio_device_low_power_entry_with_wakeup)`
    public static let fixedSize = 8

    /// `wakeup_eventfd`: an eventfd the kernel signals on wake-up.
    public var wakeupEventfd: Int32

    public init(wakeupEventfd: Int32) {
        self.wakeupEventfd = wakeupEventfd
    }

    /// Writes the eventfd and a zero `reserved` word.
    public func encode(into writer: inout ByteWriter) {
        writer.i32(wakeupEventfd)
        writer.u32(0)
    }

    /// Reads the eventfd; `reserved` is not checked (the kernel ignores it).
    public init(from reader: inout ByteReader) throws(VFIOError) {
        wakeupEventfd = try reader.i32()
        try reader.skip(4)
    }
}
