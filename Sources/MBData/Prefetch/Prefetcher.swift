import Foundation

/// Produces the batches of a plan in order — epoch, then batch, then rank — with one SQL
/// query per batch, collation and LZ4 compression spread over `workers` threads, and at
/// most `depth` batches held ahead of the consumer. Memory is bounded by
/// `depth × (compressed + uncompressed batch size)`, whatever the dataset size.
///
/// `next()` blocks; call it from a thread of your own (not the cooperative pool), or use
/// `batches()` from async code. `cancel()` (or deinit) stops the workers.
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

    /// The next batch in order, nil after the last; rethrows a worker's failure.
    public func next() throws -> ReadyBatch? { try pool.next() }

    /// The batches as an async sequence, taken from the workers only as the consumer asks.
    public func batches() -> some AsyncSequence<ReadyBatch, any Error> { pool.stream() }
}
