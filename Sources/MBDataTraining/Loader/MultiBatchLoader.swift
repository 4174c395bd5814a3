import AsyncAlgorithms

/// Feeds ready batches to `concurrency` concurrent calls of a `Trainer`, exactly once per
/// epoch, with a small checkpoint that resumes mid-epoch.
///
/// ```swift
/// var config = MultiBatchLoader.Configuration(batchSize: 64, seed: 7, epochs: 0..<10)
/// config.concurrency = 4
/// config.mode = .synchronous
/// let loader = try await MultiBatchLoader(dataset: dataset, configuration: config)
/// try await loader.run(trainer: MyTrainer())
/// let checkpoint = await loader.checkpoint()
/// ```
///
/// The batches come from a live dataset or a shard set (`MultiBatchLoader(dataset:…)` and
/// `(shards:…)`, in MBData) or from a ``RemoteBatchSource`` such as an `mbdata serve`
/// daemon (`MultiBatchLoader(remote:…)`, which needs only this module and MBDataClient).
public final class MultiBatchLoader: Sendable {
    /// How concurrent calls are grouped.
    public enum Mode: String, Sendable, Codable {
        /// Steps of `concurrency` batches: step s+1 starts after every batch of step s returned.
        case synchronous
        /// At most `concurrency` batches in flight; a new one starts as soon as one returns.
        case asynchronous
    }

    /// The configuration the loader was made with.
    public let configuration: Configuration
    private let source: Source
    private let cursor: CursorTracker
    private let stopSignal = StopSignal()
    private let inFlightCalls = InFlightCounter()

    private enum Source: Sendable {
        case local(any LocalBatchFeed)
        case remote(any RemoteBatchSource)
    }

    /// A loader over batches prepared in this process; the storage side's initializers end here.
    package init(feed: some LocalBatchFeed, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint?) throws {
        try configuration.validate()
        let resumed = try checkpoint?.resuming(configuration)
        try resumed?.check(plan: feed.plan)
        self.configuration = configuration
        cursor = CursorTracker(resumed ?? LoaderCheckpoint(start: configuration, plan: feed.plan))
        source = .local(feed)
    }

    /// Receives batches from a remote source (an `mbdata serve` daemon through
    /// MBDataClient); the remote cursor follows this loader's checkpoint. A checkpoint taken
    /// with other settings is refused before the source is asked anything.
    public init(remote: some RemoteBatchSource, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) async throws {
        try configuration.validate()
        let resumed = try checkpoint?.resuming(configuration)
        let plan = try await remote.prepare(configuration, resumingFrom: resumed)
        try resumed?.check(plan: plan)
        self.configuration = configuration
        cursor = CursorTracker(resumed ?? LoaderCheckpoint(start: configuration, plan: plan))
        source = .remote(remote)
    }

    /// Trainer calls running now: 0 between runs, at most `concurrency`.
    ///
    /// In asynchronous mode this is how many gradients may be computed on weights that other
    /// calls are about to change. It bounds the calls running at once, not the staleness of an
    /// update: while one slow call runs, the other slots may start and finish many batches (see
    /// "Reproducibility" in the README for measured figures). In synchronous mode every call of
    /// a step reads the weights the previous `finishStep` left, whatever this count is.
    /// ``TrainingContext/inFlight`` is the same count as a call started.
    public var inFlight: Int { inFlightCalls.value }

    /// The position now: only batches whose `train` call returned count as finished.
    public func checkpoint() async -> LoaderCheckpoint { await cursor.snapshot() }

    /// Ends the current run early (or the next one, if none is running): no new batch
    /// starts — in synchronous mode, the step in progress is completed first, `finishStep`
    /// included — the calls in flight finish, and `run` returns normally with every finished
    /// batch in the checkpoint. `TrainingContext.stop()` does the same from inside a trainer.
    public func stop() { stopSignal.request() }

    /// Runs every unfinished batch of the configured epochs through `trainer`.
    ///
    /// - Returns normally when every batch is finished, or after ``stop()``.
    /// - Throws `MBDataError` with code `.trainerFailed` when a trainer throws (its error is
    ///   the `cause`); no new batch starts and the calls in flight finish first (or are
    ///   cancelled, per `Configuration.cancelInFlightOnFailure`). The first failure wins.
    /// - Throws `CancellationError` when the enclosing task is cancelled, after the calls in
    ///   flight returned (they see the cancellation as usual; those that return normally count
    ///   as finished).
    /// - Throws the source's `MBDataError` when batches cannot be read, decoded or received.
    public func run(trainer: some Trainer) async throws {
        defer { stopSignal.clear() }
        let snapshot = await cursor.snapshot()
        let items = configuration.epochs.flatMap { epoch in
            (0..<snapshot.batchesPerEpoch).compactMap { batch in
                snapshot.isFinished(epoch: epoch, batch: batch) ? nil : PlanItem(epoch: epoch, batch: batch, rank: configuration.rank)
            }
        }
        guard !items.isEmpty else { return }
        let finishedBefore = snapshot.finishedBatchCount
        switch source {
        case .local(let feed):
            let batches = try feed.batches(items, configuration: configuration)
            do {
                try await consume(batches.sequence, trainer: trainer, finishedBefore: finishedBefore) { _, _ in }
            } catch {
                await batches.stop()
                throw error
            }
            await batches.stop()
        case .remote(let remote):
            try await runRemote(remote, epochs: Array(Set(items.map(\.epoch))).sorted(), trainer: trainer, finishedBefore: finishedBefore)
        }
    }

