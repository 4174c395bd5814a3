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
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` with a mixture (packed by
    ///   ``init(packing:configuration:resumingFrom:)``) or a sample transform (rows mix
    ///   samples) or a field that cannot be packed; what
    ///   ``Dataset/packedPlan(_:packing:version:)`` and the checkpoint check throw.
    public convenience init(
        dataset: Dataset, packing: PackingSpec, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil
    ) async throws {
        guard configuration.mixture.isEmpty else {
            throw MBDataError(
                .invalidArgument, "the configuration names a mixture: pack it with MultiBatchLoader(packing:configuration:), not from one dataset",
                parameter: "MultiBatchLoader.Configuration.mixture")
        }
        try Self.checkPackable(configuration, packing: packing)
        let plan = try await dataset.packedPlan(configuration.plan, packing: packing, version: checkpoint?.datasetVersion)
        let producer = try await PackedBatchProducer(dataset: dataset, plan: plan)
        try await self.init(packed: producer, fingerprint: plan.fingerprint, datasetVersion: plan.base.datasetVersion, configuration: configuration, resumingFrom: checkpoint)
    }

    /// Reads the packed batches of the mixture `configuration.mixture` names live from its
    /// datasets (issue 14 §1 with §2): the packer's input is each epoch's draw order, so a
    /// row's segments may come from several sources; each segment carries its `_source` and
    /// `_id` (`[rows, segments]`, -1 after a row's last). Sources are pinned to their current
    /// versions or, when resuming, to the checkpoint's. Epochs serve as many batches as the
    /// shortest configured epoch packs into, as ``init(dataset:packing:configuration:resumingFrom:)``
    /// does.
    ///
    /// ```swift
    /// var config = MultiBatchLoader.Configuration(batchSize: 64, seed: 7, epochs: 0..<3)
    /// config.mixture = [.init(dataset: web, weight: 0.6), .init(dataset: code, weight: 0.4)]
    /// let loader = try await MultiBatchLoader(packing: PackingSpec(field: "tokens", rowLength: 2048), configuration: config)
    /// ```
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` without a mixture, with a
    ///   sample transform, for a checkpoint of another mixture or packing; what
    ///   ``PackedMixturePlan/resolve(_:epochSize:parameters:packing:pinnedTo:)`` throws.
    public convenience init(packing: PackingSpec, configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) async throws {
        guard !configuration.mixture.isEmpty else {
            throw MBDataError(
                .invalidArgument, "no mixture configured: name its datasets in configuration.mixture, or use MultiBatchLoader(dataset:packing:configuration:)",
                parameter: "MultiBatchLoader.Configuration.mixture")
        }
        try Self.checkPackable(configuration, packing: packing)
        let plan = try await PackedMixturePlan.resolve(
            configuration.mixture, epochSize: configuration.epochSize, parameters: configuration.plan, packing: packing, pinnedTo: checkpoint?.mixture?.datasetVersions ?? [:])
        let producer = try await PackedMixtureBatchProducer(plan: plan, components: configuration.mixture, configuration: configuration.prefetch)
        try await self.init(
            packed: producer, fingerprint: plan.fingerprint, datasetVersion: 1, mixture: plan.base.pinned, configuration: configuration,
            resumingFrom: checkpoint)
    }

    private static func checkPackable(_ configuration: Configuration, packing: PackingSpec) throws {
        if let configured = configuration.packing, configured != packing {
            throw MBDataError(
                .invalidArgument,
                "the configuration packs \(configured.field) into rows of \(configured.rowLength), the packing argument \(packing.field) into rows of \(packing.rowLength): give one",
                parameter: "MultiBatchLoader.Configuration.packing")
        }
        guard configuration.sampleTransform == nil else {
            throw MBDataError(.invalidArgument, "a sample transform cannot apply to packed rows", parameter: "MultiBatchLoader.Configuration.sampleTransform")
        }
        try configuration.validate()
    }

    /// A loader over `producer`'s batches: every configured epoch serves the shortest's count.
    private convenience init(
        packed producer: some PackedProducer, fingerprint: String, datasetVersion: Int, mixture: PinnedMixture? = nil, configuration: Configuration,
        resumingFrom checkpoint: LoaderCheckpoint?
    ) async throws {
        let epochs = configuration.epochs
        let batches = try await runBlocking { epochs.map { producer.batchesPerEpoch(epoch: $0) }.min() ?? 0 }
        let remote = RemotePlan(fingerprint: fingerprint, datasetVersion: datasetVersion, batchesPerEpoch: batches, mixture: mixture)
        let feed = PreparedBatchFeed(plan: remote) { item in
            try Batch(epoch: item.epoch, index: item.batch, rank: item.rank, safetensors: producer.collated(item).buffer)
        }
        try self.init(feed: feed, configuration: configuration, resumingFrom: checkpoint)
    }
}
