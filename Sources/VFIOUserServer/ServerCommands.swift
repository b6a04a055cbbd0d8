import CVFIO
import Glibc
import VFIO
import VFIODeviceKit
import VFIOSystem
import VFIOUserWire

/// The commands the serving thread reads whole (all but REGION_READ / WRITE and
/// MIG_DATA_READ / WRITE), handled with the device lock held.
extension VFIOUserServer {
    /// Handles `message` and sends its reply (an error reply when it fails; none with
    /// NO_REPLY). Descriptors the handler did not take are closed.
    /// - Throws: only the socket's errors.
    func serveCommand(_ message: VFIOUserMessage, _ socket: VFIOUserSocket, _ state: inout ServerState) throws(VFIOError) {
        let header = message.header
        let outcome: Result<([UInt8], [Int32]), VFIOError>
        do throws(VFIOError) {
            outcome = .success(try handle(message, &state.session))
        } catch {
            outcome = .failure(error)
        }
        message.closeDescriptors()   // whatever the handler did not take
        switch outcome {
        case .success(let (payload, fds)):
            logger.trace("handled", metadata: ["header": "\(header)"])
            if header.wantsReply {
                try socket.send(id: header.messageID, command: header.command, flags: .reply, payload: payload, fds: fds)
            }
        case .failure(let error):
            logger.debug("command failed", metadata: ["header": "\(header)", "error": "\(error)"])
            if header.wantsReply {
                try socket.send(id: header.messageID, command: header.command, flags: [.reply, .error], error: UInt32(replyErrno(error)))
            }
        }
    }

    /// Handles a command; returns the reply payload and descriptors (borrowed).
    private func handle(_ message: VFIOUserMessage, _ session: inout SessionState) throws(VFIOError) -> ([UInt8], [Int32]) {
        let header = message.header
        guard let command = VFIOUserCommand(rawValue: header.command) else {
            throw .errno("command \(header.command)", ENOSYS)
        }
        if command != .version && !session.negotiated {
            throw .errno("\(command.cName) before VFIO_USER_VERSION", EINVAL)
        }
        if !message.fds.isEmpty && command != .dmaMap && command != .deviceSetIRQs {
            throw .errno("\(command.cName) carries no descriptors", EINVAL)
        }
        let payload = message.payload
        switch command {
        case .version:
            return (try handleVersion(payload, &session), [])
        case .dmaMap:
            try handleDMAMap(payload, message.takeDescriptors(), &session)
            return ([], [])
        case .dmaUnmap:
            return (try handleDMAUnmap(payload), [])
        case .deviceGetInfo:
            _ = try VFIOUserDeviceInfo(decoding: payload)   // argsz at least 16
            let reply = VFIOUserDeviceInfo(flags: model.deviceFlags.subtracting(.caps),
                                           numRegions: UInt32(model.regions.count), numIRQs: UInt32(model.irqs.count))
            return (reply.encoded, [])
        case .deviceGetRegionInfo:
            return try handleRegionInfo(payload)
        case .deviceGetRegionIOFDs:
            return try handleRegionIOFDs(payload, &session)
        case .deviceGetIRQInfo:
            let request = try IRQInfo(decoding: payload)
            guard let irq = model.irq(request.index) else { throw .errno("\(command.cName): no IRQ index \(request.index)", EINVAL) }
            return (irq.irqInfo.encoded(), [])
        case .deviceSetIRQs:
            try handleSetIRQs(payload, message.takeDescriptors(), &session)
            return ([], [])
        case .dmaRead, .dmaWrite:
            throw .errno("\(command.cName) goes from server to client", EINVAL)
        case .deviceReset:
            guard payload.isEmpty else { throw .errno("\(command.cName) has no payload", EINVAL) }
            guard model.deviceFlags.contains(.reset) else { throw .errno("\(command.cName): the device cannot be reset", EINVAL) }
            try device.reset()
            return ([], [])
        case .dirtyPages:
            _ = try VFIOUserDirtyPages(decoding: payload)
            throw .errno("\(command.cName) is deprecated; dirty tracking is a device feature", EOPNOTSUPP)
        case .regionWriteMulti:
            guard configuration.capabilities.writeMultiple else { throw .errno(command.cName, ENOSYS) }
            let request = try VFIOUserWriteMulti(decoding: payload)
            for write in request.writes {
                try write.data.withBytes { (raw: UnsafeRawBufferPointer) throws(VFIOError) in
                    if let memory = try regionTarget(write.region, offset: write.offset, count: raw.count, writing: true) {
                        memory.copyMemory(from: raw)
                    } else {
                        try model.write(region: write.region, offset: write.offset, from: raw)
                    }
                }
            }
            return (VFIOUserWriteMultiReply(completed: UInt64(request.writes.count)).encoded, [])
        case .deviceFeature:
            return (try handleFeature(payload, session), [])
        case .regionRead, .regionWrite, .migDataRead, .migDataWrite:
            // `serveOneMessage` serves these from the header on (serveRegionAccess, serveMigrationData).
            preconditionFailure("\(command.cName) reached the general path")
        }
    }

