import HTTPTypes
import MBData
import MBDataWire

/// Mixtures: plans over several served datasets, each source pinned per consumer group to
/// a dataset version as a single dataset's plan is, batches from a mixture shard set in the
/// spool or read live.
extension DatasetCatalog {
    /// The sources `query` names; `404 unknown_dataset` naming the first that is not served.
    func served(mixture query: MixtureQuery) throws -> ServedMixture {
        ServedMixture(query: query, datasets: try query.sources.map { try served(Substring($0.name)) })
    }

    /// The plan of `source` for `group`, at the versions the group is pinned to, else at
    /// those `preferred` records (a restored cursor's), else the current ones. Changes no state.
    func plan(
        source: ServedSource, group: String, parameters: PlanParameters, packing: PackingSpec?, preferring preferred: CursorState? = nil
    ) async throws -> ServedPlan {
        switch source {
        case .dataset(let served):
            return try await plan(dataset: served, group: group, parameters: parameters, packing: packing, preferring: preferred?.datasetVersion)
        case .mixture(let mixture):
            var versions: [Int] = []
            for (source, served) in zip(mixture.query.sources, mixture.datasets) {
                let key = Self.pinKey(mixture, source: source.name, group: group, parameters: parameters)
                var version = pinned.value(for: key)
                if version == nil { version = try await store.pinnedVersion(key: key) }
                if version == nil { version = preferred?.mixture?.datasetVersion(of: source.name) }
                if let version { versions.append(version) } else { versions.append(try await served.dataset.version()) }
            }
            return try await plan(mixture: mixture, parameters: parameters, packing: packing, versions: versions)
        }
    }

    /// Pins `group`'s plan of `source` to `plan`'s versions (each source of a mixture
    /// separately), written to the state database first; returns the plan at the versions
    /// the group is pinned to (another request may have pinned them first).
    func pin(source: ServedSource, group: String, plan: ServedPlan) async throws -> ServedPlan {
        guard case .mixture(let mixture) = source, let resolved = plan.mixture else {
            guard case .dataset(let served) = source else { preconditionFailure("a mixture's plan is a mixture plan") }
            return try await pin(dataset: served, group: group, plan: plan)
        }
        var versions: [Int] = []
        for source in resolved.pinned.sources {
            let key = Self.pinKey(mixture, source: source.name, group: group, parameters: plan.parameters)
            if pinned.value(for: key) == source.datasetVersion {
                versions.append(source.datasetVersion)
                continue
            }
            let version = try await store.pin(key: key, version: source.datasetVersion)
            pinned.insert(version, for: key)
            versions.append(version)
        }
        guard versions != resolved.pinned.sources.map(\.datasetVersion) else { return plan }
        return try await self.plan(mixture: mixture, parameters: plan.parameters, packing: plan.packing, versions: versions)
    }

    /// Global batches of `epoch` of `plan`: a packed mixture's from its epoch's layout.
    func batches(source: ServedSource, plan: ServedPlan, epoch: Int) async throws -> Int {
        switch source {
        case .dataset(let served):
            return try await batches(dataset: served, plan: plan, epoch: epoch)
        case .mixture(let mixture):
            guard plan.packedMixture != nil else { return plan.batchesPerEpoch }
            return try await batches(of: packedMixtureProducer(mixture, plan: plan), named: mixture.name, epoch: epoch)
        }
    }

    /// The live producer of a packed mixture plan, made once and kept with its layouts.
    private func packedMixtureProducer(_ mixture: ServedMixture, plan: ServedPlan) async throws -> PackedMixtureBatchProducer {
        guard let packed = plan.packedMixture else { preconditionFailure("an unpacked plan has no packed producer") }
        if let known = packedMixtureProducers.value(for: packed.fingerprint) { return known }
        let made = try await PackedMixtureBatchProducer(plan: packed, datasets: mixture.datasets.map(\.dataset), configuration: prefetch)
        packedMixtureProducers.insert(made, for: packed.fingerprint)
        return made
    }

