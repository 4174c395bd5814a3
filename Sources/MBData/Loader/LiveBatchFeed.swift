/// Batches read live from datasets for a loader: collated, not compressed (they never
/// leave the process), with the sample and batch transforms applied on the workers.
struct LiveBatchFeed<Producer: LiveRowProducer>: LocalBatchFeed {
    let producer: Producer
    let plan: RemotePlan

    func batches(_ items: [PlanItem], configuration: MultiBatchLoader.Configuration) throws -> LocalBatches {
        let producer = self.producer
        let pool = OrderedWorkPool(count: items.count, workers: configuration.prefetch.workers, depth: configuration.prefetch.depth) { index in
            let item = items[index]
            guard configuration.sampleTransform != nil else {
                let batch = try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: producer.safetensors(item))
                return try configuration.transformed(batch)
            }
            var rows = try producer.batchRows(item)
            let sources = rows.sources
            rows.rows = try rows.rows.enumerated().map { position, row in
                guard let row else { return nil }
                // A sample's generator is keyed by its id; in a mixture, ids of different
                // sources may be equal, so sources after the first fold their index in.
                let key = row.id ^ (Int64(sources?[position] ?? 0) << 48)
                return (row.id, try configuration.transformed(sample: row.values, id: key, epoch: item.epoch))
            }
            let batch = try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: producer.collate(rows, as: item))
            return try configuration.transformed(batch)
        }
        return LocalBatches(pool.stream(), stop: pool.shutDown)
    }
}

/// What a live feed reads batches with: rows read from the datasets, then collated.
/// Both block: the feed calls them on its workers.
protocol LiveRowProducer: Sendable {
    /// The rows of `item` in plan order.
    func batchRows(_ item: PlanItem) throws -> BatchRows
    /// `rows` as the safetensors buffer of `item`.
    func collate(_ rows: BatchRows, as item: PlanItem) -> [UInt8]
    /// The safetensors buffer of `item` without a sample transform (a producer may read it
    /// by a faster path than rows then collation).
    func safetensors(_ item: PlanItem) throws -> [UInt8]
}

extension LiveRowProducer {
    func safetensors(_ item: PlanItem) throws -> [UInt8] { collate(try batchRows(item), as: item) }
}

/// The rows of one batch before collation.
struct BatchRows {
    /// Each row's id and values in schema order; nil is a padding row.
    var rows: [BatchCollator.Row]
    /// A mixture's batch: each row's source index (-1 on padding rows); nil for one dataset.
    var sources: [Int32]?

    init(rows: [BatchCollator.Row], sources: [Int32]? = nil) {
        self.rows = rows
        self.sources = sources
    }
}
