extension MultiBatchLoader {
    /// Reads batches live from `dataset`, the plan pinned to its current version (or, when
    /// resuming, to the checkpoint's version).
    public convenience init(dataset: Dataset, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) async throws {
        let plan = try await dataset.plan(configuration.plan, version: checkpoint?.datasetVersion)
        try await self.init(dataset: dataset, plan: plan, configuration: configuration, resumingFrom: checkpoint)
    }

    /// Reads batches live from `dataset` following `plan` as given (an inference job's pinned
    /// plan), not one re-made from the configuration; its parameters must be the configuration's.
    package convenience init(dataset: Dataset, plan: DatasetPlan, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint?) async throws {
        precondition(plan.parameters == configuration.plan, "the plan was made with other parameters than the configuration's")
        let producer = try await LiveBatchProducer(dataset: dataset, plan: plan, configuration: configuration.prefetch)
        try self.init(feed: LiveBatchFeed(producer: producer, datasetPlan: plan), configuration: configuration, resumingFrom: checkpoint)
    }

    /// Reads batches from a shard directory that serves the configuration: the same plan
    /// parameters, the epochs and the padded lengths (``ShardManifest/check(serves:source:)``).
    /// The set is opened and checked off the cooperative pool.
    public convenience init(shards directory: String, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) async throws {
        let requirement = ShardRequirement(parameters: configuration.plan, epochs: configuration.epochs, padLengths: configuration.prefetch.padLengths)
        let shards = try await ShardSet.open(directory, serving: requirement)
        let manifest = shards.manifest
        let frames = try await runBlocking { try SpoolBatchProducer(shards: shards) }
        // A packed set's epochs differ in batches: each configured epoch serves the shortest's
        // count, as a live packed loader does.
        let batches = manifest.packing.map { packing in
            configuration.epochs.map { packing.batchesPerEpoch[$0 - manifest.plan.firstEpoch] }.min() ?? 0
        } ?? manifest.plan.batchesPerEpoch
        let plan = RemotePlan(fingerprint: manifest.dataset.fingerprint, datasetVersion: manifest.dataset.version, batchesPerEpoch: batches)
        let feed = PreparedBatchFeed(plan: plan) { item in
            try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: frames.decoded(item))
        }
        try self.init(feed: feed, configuration: configuration, resumingFrom: checkpoint)
    }
}