    /// Frames from the spool when a shard set there holds this plan's epoch for this rank
    /// (for a mixture: a set of the same sources, versions, weights and epoch size),
    /// otherwise batches prepared live.
    func producer(source: ServedSource, plan: ServedPlan, epoch: Int, rank: Int) async throws -> (any BatchProducer, spooled: Bool) {
        guard case .mixture(let mixture) = source, let resolved = plan.mixture else {
            guard case .dataset(let served) = source else { preconditionFailure("a mixture's plan is a mixture plan") }
            return try await producer(dataset: served, plan: plan, epoch: epoch, rank: rank)
        }
        if let packed = plan.packedMixture {
            let batches = try await batches(source: source, plan: plan, epoch: epoch)
            if let set = spooled(ShardRequirement(plan: packed, epochs: epoch..<epoch + 1), epoch: epoch, rank: rank, batches: batches) { return (set, true) }
            return (try await packedMixtureProducer(mixture, plan: plan), false)
        }
        var requirement = ShardRequirement(parameters: resolved.parameters, epochs: epoch..<epoch + 1, padLengths: prefetch.padLengths)
        requirement.mixture = .pinned(resolved.pinned)
        requirement.requirePacking(nil)
        if let set = spooled(requirement, epoch: epoch, rank: rank, batches: plan.batchesPerEpoch) { return (set, true) }
        if let live = mixtureProducers.value(for: plan.fingerprint) { return (live, false) }
        let live = try await MixtureBatchProducer(plan: resolved, datasets: mixture.datasets.map(\.dataset), configuration: prefetch)
        mixtureProducers.insert(live, for: plan.fingerprint)
        return (live, false)
    }

    /// The mixture plan with each source at `versions` (in `_source` order), packed by
    /// `packing` when given. Its refusals are `400 invalid_parameter` naming the query
    /// parameter at fault.
    private func plan(mixture: ServedMixture, parameters: PlanParameters, packing: PackingSpec?, versions: [Int]) async throws -> ServedPlan {
        let key =
            ([mixture.query.mix, mixture.query.epochSize.map(String.init) ?? "*", parameters.key, packing?.key ?? "-"] + versions.map(String.init))
            .joined(separator: "|")
        if let known = mixturePlans.value(for: key) { return known }
        // Names are distinct: the query's parser refuses a name given twice.
        let pinnedTo = Dictionary(zip(mixture.query.sources.map(\.name), versions), uniquingKeysWith: { first, _ in first })
        let plan: ServedPlan
        do {
            if let packing {
                plan = ServedPlan(
                    packedMixture: try await PackedMixturePlan.resolve(
                        mixture.components, epochSize: mixture.query.epochSize, parameters: parameters, packing: packing, pinnedTo: pinnedTo))
            } else {
                plan = ServedPlan(
                    mixture: try await MixtureBatchPlan.resolve(
                        mixture.components, epochSize: mixture.query.epochSize, parameters: parameters, pinnedTo: pinnedTo))
            }
        } catch let error as MBDataError where error.code == .invalidArgument || error.code == .invalidDataset {
            let parameter =
                switch error.parameter {
                case "epochSize": MixtureQuery.epochSizeName
                case "shuffle": "shuffle"
                case _ where packing != nil && error.field == packing?.field: PlanQuery.packName
                default: MixtureQuery.mixName
                }
            throw ServeError(.badRequest, "invalid_parameter", "query parameter \(parameter): \(error.message)")
        }
        guard plan.batchesPerEpoch > 0 else {
            let epoch = plan.mixture.map { "\($0.mixture.epochSize) draws of the mixture's epoch" } ?? "mixture's epoch"
            throw ServeError(
                .badRequest, "invalid_parameter",
                plan.packing == nil
                    ? "query parameter batch_size: expected at most the \(epoch), got \(parameters.batchSize)"
                    : "query parameter batch_size: expected at most the rows the \(epoch) pack into (at most \(plan.batchesPerEpoch) batches of \(parameters.batchSize) rows), got \(parameters.batchSize)")
        }
        mixturePlans.insert(plan, for: key)
        return plan
    }

    /// The pin of one source of a mixture for a group: its sources' names (not its weights:
    /// a group asking for other weights finds its pins and its cursor refuses the request),
    /// the group, the parameters and the source. Names hold no "|" or ",".
    private static func pinKey(_ mixture: ServedMixture, source: String, group: String, parameters: PlanParameters) -> String {
        [mixture.name, group, parameters.key, source].joined(separator: "|")
    }
}
