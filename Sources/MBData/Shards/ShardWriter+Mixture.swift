import Foundation

extension ShardWriter {
    /// Writes `epochs` of a mixture plan into shard files in `directory` and the manifest
    /// last, with its `mixture` member (every source's name, version, content and weight);
    /// returns the manifest. Batches are read from `datasets` (the plan's sources, in
    /// `_source` order), collated and compressed by `configuration.workers` jobs at most
    /// `configuration.depth` ahead of the writer, in (epoch, batch, rank) order.
    ///
    /// - Throws: As ``write(_:schema:to:targetShardBytes:progress:)`` does, and what reading
    ///   the datasets throws.
    public static func writeMixture(
        plan: MixtureBatchPlan, datasets: [Dataset], epochs: Range<Int>, configuration: PrefetchConfiguration = PrefetchConfiguration(),
        to directory: String, targetShardBytes: Int = 256 << 20, progress: (@Sendable (Progress) -> Void)? = nil
    ) async throws -> ShardManifest {
        guard configuration.depth > 0, configuration.workers > 0 else {
            throw MBDataError(.invalidArgument, "prefetch depth and workers must be positive")
        }
        let producer = try await MixtureBatchProducer(plan: plan, datasets: datasets, configuration: configuration)
        let items = PlanItem.all(of: plan.plan, epochs: epochs, ranks: Array(0..<plan.parameters.world))
        let prefetch = OrderedPrefetch(count: items.count, workers: configuration.workers, depth: configuration.depth) { index in
            try producer.produce(items[index])
        }
        let mixture = ShardManifest.MixtureInfo(plan: plan)
        let schema = plan.schema
        do {
            let manifest = try await write(prefetch.results(), totalBatches: items.count, to: directory, targetShardBytes: targetShardBytes, progress: progress) {
                shards, totals in
                ShardManifest(
                    dataset: mixture.datasetInfo(fingerprint: plan.fingerprint), schema: schema,
                    plan: .init(
                        parameters: plan.parameters, firstEpoch: epochs.lowerBound, epochs: epochs.count, batchesPerEpoch: plan.plan.batchesPerEpoch,
                        droppedPerEpoch: plan.plan.droppedPerEpoch, padLengths: configuration.padLengths),
                    compression: ShardManifest.compression(level: configuration.compressionLevel), shards: shards, totals: totals,
                    createdAt: Timestamp.now(), mixture: mixture)
            }
            await prefetch.stop()
            return manifest
        } catch {
            await prefetch.stop()
            throw error
        }
    }

    /// The manifest of the mixture shard set already in `directory` when it holds exactly
    /// these batches — same sources at the same versions, weights, plan, epochs, padding and
    /// compression — else nil.
    public static func upToDate(
        _ directory: String, mixture plan: MixtureBatchPlan, epochs: Range<Int>, configuration: PrefetchConfiguration
    ) -> ShardManifest? {
        var requirement = ShardRequirement(parameters: plan.parameters, epochs: epochs, padLengths: configuration.padLengths)
        requirement.mixture = .pinned(plan.pinned)
        guard let manifest = try? ShardSet(directory: directory).manifest, manifest.serves(requirement),
            manifest.dataset.fingerprint == plan.fingerprint, manifest.plan.firstEpoch == epochs.lowerBound, manifest.plan.epochs == epochs.count,
            manifest.compression == ShardManifest.compression(level: configuration.compressionLevel)
        else { return nil }
        return manifest
    }
}
