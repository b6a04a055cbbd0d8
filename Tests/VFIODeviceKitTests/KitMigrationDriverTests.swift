import Testing
import VFIO
import VFIODeviceKit

/// The driver on every arc and every (from, to) pair of the four feature combinations.
@Suite struct KitMigrationDriverArcTests {
    static let combinations = MigrationFeatures.validCombinations

    /// Brings a fresh driver to `state` (writing a valid stream when it passes RESUMING is
    /// not needed: only RESUMING itself is entered from STOP).
    static func driver(at state: MigrationState, features: MigrationFeatures) throws -> (MigrationDriver, RecordingModel) {
        let model = RecordingModel(features: features)
        let driver = try MigrationDriver(device: model)
        try driver.setState(state)
        #expect(driver.currentState == state)
        model.clearLog()
        return (driver, model)
    }

    static func expectedStream(_ state: MigrationState) -> MigrationStreamDirection? {
        state == .resuming ? .resuming : state.isSaving ? .saving : nil
    }

    @Test(arguments: combinations)
    func everyArc(features: MigrationFeatures) throws {
        let arcs = MigrationStateMachine.arcs(for: features)
        #expect(!arcs.isEmpty)
        for arc in arcs {
            let (driver, model) = try Self.driver(at: arc.from, features: features)
            let image = (0..<300).map { UInt8(($0 * 7) & 0xFF) }
            if arc.from == .resuming { try driver.writeData(try savedStream(data: image)) }
            // Read part of an open saving stream: a continuing stream goes on from there.
            var partial: [UInt8] = []
            if arc.from.isSaving { partial = try driver.readData(max: 10) }

            let opened = try driver.setState(arc.to)

            #expect(driver.currentState == arc.to, "\(arc)")
            #expect(opened == arc.opensDataSession, "\(arc): opened \(opened)")
            #expect(driver.openStream == Self.expectedStream(arc.to), "\(arc)")
            let fromRun = MigrationRunState(arc.from)!, toRun = MigrationRunState(arc.to)!
            let log = model.log.withLock { $0 }
            #expect(log.runStates == (fromRun == toRun ? [] : [toRun]), "\(arc): run states \(log.runStates)")
            // saveState: once when a saving stream opens, once more on entering STOP_COPY.
            let saves = arc.opensDataSession && arc.to != .resuming || arc.to == .stopCopy ? 1 : 0
            #expect(log.saves == saves, "\(arc): \(log.saves) saves")
            #expect(log.loads.map(\.state) == (arc.from == .resuming ? [image] : []), "\(arc)")
            if arc.from == .resuming { #expect(log.loads.first?.version == 2) }

            if arc.from.isSaving && arc.to.isSaving {
                // Same stream: the next bytes are the rest of the first record, not a new one.
                let next = try driver.readData(max: 4)
                #expect(partial.count == 10 && next.count == 4)
                #expect(next != [0x53, 0x56, 0x46, 0x4d], "\(arc): a new stream started")
                var rest = try drain(driver)
                if driver.currentState != .stopCopy {
                    try driver.setState(.stopCopy)
                    rest += try drain(driver)
                }
                let stream = partial + next + rest
                let decoded = try MigrationStream.decode(stream, expecting: model.migrationIdentity)
                #expect(decoded.state == model.data)
            }
            if arc.opensDataSession && arc.to.isSaving {
                let first = try driver.readData(max: 4)
                #expect(first == [0x53, 0x56, 0x46, 0x4d], "\(arc): stream starts with the magic")
            }
        }
    }

    @Test(arguments: combinations)
    func everyPair(features: MigrationFeatures) throws {
        let states = MigrationStateMachine.supportedStates(for: features)
        for from in states {
            for to in states {
                let (driver, model) = try Self.driver(at: from, features: features)
                if from == .resuming { try driver.writeData(try savedStream(data: [1, 2, 3])) }
                let streamBefore = driver.openStream
                let path: [MigrationArc]
                do {
                    path = try MigrationStateMachine.path(from: from, to: to, features: features)
                } catch {
                    let thrown = #expect(throws: VFIOError.self) { try driver.setState(to) }
                    #expect(thrown?.operation == MigrationStateMachine.operation)
                    #expect(driver.currentState == from && driver.openStream == streamBefore, "\(from) -> \(to)")
                    continue
                }
                let opened = try driver.setState(to)
                #expect(driver.currentState == to, "\(from) -> \(to)")
                #expect(opened == (path.last?.opensDataSession ?? false))
                #expect(driver.openStream == (from == to ? streamBefore : Self.expectedStream(to)), "\(from) -> \(to)")
                // The model saw one run-state change per arc that changes it, in order.
                let expectedRuns = path.compactMap { arc -> MigrationRunState? in
                    let a = MigrationRunState(arc.from)!, b = MigrationRunState(arc.to)!
                    return a == b ? nil : b
                }
                #expect(model.log.withLock { $0.runStates } == expectedRuns, "\(from) -> \(to)")
                #expect(model.log.withLock { $0.loads.count } == (path.contains { $0.from == .resuming } ? 1 : 0))
            }
        }
    }

    @Test func featuresWithoutStopCopyAreRefused() {
        for features: MigrationFeatures in [[], [.p2p], [.preCopy], [.p2p, .preCopy]] {
            #expect(throws: VFIOError.self) { try MigrationDriver(device: RecordingModel(features: features)) }
        }
        // Unknown bits are dropped.
        let driver = try? MigrationDriver(device: RecordingModel(features: MigrationFeatures(rawValue: 0x11)))
        #expect(driver?.features == [.stopCopy])
    }

    @Test func refusedRequestsChangeNothing() throws {
        let (driver, model) = try Self.driver(at: .stopCopy, features: [.stopCopy, .p2p, .preCopy])
        let e = #expect(throws: VFIOError.self) { try driver.setState(.preCopy) }
        #expect(text(e).contains("STOP_COPY -> PRE_COPY"))
        #expect(throws: VFIOError.self) { try driver.setState(.error) }
        #expect(driver.currentState == .stopCopy && driver.openStream == .saving)
        #expect(model.log.withLock { $0.runStates }.isEmpty)
        // A state the device does not offer.
        let (plain, _) = try Self.driver(at: .running, features: [.stopCopy])
        let p2p = #expect(throws: VFIOError.self) { try plain.setState(.runningP2P) }
        #expect(text(p2p).contains("P2P"))
        #expect(plain.currentState == .running)
    }

    @Test func dataCallsOutsideTheirStreamsFail() throws {
        let (driver, _) = try Self.driver(at: .running, features: [.stopCopy, .preCopy])
        let read = #expect(throws: VFIOError.self) { try driver.readData(max: 10) }
        #expect(text(read).contains("no saving data stream"))
        #expect(throws: VFIOError.self) { try driver.writeData([1]) }
        #expect(throws: VFIOError.self) { try driver.precopyInfo() }
        try driver.setState(.resuming)
        #expect(throws: VFIOError.self) { try driver.readData(max: 10) }
        #expect(try driver.writeData([1, 2, 3]) == 3)
        try driver.setState(.stop, orError: true)
        // A stream limit.
        let small = try MigrationDriver(device: RecordingModel(), maximumStreamSize: 100)
        try small.setState(.resuming)
        try small.writeData([UInt8](repeating: 0, count: 60))
        let full = #expect(throws: VFIOError.self) { try small.writeData([UInt8](repeating: 0, count: 41)) }
        #expect(full?.errnoValue == DeviceErrno.ENOSPC)
        #expect(try small.writeData([UInt8](repeating: 0, count: 40)) == 40)
    }
}

extension MigrationDriver {
    /// Test helper: a move that may end in ERROR (its error is ignored).
    func setState(_ state: MigrationState, orError: Bool) throws {
        do { try setState(state) } catch where orError {}
    }
}

/// What a failed arc leaves behind, ERROR and reset.
@Suite struct KitMigrationFailureTests {
    @Test func failedSaveLeavesTheSourceState() throws {
        let model = RecordingModel()
        let driver = try MigrationDriver(device: model)
        model.log.withLock { $0.failSave = true }
        let e = #expect(throws: VFIOError.self) { try driver.setState(.stopCopy) }
        // RUNNING -> RUNNING_P2P -> STOP done, STOP -> STOP_COPY failed.
        #expect(e?.operation.hasPrefix("STOP -> STOP_COPY [recorder save]") == true, "\(text(e))")
        #expect(e?.errnoValue == DeviceErrno.EIO)
        #expect(driver.currentState == .stop && driver.openStream == nil)
        #expect(model.log.withLock { $0.runState } == .stopped)
        // PRE_COPY fails to open: still RUNNING, still running.
        let e2 = #expect(throws: VFIOError.self) { try driver.setState(.preCopy) }
        #expect(text(e2).contains("RUNNING -> PRE_COPY"))
        #expect(driver.currentState == .running && model.log.withLock { $0.runState } == .running)
        model.log.withLock { $0.failSave = false }
        try driver.setState(.preCopy)
        // The final save fails on PRE_COPY_P2P -> STOP_COPY: back to quiescent, stream kept.
        model.log.withLock { $0.failSave = true }
        #expect(throws: VFIOError.self) { try driver.setState(.stopCopy) }
        #expect(driver.currentState == .preCopyP2P && driver.openStream == .saving)
        #expect(model.log.withLock { $0.runStates }.suffix(2) == [.stopped, .quiescent])
    }