    private func handleVersion(_ payload: [UInt8], _ session: inout SessionState) throws(VFIOError) -> [UInt8] {
        let proposal = try VFIOUserVersion(decoding: payload)
        if session.negotiated { throw .errno("VFIO_USER_VERSION sent twice", EINVAL) }
        guard proposal.major == VFIOUserVersion.major else {
            throw .errno("VFIO_USER_VERSION \(proposal.major).\(proposal.minor): only major 0 is spoken", ENOTSUP)
        }
        let minor = min(proposal.minor, VFIOUserVersion.minor)
        session.clientCapabilities = proposal.capabilities
        session.negotiated = true
        logger.debug("version negotiated", metadata: ["client": "\(proposal.major).\(proposal.minor) \(proposal.capabilities.json)"])
        return VFIOUserVersion(major: VFIOUserVersion.major, minor: minor, capabilities: configuration.capabilities).encoded
    }

    private func handleRegionInfo(_ payload: [UInt8]) throws(VFIOError) -> ([UInt8], [Int32]) {
        var reader = ByteReader(payload, context: RegionInfo.cName)
        let argsz = try reader.argsz(fixedSize: RegionInfo.fixedSize)
        _ = try reader.u32()  // flags
        let index = try reader.u32()
        guard payload.count >= RegionInfo.fixedSize else {
            throw .malformed(RegionInfo.cName, "request of \(payload.count) bytes, 32 needed")
        }
        guard let region = model.region(index) else { throw .errno("VFIO_USER_DEVICE_GET_REGION_INFO: no region \(index)", EINVAL) }
        let info = region.regionInfo(offset: 0)
        let full = info.encoded()
        if full.count > Int(argsz) {
            // Too small for the chain: the fixed part, CAPS set, argsz the size needed.
            var writer = ByteWriter()
            RegionInfo(flags: info.flags, index: info.index, size: info.size, offset: info.offset).encode(into: &writer)
            var bytes = writer.bytes
            let flags = info.flags.union(info.capabilities.isEmpty ? [] : .caps).rawValue
            withUnsafeBytes(of: UInt32(full.count).littleEndian) { for i in 0..<4 { bytes[i] = $0[i] } }
            withUnsafeBytes(of: flags.littleEndian) { for i in 0..<4 { bytes[4 + i] = $0[i] } }
            return (bytes, [])
        }
        if info.flags.contains(.mmap), let file = regionFiles[index] {
            return (full, [file.descriptor.raw])
        }
        return (full, [])
    }

    private func handleDMAMap(_ payload: [UInt8], _ fds: [Int32], _ session: inout SessionState) throws(VFIOError) {
        let owned = fds.map { OwnedDescriptor($0) }
        defer { for fd in owned { fd.close() } }
        let request = try VFIOUserDMAMap(decoding: payload)
        guard owned.count <= 1 else { throw .errno("VFIO_USER_DMA_MAP: \(owned.count) descriptors, at most 1", EINVAL) }
        let page = UInt64(SystemCall.pageSize)
        // Mapped memory must be whole pages; message-only memory may be any range.
        guard owned.isEmpty || (request.address % page == 0 && request.size % page == 0) else {
            throw .errno("VFIO_USER_DMA_MAP: address 0x\(String(request.address, radix: 16)) and size 0x\(String(request.size, radix: 16)) must be page-aligned", EINVAL)
        }
        let range = try IOVARange.covering(request.address, request.size)
        try resources.withLock { (resources: inout ClientResources) throws(VFIOError) in try checkRoom(for: range, in: resources) }
        var mapping = ServerDMAMapping(flags: request.flags, base: nil, file: nil)
        if let fd = owned.first {
            guard request.offset % page == 0 else { throw .errno("VFIO_USER_DMA_MAP: offset must be page-aligned", EINVAL) }
            guard request.size <= UInt64(Int.max), request.offset <= UInt64(Int64.max) - request.size else {
                throw .errno("VFIO_USER_DMA_MAP: offset + size too large", EINVAL)
            }
            switch try DMADescriptorAccess.inspect(fd.raw, offset: request.offset, size: request.size, flags: request.flags) {
            case .direct(let key, let fileSize):
                // Only this thread adds mappings: what it finds here is still there below.
                mapping = try resources.withLock { (resources: inout ClientResources) throws(VFIOError) -> ServerDMAMapping in
                    let (file, base) = try resources.fileMapping(fd.raw, key: key, fileSize: fileSize, offset: request.offset,
                                                                 size: request.size, limit: configuration.maxMappedDMABytes)
                    return ServerDMAMapping(flags: request.flags, base: base, file: file)
                }
            case .messages(let reason):
                if !session.reportedMessageOnlyDescriptor {
                    session.reportedMessageOnlyDescriptor = true
                    logger.notice("DMA_MAP \(range): the descriptor is \(reason); DMA to such mappings goes through DMA_READ / DMA_WRITE messages")
                }
            }
        }
        // While all mapped memory is logged, the new mapping joins the log before DMA can
        // reach it (a mapping the log cannot take is refused; a file mapping made for it
        // alone goes with `mapping`).
        try device.tracker.dmaMapped(range)
        try resources.withLock { (resources: inout ClientResources) throws(VFIOError) in
            try checkRoom(for: range, in: resources)
            resources.mappings.insert(range, mapping)
            if let file = mapping.file { resources.retain(file) }
        }
        model.dmaMapped(range)
    }

