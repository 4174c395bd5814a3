import Foundation

/// One batch of a plan, collated and compressed, ready to store or send.
public struct ReadyBatch: Sendable, Hashable {
    /// The epoch the batch belongs to.
    public var epoch: Int
    /// The global batch index within the epoch.
    public var batch: Int
    /// The rank whose slice of the global batch this is (`0..<world`).
    public var rank: Int
    /// Real (non-padding) samples in the batch.
    public var sampleCount: Int
    /// Bytes of the safetensors buffer inside the frame.
    public var uncompressedSize: Int
    /// One LZ4 frame holding the safetensors buffer.
    public var frame: [UInt8]
    /// xxh64 of `frame`.
    public var checksum: UInt64

    /// A batch as received or read from elsewhere (a ``RemoteBatchSource`` delivers these).
    /// Nothing is checked here; the loader checks `checksum` against `frame` and the decoded
    /// size against `uncompressedSize` before a trainer sees the batch.
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

/// How a prefetcher (and `mbdata serve`'s live streams) prepare batches: how many threads,
/// how far ahead, how hard to compress, which fields to pad.
public struct PrefetchConfiguration: Sendable, Hashable {
    /// Batches claimed but not yet taken by the consumer, at most (back-pressure). Default 8.
    public var depth: Int = 8
    /// Threads that read, collate and compress. Default: the number of active cores.
    public var workers: Int = ProcessInfo.processInfo.activeProcessorCount
    /// LZ4 level: 0 (default) is the fast mode, 1–12 HC.
    public var compressionLevel: Int32 = 0
    /// Fields with a variable first dimension to pad to a fixed length.
    public var padLengths: [String: Int] = [:]

    /// The defaults: depth 8, one worker per active core, LZ4 fast mode, no padding.
    public init() {}
}

/// One batch of a plan to produce: which epoch, global batch and rank.
public struct PlanItem: Sendable, Hashable, Codable {
    /// The epoch the batch belongs to.
    public var epoch: Int
    /// The global batch index within the epoch (`0..<batchesPerEpoch`).
    public var batch: Int
    /// The rank whose slice of the global batch to produce (`0..<world`).
    public var rank: Int

    /// The batch `batch` of `epoch` for `rank`; checked when a prefetcher produces it.
    public init(epoch: Int, batch: Int, rank: Int) {
        self.epoch = epoch
        self.batch = batch
        self.rank = rank
    }

    /// Every batch of `epochs` for `ranks`, ordered by epoch, then batch, then rank.
    package static func all(of plan: EpochPlan, epochs: Range<Int>, ranks: [Int]) -> [PlanItem] {
        epochs.flatMap { epoch in
            (0..<plan.batchesPerEpoch).flatMap { batch in ranks.map { PlanItem(epoch: epoch, batch: batch, rank: $0) } }
        }
    }
}

/// Produces the batches of a plan in order — epoch, then batch, then rank — with one SQL
/// query per batch, collation and LZ4 compression spread over `workers` threads, and at
/// most `depth` batches held ahead of the consumer. Memory is bounded by
/// `depth × (compressed + uncompressed batch size)`, whatever the dataset size.
///
/// `next()` blocks; call it from a thread of your own (not the cooperative pool), or use
/// `batches()` from async code. `cancel()` (or deinit) stops the workers.
public final class Prefetcher: Sendable {
    /// The pinned plan the batches come from.
    public let plan: DatasetPlan
    /// The epochs the prefetcher was asked for (a shard manifest records them).
    public let epochs: Range<Int>
    /// The batches it produces, in the order it hands them out.
    public let items: [PlanItem]
    /// Depth, workers, compression level and padding.
    public let configuration: PrefetchConfiguration
    /// The number of batches it produces: `items.count`.
    public var totalBatches: Int { items.count }
    private let pool: OrderedWorkPool<ReadyBatch>

    /// Every batch of `epochs` for `ranks` (default: all ranks), read live from `dataset`.
    /// The workers start at once.
    ///
    /// - Throws: ``MBDataError`` with ``MBDataError/Code/invalidArgument`` for a rank outside
    ///   `0..<world`, a non-positive depth or worker count, or `padLengths` naming a field
    ///   whose first dimension is not variable; ``MBDataError/Code/invalidDataset`` when the
    ///   dataset has no schema.
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
    ///
    /// - Throws: ``MBDataError``, as ``init(dataset:plan:epochs:ranks:configuration:)`` does.
    public convenience init(
        dataset: Dataset, plan: DatasetPlan, epochs: Range<Int>, items: [PlanItem],
        configuration: PrefetchConfiguration = PrefetchConfiguration()
    ) async throws {
        let producer = try await LiveBatchProducer(dataset: dataset, plan: plan, configuration: configuration)
        try self.init(plan: plan, epochs: epochs, items: items, producer: producer, configuration: configuration)
    }

    /// The given batches from any producer (live, or frames from a shard set).
    package init(
        plan: DatasetPlan, epochs: Range<Int>, items: [PlanItem], producer: some BatchProducer,
        configuration: PrefetchConfiguration = PrefetchConfiguration()
    ) throws {
        guard configuration.depth > 0, configuration.workers > 0 else {
            throw MBDataError(.invalidArgument, "prefetch depth and workers must be positive")
        }
        AllocatorTuning.apply()
        self.plan = plan
        self.epochs = epochs
        self.items = items
        self.configuration = configuration
        pool = OrderedWorkPool(count: items.count, workers: configuration.workers, depth: configuration.depth) { index in
            try producer.produce(items[index])
        }
    }

    deinit { pool.stop() }

    /// Batches prepared and waiting for the consumer.
    public var readyCount: Int { pool.readyCount }

    /// Stops the workers without waiting for them (safe from async code).
    public func stop() { pool.stop() }

    /// Stops the workers and waits for them; `next()` then returns nil.
    public func cancel() { pool.cancel() }

    /// The next batch in order, nil after the last; rethrows a worker's failure (an
    /// ``MBDataError``: ``MBDataError/Code/storage`` when reading failed,
    /// ``MBDataError/Code/corruptData`` for a stored value the schema does not allow).
    ///
    /// Blocks until the batch is ready. Call it from one consumer at a time.
    public func next() throws -> ReadyBatch? { try pool.next() }

    /// The batches as an async sequence, taken from the workers only as the consumer asks.
    public func batches() -> some AsyncSequence<ReadyBatch, any Error> { pool.stream() }
}