    /// Streams the epochs from `remote` into the consume loop and acks each finished batch.
    private func runRemote(_ remote: some RemoteBatchSource, epochs: [Int], trainer: some Trainer, finishedBefore: Int) async throws {
        let configuration = self.configuration
        let channel = AsyncThrowingChannel<Batch, any Error>()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for epoch in epochs {
                        try await remote.stream(epoch: epoch, configuration: configuration) { ready in
                            await channel.send(try await Self.decode(ready, configuration: configuration))
                        }
                    }
                    channel.finish()
                } catch {
                    channel.fail(error)
                }
            }
            defer { group.cancelAll() }
            try await consume(channel, trainer: trainer, finishedBefore: finishedBefore) { epoch, batch in
                try await remote.finished(epoch: epoch, batch: batch, configuration: configuration)
            }
        }
    }

    /// Checks and decodes a frame received from a remote source, off the cooperative pool.
    static func decode(_ ready: ReadyBatch, configuration: Configuration) async throws -> Batch {
        try await runBlocking {
            guard XXH64.digest(ready.frame) == ready.checksum else {
                throw MBDataError(.corruptData, "checksum mismatch in the frame of epoch \(ready.epoch) batch \(ready.batch) rank \(ready.rank)")
            }
            let buffer = try LZ4Frame.decompress(ready.frame, limit: max(ready.uncompressedSize, 1), verifyingContentChecksum: false)
            guard buffer.count == ready.uncompressedSize else {
                throw MBDataError(.corruptData, "frame of batch \(ready.batch) decodes to \(buffer.count) bytes, the message says \(ready.uncompressedSize)")
            }
            return try configuration.transformed(Batch(epoch: ready.epoch, index: ready.batch, rank: ready.rank, safetensors: buffer))
        }
    }

    /// Feeds `batches` to `concurrency` concurrent trainer calls; `finished` runs after the
    /// cursor recorded a batch. `finishedBefore` batches were finished before this run.
    private func consume(
        _ batches: some AsyncSequence<Batch, any Error>, trainer: some Trainer, finishedBefore: Int,
        finished: @escaping @Sendable (Int, Int) async throws -> Void
    ) async throws {
        let k = configuration.concurrency
        let synchronous = configuration.mode == .synchronous
        let cursor = self.cursor
        let stopSignal = self.stopSignal
        let cancelInFlight = configuration.cancelInFlightOnFailure
        let inFlightCalls = self.inFlightCalls
        // The global step of this run's first batch (synchronous: its step's number).
        let firstStep = synchronous ? finishedBefore / k : finishedBefore

        try await withThrowingTaskGroup(of: Int.self) { group in
            var inFlight = 0
            var position = 0
            var firstError: (any Error)?
            // A call holds its slot until it returns: one model replica or device stream per
            // slot is never used by two calls at once, however the calls finish.
            var freeSlots = Array((0..<k).reversed())

            func drain(_ count: Int) async {
                var remaining = count
                while remaining > 0 {
                    do {
                        guard let slot = try await group.next() else { break }
                        freeSlots.append(slot)
                        freeSlots.sort(by: >)
                    } catch {
                        if firstError == nil {
                            firstError = error
                            if cancelInFlight { group.cancelAll() }
                        }
                    }
                    remaining -= 1
                    inFlight -= 1
                }
            }

            /// Whether a stop request applies before the batch at `position` starts
            /// (synchronous mode: only at a step boundary).
            func stopsBefore(_ position: Int) -> Bool {
                stopSignal.isRequested && (!synchronous || position % k == 0)
            }

            for try await batch in batches {
                if Task.isCancelled || firstError != nil || stopsBefore(position) { break }
                if !synchronous && inFlight >= k { await drain(1) }
                if firstError != nil || stopsBefore(position) { break }
                guard let slot = freeSlots.popLast() else { preconditionFailure("no free slot with \(inFlight) of \(k) calls in flight") }
                let stepInRun = synchronous ? position / k : position
                var context = TrainingContext(
                    step: firstStep + stepInRun, stepInRun: stepInRun, slot: slot, cursor: cursor, stopSignal: stopSignal)
                context.inFlight = inFlightCalls.start()
                group.addTask {
                    do {
                        defer { inFlightCalls.end() }
                        try await trainer.train(batch, context: context)
                    } catch is CancellationError {
                        throw CancellationError()
                    } catch {
                        throw MBDataError(
                            .trainerFailed, "trainer failed on epoch \(batch.epoch) batch \(batch.index) (rank \(batch.rank))",
                            cause: error)
                    }
                    await cursor.finish(epoch: batch.epoch, batch: batch.index)
                    try await finished(batch.epoch, batch.index)
                    return slot
                }
                inFlight += 1
                position += 1
                if synchronous && position % k == 0 {
                    await drain(inFlight)
                    if firstError != nil { break }
                    try await trainer.finishStep(firstStep + position / k - 1)
                }
            }
            await drain(inFlight)
            if let firstError { throw firstError }
            try Task.checkCancellation()
            if synchronous && position % k != 0 { try await trainer.finishStep(firstStep + position / k) }
        }
    }
}
