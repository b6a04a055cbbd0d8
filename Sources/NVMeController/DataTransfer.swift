import NVMe
import VFIO

/// Moving a command's data between host memory (through its PRPs) and the controller.
extension ControllerCore {
    /// The host memory of `entry`'s data pointer for `length` bytes: Invalid Field for an
    /// SGL (PSDT != 0: SGLs are not supported), Invalid PRP Offset / Data Transfer Error as
    /// `PRP.segments` says.
    func segments(of entry: SubmissionQueueEntry, length: Int) -> Result<[DataSegment], NVMeStatus> {
        guard entry.dataTransfer == 0 else { return .failure(.invalidField) }
        let result = PRP.segments(prp1: entry.prp1, prp2: entry.prp2, length: length, pageSize: 4096) { address, count in
            guard let bytes = try? dmaRead(address, count: count * 8) else { return nil }
            return (0..<count).map { bytes.le($0 * 8, 8) }
        }
        return result.mapError(\.status)
    }

    /// Copies `bytes` to the host memory of `entry`'s data pointer.
    func copyToHost(_ bytes: UnsafeRawBufferPointer, entry: SubmissionQueueEntry) -> NVMeStatus {
        guard bytes.count > 0 else { return .success }
        switch segments(of: entry, length: bytes.count) {
        case .failure(let status): return status
        case .success(let segments):
            var at = 0
            for segment in segments {
                do {
                    try dmaWrite(segment.address, UnsafeRawBufferPointer(rebasing: bytes[at..<(at + segment.length)]))
                } catch {
                    return .dataTransferError
                }
                at += segment.length
            }
            return .success
        }
    }

    func copyToHost(_ bytes: [UInt8], entry: SubmissionQueueEntry) -> NVMeStatus {
        bytes.withUnsafeBytes { copyToHost($0, entry: entry) }
    }

    /// Copies the host memory of `entry`'s data pointer into `buffer`.
    func copyFromHost(into buffer: UnsafeMutableRawBufferPointer, entry: SubmissionQueueEntry) -> NVMeStatus {
        guard buffer.count > 0 else { return .success }
        switch segments(of: entry, length: buffer.count) {
        case .failure(let status): return status
        case .success(let segments):
            guard let context else { return .dataTransferError }
            var at = 0
            for segment in segments {
                do {
                    try context.dmaRead(iova: segment.address, into: UnsafeMutableRawBufferPointer(rebasing: buffer[at..<(at + segment.length)]))
                } catch {
                    return .dataTransferError
                }
                at += segment.length
            }
            return .success
        }
    }
}
