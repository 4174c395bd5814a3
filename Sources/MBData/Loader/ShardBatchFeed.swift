/// Batches decoded from a shard set for a loader, each frame checked against its footer
/// entry, with the batch transform applied on the workers.
struct ShardBatchFeed: LocalBatchFeed {
    let frames: SpoolBatchProducer
    let plan: RemotePlan

    func batches(_ items: [PlanItem], configuration: MultiBatchLoader.Configuration) throws -> LocalBatches {
        let frames = self.frames
        let pool = OrderedWorkPool(count: items.count, workers: configuration.prefetch.workers, depth: configuration.prefetch.depth) { index in
            let item = items[index]
            return try configuration.transformed(Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: frames.decoded(item)))
        }
        return LocalBatches(pool.stream(), stop: pool.shutDown)
    }
}