    /// Refuses a DMA_MAP of `range` when the table is full (`ENOSPC`) or `range` overlaps
    /// a mapping (`EEXIST`).
    private func checkRoom(for range: IOVARange, in resources: ClientResources) throws(VFIOError) {
        if resources.mappings.count >= Int(configuration.capabilities.maxDMAMaps) {
            throw .errno("VFIO_USER_DMA_MAP: max_dma_maps (\(configuration.capabilities.maxDMAMaps)) reached", ENOSPC)
        }
        if let existing = resources.mappings.firstOverlap(with: range) {
            throw .errno("VFIO_USER_DMA_MAP: \(range) overlaps the mapping \(existing.range)", EEXIST)
        }
    }

    private func handleDMAUnmap(_ payload: [UInt8]) throws(VFIOError) -> [UInt8] {
        let request = try VFIOUserDMAUnmap(decoding: payload)
        if request.flags.contains(.getDirtyBitmap) {
            throw .errno("VFIO_USER_DMA_UNMAP: GET_DIRTY_BITMAP is not supported (no dirty tracking is running)", EOPNOTSUPP)
        }
        // Released (and the files unmapped) after the lock, once the notices are out.
        let removed: [IOVAMappingTable<ServerDMAMapping>.Entry]
        if request.flags.contains(.all) {
            removed = resources.withLock { resources in
                let all = resources.mappings.removeAll()
                for entry in all { if let file = entry.value.file { resources.release(file) } }
                return all
            }
        } else {
            let range = try IOVARange.covering(request.address, request.size)
            removed = try resources.withLock { (resources: inout ClientResources) throws(VFIOError) -> [IOVAMappingTable<ServerDMAMapping>.Entry] in
                let touched = resources.mappings.entries(overlapping: range)
                if touched.isEmpty { throw .errno("VFIO_USER_DMA_UNMAP: nothing is mapped in \(range)", ENOENT) }
                if let cut = touched.first(where: { $0.range.start < range.start || $0.range.last > range.last }) {
                    throw .errno("VFIO_USER_DMA_UNMAP: \(range) cuts through the mapping \(cut.range)", EINVAL)
                }
                for entry in touched {
                    resources.mappings.remove(startingAt: entry.range.start)
                    if let file = entry.value.file { resources.release(file) }
                }
                return touched
            }
        }
        for entry in removed { model.dmaUnmapped(entry.range) }
        return VFIOUserDMAUnmap(argsz: UInt32(VFIOUserDMAUnmap.size), flags: request.flags, address: request.address, size: request.size).encoded
    }

