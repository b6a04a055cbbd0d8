import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// The display of a mediated GPU (the kernel's `mdpy` and `mbochs` samples, Intel GVT-g):
/// where the guest's framebuffer is, and a dma-buf of it.
extension HostDevice {
    /// `VFIO_DEVICE_QUERY_GFX_PLANE` with `VFIO_GFX_PLANE_TYPE_PROBE`: whether the device
    /// exposes its planes as `kind` (`.region` or `.dmabuf`).
    /// - Returns: false when the driver answers `EINVAL` (it has planes, not of this kind).
    /// - Throws: `VFIOError.errno("VFIO_DEVICE_QUERY_GFX_PLANE", ENOTTY)` from a device
    ///   without a display (vfio-pci).
    public func offersGFXPlanes(as kind: GFXPlaneFlags) throws(VFIOError) -> Bool {
        do throws(VFIOError) {
            _ = try queryGFXPlane(.query(drmPlaneType: GFXPlaneInfo.drmPlanePrimary, kind: kind, probe: true))
            return true
        } catch where error.errnoValue == EINVAL {
            return false
        }
    }

    /// `VFIO_DEVICE_QUERY_GFX_PLANE`: the plane `drmPlaneType` (`GFXPlaneInfo.drmPlanePrimary`
    /// by default, or `drmPlaneCursor`) as the guest has set it up, exposed as `kind`:
    /// format, modifier, size, stride, position, and the region index (`.region`) or
    /// the dma-buf id for `gfxDMABuf(_:)` (`.dmabuf`). A plane the guest has not enabled
    /// comes back with zero format and size (`isDisabled`).
    /// - Throws: `VFIOError.errno("VFIO_DEVICE_QUERY_GFX_PLANE", …)`: `EINVAL` for a kind
    ///   the device does not offer; `ENOTTY` from a device without a display; `ENOMEM`
    ///   from 6.12's `mbochs` on the first query of a new mode (it makes the dma-buf, but
    ///   does not keep the pointer; the next query finds it).
    public func gfxPlane(_ drmPlaneType: UInt32 = GFXPlaneInfo.drmPlanePrimary, as kind: GFXPlaneFlags) throws(VFIOError) -> GFXPlaneInfo {
        try queryGFXPlane(.query(drmPlaneType: drmPlaneType, kind: kind))
    }

    private func queryGFXPlane(_ query: GFXPlaneInfo) throws(VFIOError) -> GFXPlaneInfo {
        var bytes = query.encoded()
        try ioctl.call("VFIO_DEVICE_QUERY_GFX_PLANE", try descriptor.requireOpen("VFIO_DEVICE_QUERY_GFX_PLANE"),
                       CVFIO_VFIO_DEVICE_QUERY_GFX_PLANE, &bytes)
        return try GFXPlaneInfo(decoding: bytes)
    }

    /// `VFIO_DEVICE_GET_GFX_DMABUF`: a dma-buf of the framebuffer with the id a
    /// `.dmabuf` plane query gave (`GFXPlaneInfo.dmabufID`).
    /// - Throws: `VFIOError.errno("VFIO_DEVICE_GET_GFX_DMABUF", …)`: `ENOENT` for an id
    ///   the device does not know; `ENOTTY` from a device without dma-buf planes (`mdpy`,
    ///   which offers region planes only; vfio-pci).
    public func gfxDMABuf(_ id: UInt32) throws(VFIOError) -> GFXDMABuf {
        var bytes = u32Bytes(id)
        let fd = try ioctl.call("VFIO_DEVICE_GET_GFX_DMABUF", try descriptor.requireOpen("VFIO_DEVICE_GET_GFX_DMABUF"),
                                CVFIO_VFIO_DEVICE_GET_GFX_DMABUF, &bytes)
        // The kernel makes the descriptor without O_CLOEXEC (dma_buf_fd(buf, 0) in mbochs).
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return GFXDMABuf(descriptor: OwnedDescriptor(fd), id: id)
    }

    private func u32Bytes(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}

/// A dma-buf of a mediated display's framebuffer (`VFIO_DEVICE_GET_GFX_DMABUF`). The
/// descriptor is the caller's: pass it to a compositor or GPU API, or map it to read the
/// pixels. It keeps the kernel's device in use until closed.
public final class GFXDMABuf: Sendable {
    public let descriptor: OwnedDescriptor
    /// The id the plane query gave.
    public let id: UInt32

    init(descriptor: OwnedDescriptor, id: UInt32) {
        self.descriptor = descriptor
        self.id = id
    }

    /// The size the kernel gives the dma-buf (`lseek(fd, 0, SEEK_END)`): the plane's
    /// `size` rounded up to whole pages.
    /// - Throws: `VFIOError.errno("lseek", …)`.
    public func size() throws(VFIOError) -> Int {
        let fd = try descriptor.requireOpen("lseek")
        let end = lseek(fd, 0, SEEK_END)
        if end < 0 { throw .errno("lseek", errno) }
        return Int(end)
    }

    /// Maps `size` bytes of the dma-buf read-only (`MAP_SHARED`), where the exporter allows
    /// a CPU mapping at all.
    /// - Throws: `VFIOError.errno("mmap", …)`: `EINVAL` past the dma-buf's size, and from
    ///   6.12's `mbochs` always (it exports read-only, and its mmap wants `VM_SHARED`, which
    ///   the kernel clears for a shared mapping of a read-only file).
    public func map(size: Int) throws(VFIOError) -> DeviceMapping {
        try DeviceMapping(fd: try descriptor.requireOpen("mmap"), fileOffset: 0, size: size, regionOffset: 0,
                          readable: true, writable: false)
    }

    /// Closes the dma-buf now.
    public func close() { descriptor.close() }
}
