extension MultiBatchLoader {
    /// Reads batches live from `dataset`, the plan pinned to its current version (or, when
    /// resuming, to the checkpoint's version); packed ones with a `Configuration.packing`
    /// (``init(dataset:packing:configuration:resumingFrom:)``).
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when the configuration
    ///   names a mixture (``init(configuration:resumingFrom:)`` reads one), and what
    ///   ``Dataset/plan(_:version:)`` and the checkpoint check throw.
    public convenience init(dataset: Dataset, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) async throws {
        guard configuration.mixture.isEmpty else {
            throw MBDataError(
                .invalidArgument, "the configuration names a mixture: read it with MultiBatchLoader(configuration:), not from one dataset",
                parameter: "MultiBatchLoader.Configuration.mixture")
        }
        if let packing = configuration.packing {
            try await self.init(dataset: dataset, packing: packing, configuration: configuration, resumingFrom: checkpoint)
            return
        }
        let plan = try await dataset.plan(configuration.plan, version: checkpoint?.datasetVersion)
        try await self.init(dataset: dataset, plan: plan, configuration: configuration, resumingFrom: checkpoint)
    }

    /// Reads batches live from `dataset` following `plan` as given (an inference job's pinned
    /// plan), not one re-made from the configuration; its parameters must be the configuration's.
    package convenience init(dataset: Dataset, plan: DatasetPlan, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint?) async throws {
        precondition(plan.parameters == configuration.plan, "the plan was made with other parameters than the configuration's")
        let producer = try await LiveBatchProducer(dataset: dataset, plan: plan, configuration: configuration.prefetch)
        try self.init(feed: LiveBatchFeed(producer: producer, plan: RemotePlan(fingerprint: plan.fingerprint, datasetVersion: plan.datasetVersion, batchesPerEpoch: plan.plan.batchesPerEpoch)), configuration: configuration, resumingFrom: checkpoint)
    }

    /// Reads batches from a shard directory that serves the configuration: the same plan
    /// parameters, the epochs and the padded lengths (``ShardManifest/check(serves:source:)``).
    /// The set is opened and checked off the cooperative pool.
    ///
    /// With a `Configuration.mixture`, the set must hold that mixture: with
    /// every component's dataset, exactly the plan a live loader would read (each source at
    /// its current version, or the checkpoint's); with names alone, the same names, weights
    /// and epoch size. Without one, a mixture set is read as it is. With a
    /// `Configuration.packing`, the set's batches must be packed by it; without one, a packed
    /// set is read as it is.
    public convenience init(shards directory: String, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) async throws {
        var requirement = ShardRequirement(parameters: configuration.plan, epochs: configuration.epochs, padLengths: configuration.prefetch.padLengths)
        requirement.mixture = try await Self.mixtureRequirement(configuration, resumingFrom: checkpoint)
        if let packing = configuration.packing { requirement.requirePacking(packing) }
        let shards = try await ShardSet.open(directory, serving: requirement)
        let manifest = shards.manifest
        let frames = try await runBlocking { try SpoolBatchProducer(shards: shards) }
        // A packed set's epochs differ in batches: each configured epoch serves the shortest's
        // count, as a live packed loader does.
        let batches = manifest.packing.map { packing in
            configuration.epochs.map { packing.batchesPerEpoch[$0 - manifest.plan.firstEpoch] }.min() ?? 0
        } ?? manifest.plan.batchesPerEpoch
        let plan = RemotePlan(
            fingerprint: manifest.dataset.fingerprint, datasetVersion: manifest.dataset.version, batchesPerEpoch: batches, mixture: manifest.mixture?.pinned)
        let feed = PreparedBatchFeed(plan: plan) { item in
            try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: frames.decoded(item))
        }
        try self.init(feed: feed, configuration: configuration, resumingFrom: checkpoint)
    }

    /// What a shard set must hold for the configuration's mixture; nil without one.
    private static func mixtureRequirement(
        _ configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint?
    ) async throws -> ShardRequirement.MixtureRequirement? {
        let components = configuration.mixture
        guard !components.isEmpty else { return nil }
        guard components.allSatisfy({ $0.dataset is Dataset }) else {
            return .weighted(names: components.map(\.name), weights: components.map(\.weight), epochSize: configuration.epochSize)
        }
        let plan = try await MixtureBatchPlan.resolve(
            components, epochSize: configuration.epochSize, parameters: configuration.plan, pinnedTo: checkpoint?.mixture?.datasetVersions ?? [:])
        return .pinned(plan.pinned)
    }
}
