extension MultiBatchLoader {
    /// Reads the mixture `configuration.mixture` names live from its datasets (issue 14 §1):
    /// each source pinned to its current version or, when resuming, to the version the
    /// checkpoint recorded for it; batches carry `_source` beside `_id`. With a
    /// `Configuration.packing`, packed (``init(packing:configuration:resumingFrom:)``).
    ///
    /// ```swift
    /// var config = MultiBatchLoader.Configuration(batchSize: 64, seed: 7, epochs: 0..<3)
    /// config.mixture = [.init(dataset: web, weight: 0.6), .init(dataset: code, weight: 0.25), .init(dataset: books, weight: 0.15)]
    /// config.packing = ["tokens": 2048]    // optional: rows of 2,048 tokens, 64 rows a batch
    /// let loader = try await MultiBatchLoader(configuration: config)
    /// ```
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` without a mixture, for a
    ///   checkpoint of another mixture (naming the source, weight, version or epoch size that
    ///   differs), and what ``MixtureBatchPlan/resolve(_:epochSize:parameters:pinnedTo:)`` throws.
    public convenience init(configuration: Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) async throws {
        guard !configuration.mixture.isEmpty else {
            throw MBDataError(
                .invalidArgument, "no mixture configured: name its datasets in configuration.mixture, or use MultiBatchLoader(dataset:configuration:)",
                parameter: "MultiBatchLoader.Configuration.mixture")
        }
        if let packing = configuration.packing {
            try await self.init(packing: packing, configuration: configuration, resumingFrom: checkpoint)
            return
        }
        try configuration.validate()
        let plan = try await MixtureBatchPlan.resolve(
            configuration.mixture, epochSize: configuration.epochSize, parameters: configuration.plan,
            pinnedTo: checkpoint?.mixture?.datasetVersions ?? [:])
        let producer = try await MixtureBatchProducer(plan: plan, components: configuration.mixture, configuration: configuration.prefetch)
        try self.init(feed: LiveBatchFeed(producer: producer, plan: plan.remotePlan), configuration: configuration, resumingFrom: checkpoint)
    }
}
