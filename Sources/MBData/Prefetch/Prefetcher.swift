import Foundation

/// Produces the batches of a plan in order — epoch, then batch, then rank — with one SQL
/// query per batch, collation and LZ4 compression spread over at most `workers` jobs on the
/// process-wide `BlockingExecutor`, and at most `depth` batches held ahead of the consumer. Memory is bounded by
/// `depth × (compressed + uncompressed batch size)`, whatever the dataset size.
///
/// `next()` blocks; call it from a thread of your own (neither the cooperative pool nor a
/// job of the blocking executor), or use `batches()` from async code. `cancel()` (or
/// deinit) stops production.
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
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for a rank outside
    ///   `0..<world`, a non-positive depth or worker count, or `padLengths` naming a field
    ///   whose first dimension is not variable; `MBDataError.Code.invalidDataset` when the
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
    /// - Throws: `MBDataError`, as ``init(dataset:plan:epochs:ranks:configuration:)`` does.
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

    /// The next batch in order, nil after the last; rethrows a worker's failure (an
    /// `MBDataError`: `MBDataError.Code.storage` when reading failed,
    /// `MBDataError.Code.corruptData` for a stored value the schema does not allow).
    ///
    /// Blocks until the batch is ready. Call it from one consumer at a time.
    public func next() throws -> ReadyBatch? { try pool.next() }

    /// The batches as an async sequence, taken from the workers only as the consumer asks.
    public func batches() -> some AsyncSequence<ReadyBatch, any Error> { pool.stream() }
}
