extension LoaderCheckpoint {
    /// A new run's starting point: nothing finished.
    package init(
        start configuration: MultiBatchLoader.Configuration, fingerprint: String, version: Int, batchesPerEpoch: Int, mixture: PinnedMixture? = nil
    ) {
        self.init(
            planFingerprint: fingerprint, parameters: configuration.plan, datasetVersion: version, world: configuration.plan.world,
            rank: configuration.rank, firstEpoch: configuration.epochs.lowerBound, epochCount: configuration.epochs.count,
            batchesPerEpoch: batchesPerEpoch, completedEpochs: 0, inProgress: [], mixture: mixture)
    }

    /// A new run's starting point over `plan`.
    package init(start configuration: MultiBatchLoader.Configuration, plan: RemotePlan) {
        self.init(
            start: configuration, fingerprint: plan.fingerprint, version: plan.datasetVersion, batchesPerEpoch: plan.batchesPerEpoch,
            mixture: plan.mixture)
    }

    /// Refuses a checkpoint of another plan than `plan` resolved for the loader: another
    /// mixture (naming the source, weight, version or epoch size that differs), or
    /// another dataset version or content (``check(fingerprint:version:)``).
    package func check(plan: RemotePlan) throws {
        switch (mixture, plan.mixture) {
        case (nil, nil):
            break
        case (let theirs?, nil):
            throw MBDataError(
                .invalidArgument,
                "the checkpoint was taken over a mixture of \(theirs.sources.map(\.name).joined(separator: ", ")), the loader reads one dataset",
                parameter: "MultiBatchLoader.Configuration.mixture")
        case (nil, let ours?):
            throw MBDataError(
                .invalidArgument,
                "the checkpoint was taken over one dataset, the loader reads a mixture of \(ours.sources.map(\.name).joined(separator: ", "))",
                parameter: "MultiBatchLoader.Configuration.mixture")
        case (let theirs?, let ours?):
            if let difference = theirs.difference(from: ours) {
                throw MBDataError(
                    .invalidArgument, "the checkpoint is of another mixture: it \(difference)", parameter: "MultiBatchLoader.Configuration.mixture")
            }
        }
        try check(fingerprint: plan.fingerprint, version: plan.datasetVersion)
    }

    /// Refuses a checkpoint that cannot resume a loader with `configuration`, naming the
    /// setting that differs: world, rank, the first epoch, or one of the plan parameters
    /// (seed, batch size, split, tail, shuffle). The epochs may end elsewhere: a checkpoint
    /// of epochs 0..<2 resumes a loader of 0..<4 (the plan fingerprint does not depend on
    /// the epoch count), and the new end is recorded.
    package func resuming(_ configuration: MultiBatchLoader.Configuration) throws -> LoaderCheckpoint {
        func refuse(_ setting: String, _ theirs: String, _ ours: String) -> MBDataError {
            MBDataError(
                .invalidArgument, "the checkpoint was taken with \(setting) \(theirs), the loader has \(setting) \(ours)",
                parameter: "MultiBatchLoader.Configuration.\(setting)")
        }
        if world != configuration.plan.world { throw refuse("world", "\(world)", "\(configuration.plan.world)") }
        if rank != configuration.rank { throw refuse("rank", "\(rank)", "\(configuration.rank)") }
        if let parameters {
            for (setting, theirs, ours) in parameters.differences(from: configuration.plan) { throw refuse(setting, theirs, ours) }
        }
        guard firstEpoch == configuration.epochs.lowerBound else {
            throw MBDataError(
                .invalidArgument,
                "the checkpoint's run starts at epoch \(firstEpoch), the loader's at \(configuration.epochs.lowerBound): a resumed run keeps its first epoch (its end may move: \(firstEpoch)..<\(max(configuration.epochs.upperBound, firstEpoch + epochCount)))",
                parameter: "MultiBatchLoader.Configuration.epochs")
        }
        var resumed = self
        resumed.epochCount = configuration.epochs.count
        if resumed.parameters == nil { resumed.parameters = configuration.plan }
        return resumed
    }

    /// Refuses a checkpoint of another dataset version or content than the plan resolved
    /// for the loader (`fingerprint` at `version`).
    package func check(fingerprint: String, version: Int) throws {
        guard datasetVersion == version else {
            throw MBDataError(
                .invalidArgument,
                "the checkpoint was taken at dataset version \(datasetVersion), the loader's plan is pinned to version \(version)",
                parameter: "datasetVersion")
        }
        guard planFingerprint == fingerprint else {
            throw MBDataError(
                .invalidArgument,
                "the checkpoint is for another dataset version or plan: same settings and version \(version), but the dataset's schema or samples differ (fingerprint \(planFingerprint), the loader's \(fingerprint))")
        }
    }
}

extension PlanParameters {
    /// The settings that differ from `other`, as (name, this value, other value), in the
    /// order seed, batchSize, split, tail, shuffle, world.
    package func differences(from other: PlanParameters) -> [(setting: String, this: String, other: String)] {
        var found: [(String, String, String)] = []
        if seed != other.seed { found.append(("seed", "\(seed)", "\(other.seed)")) }
        if batchSize != other.batchSize { found.append(("batchSize", "\(batchSize)", "\(other.batchSize)")) }
        if split != other.split { found.append(("split", split ?? "(all)", other.split ?? "(all)")) }
        if tail != other.tail { found.append(("tail", tail.rawValue, other.tail.rawValue)) }
        if shuffle != other.shuffle { found.append(("shuffle", "\(shuffle)", "\(other.shuffle)")) }
        if world != other.world { found.append(("world", "\(world)", "\(other.world)")) }
        return found
    }
}
