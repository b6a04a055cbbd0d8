import CVFIO
import Glibc
import VFIO
import VFIOSystem

/// An I/O page fault queue (`IOMMU_FAULT_QUEUE_ALLOC`, Linux 6.11): an iommufd object
/// whose file descriptor delivers the page faults of the HWPTs allocated with its id
/// (`IOMMUFDHWPTAlloc.faultID`) as `struct iommu_hwpt_pgfault` records, and takes
/// `struct iommu_hwpt_page_response` answers.
///
/// In Linux 6.12 only a nested (user-managed) HWPT takes a fault queue: a kernel-managed
/// paging HWPT answers `EOPNOTSUPP` to `IOMMU_HWPT_FAULT_ID_VALID`, and nesting needs an
/// IOMMU that offers it (VT-d in scalable mode with ECAP NEST, ARM SMMUv3). The queue
/// itself needs no IOMMU feature.
///
/// Closed and destroyed when the last reference goes away (the descriptor first: the
/// kernel keeps the object busy while its file is open).
public final class IOMMUFDFaultQueue: Sendable {
    public let iommufd: IOMMUFD
    /// The fault object's id.
    public let id: UInt32
    /// The queue's descriptor (`out_fault_fd`).
    public let descriptor: OwnedDescriptor

    init(iommufd: IOMMUFD, id: UInt32, descriptor: OwnedDescriptor) {
        self.iommufd = iommufd
        self.id = id
        self.descriptor = descriptor
    }

    deinit {
        descriptor.close()
        try? iommufd.destroy(id)
    }

    /// Reads the faults waiting in the queue, at most `limit` (`read(2)` of whole
    /// `struct iommu_hwpt_pgfault` records); empty when none waits (the kernel's read
    /// returns 0 then, it does not block).
    public func pendingFaults(limit: Int = 16) throws(VFIOError) -> [IOMMUFDPageFault] {
        let fd = try descriptor.requireOpen("read(iommufd fault queue)")
        let size = IOMMUFDPageFault.fixedSize * max(1, limit)
        let storage = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { storage.deallocate() }
        let got = try SystemCall.retryingNegatedErrno("read(iommufd fault queue)") {
            iommufd.ioctl.system.read(fd, UnsafeMutableRawBufferPointer(start: storage, count: size))
        }
        var faults: [IOMMUFDPageFault] = []
        let bytes = Array(UnsafeRawBufferPointer(start: storage, count: got))
        var offset = 0
        while offset + IOMMUFDPageFault.fixedSize <= bytes.count {
            faults.append(try IOMMUFDPageFault(decoding: Array(bytes[offset..<(offset + IOMMUFDPageFault.fixedSize)])))
            offset += IOMMUFDPageFault.fixedSize
        }
        return faults
    }
}

extension IOMMUFD {
    /// `IOMMU_FAULT_QUEUE_ALLOC`: a new, empty page fault queue with its descriptor.
    /// - Throws: `ENOTTY` on kernels before 6.11.
    public func allocateFaultQueue() throws(VFIOError) -> IOMMUFDFaultQueue {
        let operation = "IOMMU_FAULT_QUEUE_ALLOC"
        var bytes = IOMMUFDFaultAlloc().encoded()
        try ioctl.call(operation, try descriptor.requireOpen(operation), CVFIO_IOMMU_FAULT_QUEUE_ALLOC, &bytes)
        let reply = try IOMMUFDFaultAlloc(decoding: bytes)
        let fd = OwnedDescriptor(Int32(bitPattern: reply.outFaultFD))
        return IOMMUFDFaultQueue(iommufd: self, id: reply.outFaultID, descriptor: fd)
    }
}
