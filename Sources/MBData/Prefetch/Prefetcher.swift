import Foundation

/// One batch of a plan, collated and compressed, ready to store or send.
public struct ReadyBatch: Sendable, Hashable {
    public var epoch: Int
    /// The global batch index within the epoch.
    public var batch: Int
    public var rank: Int
    /// Real (non-padding) samples in the batch.
    public var sampleCount: Int
    /// Bytes of the safetensors buffer inside the frame.
    public var uncompressedSize: Int
    /// One LZ4 frame holding the safetensors buffer.
    public var frame: [UInt8]
    /// xxh64 of `frame`.
    public var checksum: UInt64

    public init(epoch: Int, batch: Int, rank: Int, sampleCount: Int, uncompressedSize: Int, frame: [UInt8], checksum: UInt64) {
        self.epoch = epoch
        self.batch = batch
        self.rank = rank
        self.sampleCount = sampleCount
        self.uncompressedSize = uncompressedSize
        self.frame = frame
        self.checksum = checksum
    }
}

/// How the prefetcher works.
public struct PrefetchConfiguration: Sendable, Hashable {
    /// Batches claimed but not yet taken by the consumer, at most (back-pressure). Default 8.
    public var depth: Int = 8
    /// Batches read, collated and compressed at once, at most (jobs on the process-wide
    /// ``BlockingExecutor``, whose size bounds them too). Default: the number of active cores.
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    /// LZ4 level: 0 (default) is the fast mode, 1–12 HC.
    public var compressionLevel: Int32 = 0
    /// Fields with a variable first dimension to pad to a fixed length.
    public var padLengths: [String: Int] = [:]

    public init() {}
}

/// One batch of a plan to produce: which epoch, global batch and rank.
public struct PlanItem: Sendable, Hashable, Codable {
    public var epoch: Int
    public var batch: Int
    public var rank: Int

    public init(epoch: Int, batch: Int, rank: Int) {
        self.epoch = epoch
        self.batch = batch
        self.rank = rank
    }

    /// Every batch of `epochs` for `ranks`, ordered by epoch, then batch, then rank.
    public static func all(of plan: EpochPlan, epochs: Range<Int>, ranks: [Int]) -> [PlanItem] {
        epochs.flatMap { epoch in
            (0..<plan.batchesPerEpoch).flatMap { batch in ranks.map { PlanItem(epoch: epoch, batch: batch, rank: $0) } }
        }
    }
}

/// Produces the batches of a plan in order — epoch, then batch, then rank — with one SQL
/// query per batch, collation and LZ4 compression spread over at most `workers` jobs on the
/// process-wide ``BlockingExecutor``, and at most `depth` batches held ahead of the consumer. Memory is bounded by
/// `depth × (compressed + uncompressed batch size)`, whatever the dataset size.
///
/// `next()` blocks; call it from a thread of your own (neither the cooperative pool nor a
/// job of the blocking executor), or use `batches()` from async code. `cancel()` (or
/// deinit) stops production.
public final class Prefetcher: Sendable {
    public let plan: DatasetPlan
    public let epochs: Range<Int>
    public let items: [PlanItem]
    public let configuration: PrefetchConfiguration
    public var totalBatches: Int { items.count }
    private let pool: OrderedWorkPool<ReadyBatch>

    /// Every batch of `epochs` for `ranks` (default: all ranks).
    public convenience init(
        dataset: Dataset, plan: DatasetPlan, epochs: Range<Int>, ranks: [Int]? = nil,
        configuration: PrefetchConfiguration = PrefetchConfiguration()
    ) async throws {
        let ranks = ranks ?? Array(0..<plan.parameters.world)
        guard ranks.allSatisfy({ (0..<plan.parameters.world).contains($0) }) else {
            throw MBDataError(.invalidArgument, "ranks \(ranks) outside 0..<\(plan.parameters.world)")
        }
        try await self.init(
            dataset: dataset, plan: plan, epochs: epochs, items: PlanItem.all(of: plan.plan, epochs: epochs, ranks: ranks),
            configuration: configuration)
    }

    /// The given batches, in the given order (a resumed run passes the unfinished ones).
    public convenience init(
        dataset: Dataset, plan: DatasetPlan, epochs: Range<Int>, items: [PlanItem],
        configuration: PrefetchConfiguration = PrefetchConfiguration()
    ) async throws {
        let producer = try await LiveBatchProducer(dataset: dataset, plan: plan, configuration: configuration)
        try self.init(plan: plan, epochs: epochs, items: items, producer: producer, configuration: configuration)
    }

    /// The given batches from any producer (live, or frames from a shard set).
    public init(
        plan: DatasetPlan, epochs: Range<Int>, items: [PlanItem], producer: some BatchProducer,
        configuration: PrefetchConfiguration = PrefetchConfiguration()
    ) throws {
        guard configuration.depth > 0, configuration.workers > 0 else {
            throw MBDataError(.invalidArgument, "prefetch depth and workers must be positive")
        }
        self.plan = plan
        self.epochs = epochs
        self.items = items
        self.configuration = configuration
        pool = OrderedWorkPool(count: items.count, workers: configuration.workers, depth: configuration.depth) { index in
            try producer.produce(items[index])
        }
    }

    deinit { pool.requestStop() }

    /// Batches prepared and waiting for the consumer.
    public var readyCount: Int { pool.readyCount }

    /// Stops production without waiting for the batches being produced (safe from async code).
    public func stop() { pool.requestStop() }

    /// Stops production and waits, blocking the caller, until no batch is being produced;
    /// `next()` then returns nil.
    public func cancel() { pool.stop() }

    /// The next batch in order, nil after the last; rethrows a worker's failure.
    public func next() throws -> ReadyBatch? { try pool.next() }

    /// The batches as an async sequence, taken from the workers only as the consumer asks.
    public func batches() -> some AsyncSequence<ReadyBatch, any Error> { pool.stream() }
}
