/// A mixture of open datasets resolved into batches: each source pinned to a dataset
/// version (its ids, as ``DatasetPlan`` pins one dataset), the ``MixturePlan`` over them, and
/// the batching of its epoch positions by `PlanParameters` — what the live loader, `mbdata
/// shard --mix` and a daemon serving a mixture all follow.
///
/// Global batch k of epoch e is positions `[kG, (k+1)G)` of the mixture's epoch and rank r of
/// W takes slice r of it, so the stream is the same for every world that divides G. Under
/// `TailPolicy.drop` the last `epochSize % G` positions of each epoch are left out (their
/// draws are skipped, not moved to the next epoch); under `.pad` the last batch ends in
/// padding rows.
public struct MixtureBatchPlan: Sendable, Hashable {
    /// The mixture: sources' sizes, weights, per-epoch counts and order.
    public let mixture: MixturePlan
    /// Each source's pinned plan, in `_source` order; a draw's ``MixtureDraw/index`` points
    /// into its ``DatasetPlan/ids``.
    public let sources: [DatasetPlan]
    /// The fields every batch carries: the first source's schema (the others have the same
    /// fields, perhaps in another order).
    public let schema: Schema
    /// The batching of the mixture's epoch positions: ``MixturePlan/batchPlan(_:)``.
    public let plan: EpochPlan
    /// Identifies the plan: xxh64 of the mixture's fingerprint (sources' names, contents at
    /// their versions, weights, epoch size, seed) and the plan parameters.
    public let fingerprint: String

    /// The parameters the plan was made with (``plan`` has them with `shuffle` false: it
    /// batches positions in order).
    public let parameters: PlanParameters

    /// The sources' names, in `_source` order.
    public var names: [String] { mixture.sources.map(\.name) }

    /// What checkpoints and manifests record of the sources: names, versions, contents, weights.
    public var pinned: PinnedMixture {
        PinnedMixture(
            epochSize: mixture.epochSize,
            sources: zip(mixture.sources, sources).map { source, plan in
                PinnedMixture.Source(name: source.name, datasetVersion: plan.datasetVersion, fingerprint: source.fingerprint, weight: source.weight)
            })
    }

    /// The plan as a loader's feed reports it: a mixture's dataset version is 1 (its sources'
    /// versions are in ``pinned``).
    public var remotePlan: RemotePlan {
        RemotePlan(fingerprint: fingerprint, datasetVersion: 1, batchesPerEpoch: plan.batchesPerEpoch, mixture: pinned)
    }

    /// Pins each component's dataset — to the version `pinnedTo` gives for its name (a
    /// checkpoint's ``PinnedMixture/datasetVersions``, a daemon's pins), else to its current
    /// version — and makes the mixture plan of
    /// `parameters` with `epochSize` draws per epoch (nil: as ``MixturePlan`` defines it).
    ///
    /// Every source is read through the plan's split; a source's content fingerprint is its
    /// ``DatasetPlan/fingerprint`` under neutral parameters (seed 0, batch 1, the split), so
    /// it identifies the schema, ids and version whatever the batch size or world.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for a component
    ///   without a `Dataset`, `shuffle = false` (a mixture always shuffles), sources whose
    ///   fields differ (naming the source and field), and what ``MixturePlan`` and
    ///   ``Dataset/plan(_:version:)`` throw.
    public static func resolve(
        _ components: [MixtureComponent], epochSize: Int?, parameters: PlanParameters, pinnedTo versions: [String: Int] = [:]
    ) async throws -> MixtureBatchPlan {
        try parameters.validate()
        guard parameters.shuffle else {
            throw MBDataError(.invalidArgument, "a mixture always shuffles its sources; shuffle = false is not supported", parameter: "shuffle")
        }
        let neutral = PlanParameters(batchSize: 1, split: parameters.split)
        // The sources' ids are read side by side: each read scans a split index, and a
        // mixture's loader waits for all of them before its first batch.
        let datasets = try components.map { try $0.storedDataset() }
        let resolved = try await withThrowingTaskGroup(of: (Int, DatasetPlan, Schema).self) { group in
            for (index, (component, dataset)) in zip(components, datasets).enumerated() {
                let version = versions[component.name]
                group.addTask {
                    let plan = try await dataset.plan(neutral, version: version)
                    guard let schema = try await dataset.schema() else {
                        throw MBDataError(.invalidDataset, "the dataset is empty: nothing ingested yet", source: dataset.path)
                    }
                    return (index, plan, schema)
                }
            }
            var resolved = [(plan: DatasetPlan, schema: Schema)?](repeating: nil, count: components.count)
            for try await (index, plan, schema) in group { resolved[index] = (plan, schema) }
            return resolved.compactMap { $0 }
        }
        let plans = resolved.map { $0.plan }
        let schemas = resolved.map { $0.schema }
        try MixtureFields.check(schemas, names: components.map(\.name))
        let mixture = try MixturePlan(
            sources: zip(components, plans).map { component, plan in
                MixtureSource(name: component.name, sampleCount: plan.ids.count, fingerprint: plan.fingerprint, weight: component.weight)
            },
            epochSize: epochSize, seed: parameters.seed)
        return try MixtureBatchPlan(mixture: mixture, sources: plans, schema: schemas[0], parameters: parameters)
    }

    /// The plan over `mixture` whose sources resolved to `sources`.
    init(mixture: MixturePlan, sources: [DatasetPlan], schema: Schema, parameters: PlanParameters) throws {
        self.mixture = mixture
        self.sources = sources
        self.schema = schema
        self.parameters = parameters
        plan = try mixture.batchPlan(parameters)
        fingerprint = Self.fingerprint(mixture: mixture.fingerprint, parameters: parameters)
    }

    /// The plan fingerprint of a mixture fingerprint under `parameters` (`verify` and the
    /// manifest check recompute it).
    static func fingerprint(mixture: String, parameters: PlanParameters) -> String {
        var hash = XXH64()
        hash.update(Array("mixture-plan-v1|\(mixture)|\(parameters.key)".utf8))
        return hash.hexDigest
    }

    /// Rank `rank`'s rows of global batch `batch` of `epoch`: each row's source and sample id;
    /// nil is a padding row.
    public func sampleIDs(epoch: Int, batch: Int, rank: Int = 0) -> [(source: Int, id: Int64)?] {
        mixture.draws(epoch: epoch, batch: batch, rank: rank, batching: plan).map { draw in
            draw.map { (source: $0.source, id: sources[$0.source].ids[$0.index]) }
        }
    }
}

extension MixtureComponent {
    /// The component's `Dataset`, which a live mixture needs.
    func storedDataset() throws -> Dataset {
        guard let dataset = dataset as? Dataset else {
            throw MBDataError(
                .invalidArgument, "mixture source '\(name)' has no open Dataset to read (only a remote source or a shard set resolves a name alone)",
                parameter: "mixture")
        }
        return dataset
    }
}

extension Dataset: MixtureDataset {
    /// The file's name: ``Dataset/name(ofPath:)`` of its path (`web` for `data/web.mbdb`).
    public var mixtureName: String { Self.name(ofPath: path) }
}