    private func handleSetIRQs(_ payload: [UInt8], _ fds: [Int32], _ session: inout SessionState) throws(VFIOError) {
        var owned = fds.map { OwnedDescriptor($0) }
        defer { for fd in owned { fd.close() } }
        var reader = ByteReader(payload, context: IRQSet.cName)
        var header = try IRQSetHeader(from: &reader)
        let dataPresent = reader.remaining
        let irqCount = model.irq(header.index)?.count ?? 0
        let isEventfd = header.flags.intersection(.dataTypeMask) == .dataEventfd
        var eventfdData: [Int32]?
        if isEventfd {
            // Descriptors travel as SCM_RIGHTS; the payload may (libvfio-user style) or may
            // not (QEMU) also carry the count × s32 array.
            let needed = UInt64(header.count) * 4
            if UInt64(dataPresent) >= needed && dataPresent > 0 {
                var values: [Int32] = []
                for _ in 0..<header.count { values.append(try reader.i32()) }
                eventfdData = values
            } else if needed + UInt64(IRQSetHeader.fixedSize) <= UInt64(UInt32.max) {
                header.argsz = max(header.argsz, UInt32(IRQSetHeader.fixedSize) + UInt32(needed))
            }
        }
        _ = try IRQSetValidation.validateAndPrepare(header, irqCount: irqCount, indexCount: UInt32(model.irqs.count),
                                                    dataBytesPresent: isEventfd ? Int(header.count) &* 4 : dataPresent)
        let action = header.flags.intersection(.actionTypeMask)
        let index = header.index
        switch header.flags.intersection(.dataTypeMask) {
        case .dataEventfd:
            // Which vectors get which descriptor (nil: unbind).
            var assignment: [OwnedDescriptor?] = []
            if let values = eventfdData {
                let wanted = values.filter { $0 >= 0 }.count
                guard wanted == owned.count else {
                    throw .errno("VFIO_USER_DEVICE_SET_IRQS: \(wanted) eventfd(s) named, \(owned.count) passed", EINVAL)
                }
                var next = 0
                for value in values {
                    if value >= 0 { assignment.append(owned[next]); next += 1 } else { assignment.append(nil) }
                }
            } else if owned.isEmpty {
                assignment = Array(repeating: nil, count: Int(header.count))
            } else {
                guard owned.count == Int(header.count) else {
                    throw .errno("VFIO_USER_DEVICE_SET_IRQS: count \(header.count) but \(owned.count) eventfd(s) passed", EINVAL)
                }
                assignment = owned
            }
            guard action == .actionTrigger else {
                try setIRQMaskEventfds(header, assignment, masking: action == .actionMask, &session)
                owned = []   // adopted by the watches
                return
            }
            for fd in assignment.compactMap({ $0 }) where !isEventFD(fd.raw) {
                throw .errno("VFIO_USER_DEVICE_SET_IRQS: descriptor is not an eventfd", EBADF)
            }
            let eventfds = assignment.map { $0.map(EventFD.init(adopting:)) }
            owned = []
            let enabled = resources.withLock { resources -> UInt32 in
                var vectors = resources.triggers[index] ?? [:]
                if header.count == 0 { vectors.removeAll() }
                for (i, fd) in eventfds.enumerated() {
                    let vector = header.start + UInt32(i)
                    if let fd { vectors[vector] = fd } else { vectors.removeValue(forKey: vector) }
                }
                resources.triggers[index] = vectors
                return (vectors.keys.max().map { $0 + 1 }) ?? 0
            }
            if enabled == 0 { dropIRQMaskEventfds(of: index, &session) }
            model.irqsConfigured(index: index, enabledVectors: enabled)
        case .dataNone where action == .actionTrigger && header.count == 0:
            resources.withLock { $0.triggers[index] = [:] }
            dropIRQMaskEventfds(of: index, &session)
            model.irqsConfigured(index: index, enabledVectors: 0)
        default:
            var selected: [UInt32] = []
            if header.flags.contains(.dataBool) {
                let bools = try reader.bytes(Int(header.count))
                for (i, b) in bools.enumerated() where b != 0 { selected.append(header.start + UInt32(i)) }
            } else {
                selected = (0..<header.count).map { header.start + $0 }
            }
            switch action {
            case .actionTrigger:
                for vector in selected { signal(index: index, vector: vector) }
            case .actionMask, .actionUnmask:
                guard model.irq(index)?.flags.contains(.maskable) == true else {
                    // vfio-pci: an index without a MASK/UNMASK handler (MSI, MSI-X, ERR, REQ).
                    throw .errno("VFIO_USER_DEVICE_SET_IRQS: IRQ index \(index) is not maskable", ENOTTY)
                }
                for vector in selected { model.irqMaskChanged(index: index, vector: vector, masked: action == .actionMask) }
            default:
                break
            }
        }
    }
}

/// True when `fd` is an eventfd (its /proc/self/fd link reads `anon_inode:[eventfd]`).
func isEventFD(_ fd: Int32) -> Bool {
    var buffer = [CChar](repeating: 0, count: 64)
    guard let n = try? SystemCall.retrying("readlink", { readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1) }), n > 0 else { return false }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "anon_inode:[eventfd]"
}
