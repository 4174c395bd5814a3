extension MultiBatchLoader {
    /// Reads packed batches live from `dataset` (issue 14 §2): the configuration's plan with
    /// `batchSize` counting rows of `packing.rowLength` tokens, pinned to the dataset's current
    /// version (or, when resuming, the checkpoint's).
    ///
    /// Packed epochs differ in rows, and a loader serves the same batches every epoch: each
    /// configured epoch serves as many as the shortest of them packs into (rows past it in a
    /// longer epoch are left out, like a dropped tail). Finding that count packs every
    /// configured epoch's lengths once here (O(epochs × samples) time, O(windows) memory per
    /// epoch, kept); a batch then costs one window's packing, resumed or not.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` with a mixture or a sample
    ///   transform (rows mix samples) or a field that cannot be packed; what
    ///   ``Dataset/packedPlan(_:packing:version:)`` and the checkpoint check throw.
    public convenience init(
        dataset: Dataset, packing: PackingSpec, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil
    ) async throws {
        guard configuration.mixture.isEmpty else {
            throw MBDataError(
                .invalidArgument, "packing a mixture is not supported yet: pack one dataset, or read the mixture unpacked",
                parameter: "MultiBatchLoader.Configuration.mixture")
        }
        guard configuration.sampleTransform == nil else {
            throw MBDataError(.invalidArgument, "a sample transform cannot apply to packed rows", parameter: "MultiBatchLoader.Configuration.sampleTransform")
        }
        try configuration.validate()
        let plan = try await dataset.packedPlan(configuration.plan, packing: packing, version: checkpoint?.datasetVersion)
        let producer = try await PackedBatchProducer(dataset: dataset, plan: plan)
        let epochs = configuration.epochs
        let batches = try await runBlocking { epochs.map { producer.batchesPerEpoch(epoch: $0) }.min() ?? 0 }
        let remote = RemotePlan(fingerprint: plan.fingerprint, datasetVersion: plan.base.datasetVersion, batchesPerEpoch: batches)
        let feed = PreparedBatchFeed(plan: remote) { item in
            try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: producer.collated(item).buffer)
        }
        try self.init(feed: feed, configuration: configuration, resumingFrom: checkpoint)
    }
}