    @Test func runStateFailureIsUndoneOrErrors() throws {
        let model = RecordingModel()
        let driver = try MigrationDriver(device: model)
        model.log.withLock { $0.failRun = [.stopped] }
        let e = #expect(throws: VFIOError.self) { try driver.setState(.stop) }
        #expect(e?.operation.hasPrefix("RUNNING_P2P -> STOP") == true, "\(text(e))")
        #expect(driver.currentState == .runningP2P)
        #expect(model.log.withLock { $0.runState } == .quiescent)
        // Cannot stop and cannot go back: ERROR.
        model.log.withLock { $0.failRun = [.stopped, .quiescent] }
        #expect(throws: VFIOError.self) { try driver.setState(.stop) }
        #expect(driver.currentState == .error)
        let stuck = #expect(throws: VFIOError.self) { try driver.setState(.running) }
        #expect(text(stuck).contains("ERROR"))
        // Reset needs the model to run.
        model.log.withLock { $0.failRun = [.running] }
        #expect(throws: VFIOError.self) { try driver.reset() }
        #expect(driver.currentState == .error)
        model.log.withLock { $0.failRun = [] }
        try driver.reset()
        #expect(driver.currentState == .running && model.log.withLock { $0.runState } == .running)
    }

    @Test func failedLoadIsError() throws {
        let model = RecordingModel()
        let driver = try MigrationDriver(device: model)
        try driver.setState(.resuming)
        try driver.writeData(try savedStream(data: [9, 9]))
        model.log.withLock { $0.failLoad = true }
        let e = #expect(throws: VFIOError.self) { try driver.setState(.running) }
        #expect(e?.operation == "RESUMING -> STOP [recorder state]", "\(text(e))")
        #expect(driver.currentState == .error && driver.openStream == nil)
        model.log.withLock { $0.failLoad = false }
        try driver.reset()
        #expect(driver.currentState == .running)
    }

