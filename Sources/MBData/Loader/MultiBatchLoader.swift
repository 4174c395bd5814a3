import AsyncAlgorithms
import Foundation

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
public final class MultiBatchLoader: Sendable {
    public enum Mode: String, Sendable, Codable {
        /// Steps of `concurrency` batches: step s+1 starts after every batch of step s returned.
        case synchronous
        /// At most `concurrency` batches in flight; a new one starts as soon as one returns.
        case asynchronous
    }

    public struct Configuration: Sendable {
        /// Global batch size (samples per step across all ranks).
        public var batchSize: Int
        /// Shuffle seed. Default 0.
        public var seed: UInt64
        /// Epochs to run.
        public var epochs: Range<Int>
        /// Batches consumed at once (k). Default 1.
        public var concurrency: Int = 1
        /// Default `.asynchronous`.
        public var mode: Mode = .asynchronous
        /// Ranks sharing each global batch, and this loader's rank. Default 1 and 0.
        public var world: Int = 1
        public var rank: Int = 0
        /// The split to draw from; nil (default) for every sample.
        public var split: String?
        /// Default `.drop`.
        public var tail: TailPolicy = .drop
        /// Default true; false keeps ingest order.
        public var shuffle: Bool = true
        /// Batches prepared ahead of the trainers. Default 8.
        public var prefetchDepth: Int = 8
        /// Threads preparing batches. Default: the number of active cores.
        public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
        /// Fields with a variable first dimension to pad to a fixed length.
        public var padLengths: [String: Int] = [:]
        /// On a trainer failure: false (default) lets calls in flight finish; true cancels them.
        public var cancelInFlightOnFailure = false
        /// Runs on every sample before collation (live datasets only), in parallel.
        public var sampleTransform: SampleTransform?
        /// Runs on every decoded batch before the trainer sees it, in parallel.
        public var batchTransform: BatchTransform?

        public init(batchSize: Int, seed: UInt64 = 0, epochs: Range<Int>) {
            self.batchSize = batchSize
            self.seed = seed
            self.epochs = epochs
        }

        var planParameters: PlanParameters {
            PlanParameters(seed: seed, batchSize: batchSize, world: world, tail: tail, split: split, shuffle: shuffle)
        }
    }

    public let configuration: Configuration
    private let source: BatchSource
    private let cursor: CursorTracker
    private let start: LoaderCheckpoint

    /// Reads batches live from a dataset (pinned to its current version, or to the
    /// checkpoint's version when resuming).
    public init(dataset: Dataset, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) async throws {
        try Self.validate(configuration)
        let plan = try await dataset.plan(configuration.planParameters, version: checkpoint?.datasetVersion)
        self.configuration = configuration
        start = try Self.startingPoint(
            fingerprint: plan.fingerprint, version: plan.datasetVersion, batchesPerEpoch: plan.plan.batchesPerEpoch,
            configuration: configuration, checkpoint: checkpoint)
        cursor = CursorTracker(start)
        source = try await .live(dataset: dataset, plan: plan, configuration: configuration)
    }

    /// Reads batches from a shard directory written for the same plan parameters.
    public init(shards directory: String, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) throws {
        try Self.validate(configuration)
        let shards = try ShardSet(directory: directory)
        let manifest = shards.manifest
        guard manifest.plan.parameters == configuration.planParameters else {
            throw MBDataError(
                .invalidArgument, "the shards were written for \(manifest.plan.parameters), the loader asks for \(configuration.planParameters)",
                source: directory)
        }
        let have = manifest.plan.firstEpoch..<(manifest.plan.firstEpoch + manifest.plan.epochs)
        guard have.lowerBound <= configuration.epochs.lowerBound, configuration.epochs.upperBound <= have.upperBound else {
            throw MBDataError(.invalidArgument, "the shards hold epochs \(have), the loader asks for \(configuration.epochs)", source: directory)
        }
        self.configuration = configuration
        let plan = try EpochPlan(parameters: configuration.planParameters, sampleCount: manifest.dataset.samples)
        start = try Self.startingPoint(
            fingerprint: manifest.dataset.fingerprint, version: manifest.dataset.version, batchesPerEpoch: plan.batchesPerEpoch,
            configuration: configuration, checkpoint: checkpoint)
        cursor = CursorTracker(start)
        source = .shards(shards, configuration: configuration)
    }

    /// Receives batches from a remote source (an `mbdata serve` daemon through
    /// MBDataClient); the remote cursor follows this loader's checkpoint.
    public init(remote: some RemoteBatchSource, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) async throws {
        try Self.validate(configuration)
        let plan = try await remote.prepare(configuration, resumingFrom: checkpoint)
        self.configuration = configuration
        start = try Self.startingPoint(
            fingerprint: plan.fingerprint, version: plan.datasetVersion, batchesPerEpoch: plan.batchesPerEpoch,
            configuration: configuration, checkpoint: checkpoint)
        cursor = CursorTracker(start)
        source = .remote(remote, configuration: configuration)
    }

