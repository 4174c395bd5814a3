import Foundation

extension ShardWriter {
    /// Writes `epochs` of a packed plan into shard files in `directory` and the manifest last,
    /// with its `packing` member (spec, batches of each epoch, statistics); returns the
    /// manifest. Batches are made one after another on the blocking executor, ordered by
    /// epoch, batch, rank; a frame's sample count is its segments.
    ///
    /// - Throws: As ``write(_:schema:to:targetShardBytes:progress:)`` does, and what reading
    ///   the dataset throws.
    public static func writePacked(
        dataset: Dataset, plan: PackedPlan, epochs: Range<Int>, compressionLevel: Int32 = 0, to directory: String,
        targetShardBytes: Int = 256 << 20, progress: (@Sendable (Progress) -> Void)? = nil
    ) async throws -> ShardManifest {
        guard let schema = try await dataset.schema() else {
            throw MBDataError(.invalidDataset, "the dataset is empty", source: dataset.path)
        }
        let producer = try await PackedBatchProducer(dataset: dataset, plan: plan)
        let base = plan.base
        let datasetInfo = ShardManifest.DatasetInfo(version: base.datasetVersion, maxId: base.maxID, samples: base.ids.count, fingerprint: plan.fingerprint)
        return try await writePacked(
            producer, spec: plan.spec, parameters: plan.parameters, epochs: epochs, compressionLevel: compressionLevel, to: directory,
            targetShardBytes: targetShardBytes, progress: progress
        ) { planInfo, compression, packing, shards, totals in
            ShardManifest(
                dataset: datasetInfo, schema: schema, plan: planInfo, compression: compression, shards: shards, totals: totals,
                createdAt: Timestamp.now(), packing: packing)
        }
    }

    /// Writes `epochs` of a packed mixture plan into shard files in `directory` and the
    /// manifest last, with both its `mixture` member (every source's name, version, content
    /// and weight) and its `packing` member; returns the manifest. The manifest's `dataset`
    /// describes the mixture's epoch as an unpacked mixture set's does, its fingerprint the
    /// packed plan's. Batches are read from `datasets` (the plan's sources, in `_source` order).
    ///
    /// - Throws: As ``write(_:schema:to:targetShardBytes:progress:)`` does, and what reading
    ///   the datasets throws.
    public static func writePackedMixture(
        plan: PackedMixturePlan, datasets: [Dataset], epochs: Range<Int>, compressionLevel: Int32 = 0, to directory: String,
        targetShardBytes: Int = 256 << 20, progress: (@Sendable (Progress) -> Void)? = nil
    ) async throws -> ShardManifest {
        var configuration = PrefetchConfiguration()
        configuration.compressionLevel = compressionLevel
        let producer = try await PackedMixtureBatchProducer(plan: plan, datasets: datasets, configuration: configuration)
        let mixture = ShardManifest.MixtureInfo(plan: plan.base)
        let schema = plan.base.schema
        return try await writePacked(
            producer, spec: plan.spec, parameters: plan.parameters, epochs: epochs, compressionLevel: compressionLevel, to: directory,
            targetShardBytes: targetShardBytes, progress: progress
        ) { planInfo, compression, packing, shards, totals in
            ShardManifest(
                dataset: mixture.datasetInfo(fingerprint: plan.fingerprint), schema: schema, plan: planInfo, compression: compression, shards: shards,
                totals: totals, createdAt: Timestamp.now(), packing: packing, mixture: mixture)
        }
    }

    /// Writes `producer`'s batches of `epochs` and the manifest `manifest` makes of the plan,
    /// compression and packing members and the shards written.
    private static func writePacked(
        _ producer: some PackedProducer, spec: PackingSpec, parameters: PlanParameters, epochs: Range<Int>, compressionLevel: Int32,
        to directory: String, targetShardBytes: Int, progress: (@Sendable (Progress) -> Void)?,
        manifest: @escaping @Sendable (ShardManifest.PlanInfo, String, ShardManifest.PackingInfo, [ShardManifest.Shard], ShardManifest.Totals) -> ShardManifest
    ) async throws -> ShardManifest {
        let started = Date()
        let counts = try await runBlocking { epochs.map { producer.batchesPerEpoch(epoch: $0) } }
        let world = parameters.world
        let total = counts.reduce(0, +) * world
        let sink = try await runBlocking { try ShardSetSink(directory: directory, targetShardBytes: targetShardBytes) }
        do {
            for (epoch, batches) in zip(epochs, counts) {
                for batch in 0..<batches {
                    for rank in 0..<world {
                        let totals = try await runBlocking {
                            try sink.append(producer.produce(PlanItem(epoch: epoch, batch: batch, rank: rank), level: compressionLevel))
                        }
                        progress?(
                            Progress(
                                batches: totals.batches, totalBatches: total, uncompressedBytes: totals.uncompressedBytes,
                                compressedBytes: totals.compressedBytes, elapsedSeconds: Date().timeIntervalSince(started)))
                    }
                }
            }
            let statistics = epochs.map { producer.layout(epoch: $0).statistics }.reduce(PackingStatistics(rowLength: spec.rowLength), +)
            let planInfo = ShardManifest.PlanInfo(
                parameters: parameters, firstEpoch: epochs.lowerBound, epochs: epochs.count, batchesPerEpoch: counts.max() ?? 0,
                droppedPerEpoch: 0, padLengths: [:])
            let packing = ShardManifest.PackingInfo(spec: spec, batchesPerEpoch: counts, statistics: statistics)
            let compression = ShardManifest.compression(level: compressionLevel)
            return try await runBlocking {
                try sink.finish { shards, totals in manifest(planInfo, compression, packing, shards, totals) }
            }
        } catch {
            sink.discard()
            throw error
        }
    }
}
