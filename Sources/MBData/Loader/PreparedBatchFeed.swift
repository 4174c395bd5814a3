/// Batches made one by one by a function (decoded from a shard set, packed live from a
/// dataset) for a loader, on the prefetch workers, with the batch transform applied there.
struct PreparedBatchFeed: LocalBatchFeed {
    let plan: RemotePlan
    let make: @Sendable (PlanItem) throws -> Batch

    func batches(_ items: [PlanItem], configuration: MultiBatchLoader.Configuration) throws -> LocalBatches {
        let make = self.make
        let pool = OrderedWorkPool(count: items.count, workers: configuration.prefetch.workers, depth: configuration.prefetch.depth) { index in
            try configuration.transformed(make(items[index]))
        }
        return LocalBatches(pool.stream(), stop: pool.shutDown)
    }
}