    private static func validate(_ configuration: Configuration) throws {
        guard configuration.concurrency > 0 else { throw MBDataError(.invalidArgument, "concurrency must be positive") }
        guard (0..<configuration.world).contains(configuration.rank) else {
            throw MBDataError(.invalidArgument, "rank \(configuration.rank) outside 0..<\(configuration.world)")
        }
        guard !configuration.epochs.isEmpty else { throw MBDataError(.invalidArgument, "no epochs to run") }
    }

    private static func startingPoint(
        fingerprint: String, version: Int, batchesPerEpoch: Int, configuration: Configuration, checkpoint: LoaderCheckpoint?
    ) throws -> LoaderCheckpoint {
        guard let checkpoint else {
            return LoaderCheckpoint(
                planFingerprint: fingerprint, datasetVersion: version, world: configuration.world, rank: configuration.rank,
                firstEpoch: configuration.epochs.lowerBound, epochCount: configuration.epochs.count, batchesPerEpoch: batchesPerEpoch,
                completedEpochs: 0, inProgress: [])
        }
        guard checkpoint.world == configuration.world, checkpoint.rank == configuration.rank else {
            throw MBDataError(
                .invalidArgument,
                "the checkpoint is for rank \(checkpoint.rank) of world \(checkpoint.world), the loader is rank \(configuration.rank) of world \(configuration.world)")
        }
        guard checkpoint.planFingerprint == fingerprint, checkpoint.datasetVersion == version else {
            throw MBDataError(
                .invalidArgument,
                "the checkpoint is for another dataset version or plan (version \(checkpoint.datasetVersion), \(checkpoint.planFingerprint); loader: version \(version), \(fingerprint))")
        }
        guard checkpoint.firstEpoch == configuration.epochs.lowerBound, checkpoint.epochCount == configuration.epochs.count else {
            throw MBDataError(
                .invalidArgument,
                "the checkpoint covers epochs \(checkpoint.firstEpoch)..<\(checkpoint.firstEpoch + checkpoint.epochCount), the loader \(configuration.epochs)")
        }
        return checkpoint
    }

    /// The position now: only batches whose `train` call returned count as finished.
    public func checkpoint() async -> LoaderCheckpoint { await cursor.snapshot() }

    /// Runs every unfinished batch of the configured epochs through `trainer`.
    public func run(trainer: some Trainer) async throws {
        let snapshot = await cursor.snapshot()
        let items = configuration.epochs.flatMap { epoch in
            (0..<snapshot.batchesPerEpoch).compactMap { batch in
                snapshot.isFinished(epoch: epoch, batch: batch) ? nil : PlanItem(epoch: epoch, batch: batch, rank: configuration.rank)
            }
        }
        guard !items.isEmpty else { return }
        if case .remote(let remote, let configuration) = source {
            let epochs = Array(Set(items.map(\.epoch))).sorted()
            let channel = AsyncThrowingChannel<Batch, any Error>()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        for epoch in epochs {
                            try await remote.stream(epoch: epoch, configuration: configuration) { ready in
                                await channel.send(try await BatchSource.decode(ready, configuration: configuration))
                            }
                        }
                        channel.finish()
                    } catch {
                        channel.fail(error)
                    }
                }
                defer { group.cancelAll() }
                try await consume(channel, trainer: trainer) { epoch, batch in
                    try await remote.finished(epoch: epoch, batch: batch, configuration: configuration)
                }
            }
        } else {
            let pool = try source.pool(items: items)
            do {
                try await consume(pool.stream(), trainer: trainer) { _, _ in }
            } catch {
                await pool.shutDown()
                throw error
            }
            await pool.shutDown()
        }
    }

    /// Feeds `batches` to `concurrency` concurrent trainer calls; `finished` runs after the
    /// cursor recorded a batch.
    private func consume(
        _ batches: some AsyncSequence<Batch, any Error>, trainer: some Trainer,
        finished: @escaping @Sendable (Int, Int) async throws -> Void
    ) async throws {
        let k = configuration.concurrency
        let synchronous = configuration.mode == .synchronous
        let cursor = self.cursor
        let cancelInFlight = configuration.cancelInFlightOnFailure

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

            for try await batch in batches {
                if Task.isCancelled || firstError != nil { break }
                if !synchronous && inFlight >= k { await drain(1) }
                if firstError != nil { break }
                guard let slot = freeSlots.popLast() else { preconditionFailure("no free slot with \(inFlight) of \(k) calls in flight") }
                let context = TrainingContext(step: synchronous ? position / k : position, slot: slot)
                group.addTask {
                    do {
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
                    try await trainer.finishStep(position / k - 1)
                }
            }
            await drain(inFlight)
            if let firstError { throw firstError }
            try Task.checkCancellation()
            if synchronous && position % k != 0 { try await trainer.finishStep(position / k) }
        }
    }
}
