/// Batches read live from a dataset for a loader: collated, not compressed (they never
/// leave the process), with the sample and batch transforms applied on the workers.
struct LiveBatchFeed: LocalBatchFeed {
    let producer: LiveBatchProducer
    let datasetPlan: DatasetPlan

    var plan: RemotePlan {
        RemotePlan(fingerprint: datasetPlan.fingerprint, datasetVersion: datasetPlan.datasetVersion, batchesPerEpoch: datasetPlan.plan.batchesPerEpoch)
    }

    func batches(_ items: [PlanItem], configuration: MultiBatchLoader.Configuration) throws -> LocalBatches {
        let producer = self.producer
        let pool = OrderedWorkPool(count: items.count, workers: configuration.prefetch.workers, depth: configuration.prefetch.depth) { index in
            let item = items[index]
            guard configuration.sampleTransform != nil else {
                let ids = producer.plan.sampleIDs(epoch: item.epoch, batch: item.batch, rank: item.rank)
                let batch = try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: producer.safetensors(ids, as: item))
                return try configuration.transformed(batch)
            }
            let rows = try producer.rows(item).map { row -> BatchCollator.Row in
                guard let row else { return nil }
                return (row.id, try configuration.transformed(sample: row.values, id: row.id, epoch: item.epoch))
            }
            let batch = try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: producer.collate(rows, as: item))
            return try configuration.transformed(batch)
        }
        return LocalBatches(pool.stream(), stop: pool.shutDown)
    }
}