    @Test func resetDropsStreamsFromAnyState() throws {
        for state in MigrationStateMachine.supportedStates(for: [.stopCopy, .p2p, .preCopy]) {
            let model = RecordingModel()
            let driver = try MigrationDriver(device: model)
            try driver.setState(state)
            try driver.reset()
            #expect(driver.currentState == .running && driver.openStream == nil)
            #expect(model.log.withLock { $0.runState } == .running)
        }
    }

    @Test func interruptsAreHeldWhileStopped() throws {
        let context = InMemoryDeviceContext()
        let model = RecordingModel()
        let device = try AttachedDevice(model: model, context: context)
        let driver = try #require(device.migration)
        model.ring()
        #expect(context.irqCount(index: 0) == 1)
        try driver.setState(.runningP2P)
        model.ring()  // quiescent devices may still interrupt
        #expect(context.irqCount(index: 0) == 2)
        try driver.setState(.stop)
        model.ring()
        model.ring()
        #expect(context.irqCount(index: 0) == 2)
        #expect(device.tracker.heldInterrupts == [IRQSignal(index: 0, vector: 0)])
        try driver.setState(.running)
        #expect(context.irqCount(index: 0) == 3)
        #expect(device.tracker.heldInterrupts.isEmpty)
        // Reset releases them too.
        try driver.setState(.stopCopy)
        model.ring()
        try device.reset()
        #expect(context.irqCount(index: 0) == 4)
    }
}
