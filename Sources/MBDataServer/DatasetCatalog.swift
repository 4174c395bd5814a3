import Foundation
import HTTPTypes
import MBData
import MBDataOrigin
import MBDataWire

/// The datasets a daemon serves, the plans requests resolve to, and where each plan's
/// batches come from: frames of a matching shard set in the spool, or live from SQLite.
actor DatasetCatalog {
    struct Served: Sendable {
        var name: String
        var dataset: Dataset
    }

    private let datasets: [String: Served]
    let names: [String]
    let store: any StateStore
    private(set) var spool: [SpoolBatchProducer]
    let prefetch: PrefetchConfiguration
    /// The dataset version each consumer group's plan (or mixture source) is pinned to
    /// (also in the state database).
    var pinned = RecentlyUsed<String, Int>(capacity: 4096)
    /// Mixture plans by sources, weights, versions and parameters.
    var mixturePlans = RecentlyUsed<String, ServedPlan>(capacity: 16)
    /// Live mixture producers by plan fingerprint.
    var mixtureProducers = RecentlyUsed<String, MixtureBatchProducer>(capacity: 16)
    /// Packed mixture producers by plan fingerprint; each keeps its epochs' layouts.
    var packedMixtureProducers = RecentlyUsed<String, PackedMixtureBatchProducer>(capacity: 16)
    /// Plans by dataset, version and parameters: groups with the same parameters share one.
    private var plans = RecentlyUsed<String, DatasetPlan>(capacity: 16)
    private var liveProducers = RecentlyUsed<String, LiveBatchProducer>(capacity: 16)
    /// Packed plans by base fingerprint and spec (each holds a length per sample).
    private var packedPlans = RecentlyUsed<String, ServedPlan>(capacity: 16)
    /// Packed producers by packed fingerprint; each keeps its epochs' layouts.
    private var packedProducers = RecentlyUsed<String, PackedBatchProducer>(capacity: 16)
    private let metrics: ServeMetrics
    /// The packed plan of each cursor an ack named (nil: unpacked), read from the store once:
    /// a cursor's id names its packing, and its group's pin keeps its version.
    private var cursorPlans = RecentlyUsed<String, PackedCursor?>(capacity: 4096)
    /// Split ids by dataset, version and split: every plan over one split shares them.
    private var snapshots = RecentlyUsed<String, SplitSnapshot>(capacity: 16)
    /// Scans of a split's ids so far: the work that grows with a dataset's size.
    private(set) var idScans = 0

    /// What resolves a packed cursor's plan.
    private struct PackedCursor {
        var dataset: String
        var group: String
        var parameters: PlanParameters
        var packing: PackingSpec
        var version: Int
        /// A packed mixture cursor's sources; nil for one dataset.
        var mixture: PinnedMixture?
    }

    init(configuration: ServeConfiguration, store: any StateStore, metrics: ServeMetrics = ServeMetrics()) throws {
        var datasets: [String: Served] = [:]
        for (name, path) in configuration.datasets {
            guard datasets[name] == nil else { throw MBDataError(.invalidArgument, "two datasets are named \(name)", source: path) }
            guard FileManager.default.fileExists(atPath: path) else {
                throw MBDataError(.unreadableSource, "no such dataset file", source: path)
            }
            datasets[name] = Served(name: name, dataset: try Dataset(path: path))
        }
        self.datasets = datasets
        names = configuration.datasets.map(\.name)
        self.store = store
        self.metrics = metrics
        prefetch = configuration.prefetch
        spool = try configuration.spool.filter { !ShardOriginConfiguration.isOrigin($0) }.flatMap(Self.scanSpool)
    }

    /// The shard sets in `directory` and its immediate subdirectories.
    private static func scanSpool(_ directory: String) throws -> [SpoolBatchProducer] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw MBDataError(.unreadableSource, "the spool is not a directory", source: directory)
        }
        let children = (try FileManager.default.contentsOfDirectory(atPath: directory)).sorted()
            .map { (directory as NSString).appendingPathComponent($0) }
        return try ([directory] + children).compactMap { candidate in
            let manifest = (candidate as NSString).appendingPathComponent(ShardManifest.fileName)
            guard FileManager.default.fileExists(atPath: manifest) else { return nil }
            return try SpoolBatchProducer(shards: ShardSet(directory: candidate))
        }
    }

    var spoolSets: Int { spool.count }

    /// Serves the sets of HTTP origins too, after the local ones.
    func add(origins: ShardOrigins) {
        spool += origins.sets
    }

    /// Every served dataset, in command-line order.
    func everyServed() -> [Served] { names.compactMap { datasets[$0] } }

    func served(_ name: Substring) throws -> Served {
        guard ServeConfiguration.isValidName(name), let served = datasets[String(name)] else {
            throw ServeError(.notFound, "unknown_dataset", "no dataset named \"\(name.prefix(64))\" is served")
        }
        return served
    }

    /// The plan of `parameters` (packed by `packing`) for `group`: at the version the group
    /// is pinned to, or — for a group the daemon has not pinned yet — at `preferred` or the
    /// current version. Changes no state: a request that is refused after this leaves no pin behind.
    func plan(
        dataset: Served, group: String, parameters: PlanParameters, packing: PackingSpec? = nil, preferring preferred: Int? = nil
    ) async throws -> ServedPlan {
        let groupKey = Self.groupKey(dataset, group, parameters, packing)
        var version = pinned.value(for: groupKey)
        if version == nil { version = try await store.pinnedVersion(key: groupKey) }
        return try await plan(dataset: dataset, parameters: parameters, packing: packing, version: version ?? preferred)
    }

    /// Pins `group`'s plan to `plan`'s dataset version, written to the state database before
    /// it is kept here; returns the plan at the version the group is pinned to (another
    /// request may have pinned it first).
    func pin(dataset: Served, group: String, plan: ServedPlan) async throws -> ServedPlan {
        let groupKey = Self.groupKey(dataset, group, plan.parameters, plan.packing)
        if pinned.value(for: groupKey) == plan.datasetVersion { return plan }
        let version = try await store.pin(key: groupKey, version: plan.datasetVersion)
        pinned.insert(version, for: groupKey)
        guard version != plan.datasetVersion else { return plan }
        return try await self.plan(dataset: dataset, parameters: plan.parameters, packing: plan.packing, version: version)
    }

    /// `plan` then `pin`: the plan a group keeps from now on.
    func pinnedPlan(dataset: Served, group: String, parameters: PlanParameters, preferring preferred: Int? = nil) async throws -> ServedPlan {
        try await pin(dataset: dataset, group: group, plan: plan(dataset: dataset, group: group, parameters: parameters, preferring: preferred))
    }

    private func plan(dataset: Served, parameters: PlanParameters, packing: PackingSpec?, version: Int?) async throws -> ServedPlan {
        let base = try await plan(dataset: dataset, parameters: parameters, checkingBatchSize: packing == nil, version: version)
        guard let packing else { return ServedPlan(base) }
        let key = [base.fingerprint, packing.key].joined(separator: "|")
        if let known = packedPlans.value(for: key) { return known }
        let packed: ServedPlan
        do {
            packed = ServedPlan(packed: try await dataset.dataset.packedPlan(parameters, packing: packing, version: base.datasetVersion))
        } catch let error as MBDataError where error.code == .invalidArgument {
            throw ServeError(.badRequest, "invalid_parameter", "query parameter \(PlanQuery.packName), field \(packing.field): \(error.message)")
        }
        guard packed.batchesPerEpoch > 0 else {
            throw ServeError(
                .badRequest, "invalid_parameter",
                "query parameter batch_size: expected at most the rows an epoch packs into (at most \(packed.batchesPerEpoch) batches of \(parameters.batchSize) rows), got \(parameters.batchSize)")
        }
        packedPlans.insert(packed, for: key)
        return packed
    }

    private func plan(dataset: Served, parameters: PlanParameters, checkingBatchSize: Bool, version: Int?) async throws -> DatasetPlan {
        // The current version is one read: a new group's plan comes from the caches too.
        let pinned: Int
        if let version { pinned = version } else { pinned = try await dataset.dataset.version() }
        if let plan = plans.value(for: Self.planKey(dataset, pinned, parameters)) { return plan }
        let plan: DatasetPlan
        do {
            try parameters.validate()
            plan = try DatasetPlan(parameters, over: await snapshot(dataset, split: parameters.split, version: pinned))
        } catch let error as MBDataError where error.code == .invalidArgument {
            throw ServeError(.badRequest, "invalid_parameter", error.message)
        }
        // A packed plan's batch size counts rows, not samples.
        guard !checkingBatchSize || parameters.batchSize <= plan.plan.sampleCount else {
            throw ServeError(
                .badRequest, "invalid_parameter",
                "query parameter batch_size: expected at most the \(plan.plan.sampleCount) samples of split \(parameters.split ?? "(all)"), got \(parameters.batchSize)")
        }
        plans.insert(plan, for: Self.planKey(dataset, plan.datasetVersion, parameters))
        return plan
    }

    /// The ids of `split` at `version`, read once and shared by the plans of every group.
    private func snapshot(_ dataset: Served, split: String?, version: Int) async throws -> SplitSnapshot {
        let key = [dataset.name, String(version), split.map { "=" + $0 } ?? "*"].joined(separator: "|")
        if let known = snapshots.value(for: key) { return known }
        idScans += 1
        let snapshot = try await dataset.dataset.snapshot(split: split, version: version)
        snapshots.insert(snapshot, for: key)
        return snapshot
    }

    /// Reads every sample's ids at each dataset's current version ahead of the first request,
    /// so that no consumer's first batch waits for the scan. A dataset that has nothing to
    /// plan yet (no samples) is skipped: its first request reports why. Then frees what the
    /// scan left cached — SQLite's pages of the split index, allocator memory — which grew
    /// with the dataset's size (4 MiB more resident at 1M samples than at 50k).
    func warm() async {
        for served in everyServed() {
            guard let version = try? await served.dataset.version() else { continue }
            _ = try? await snapshot(served, split: nil, version: version)
            _ = try? await runBlocking { served.dataset.releaseMemory() }
        }
        // malloc_trim walks every arena: off the cooperative pool too.
        _ = try? await runBlocking { AllocatorTuning.releaseFreeMemory() }
    }

    /// Not NUL-separated: SQLite binds the key as a C string. Names cannot hold a "|". An
    /// unpacked group's key is what it always was.
    private static func groupKey(_ dataset: Served, _ group: String, _ parameters: PlanParameters, _ packing: PackingSpec?) -> String {
        ([dataset.name, group, parameters.key] + (packing.map { [$0.key] } ?? [])).joined(separator: "|")
    }

    private static func planKey(_ dataset: Served, _ version: Int, _ parameters: PlanParameters) -> String {
        [dataset.name, String(version), parameters.key].joined(separator: "|")
    }

    /// Global batches of `epoch` of `plan`: the plan's for an unpacked plan; for a packed
    /// one, the rows that epoch packs into over the batch size (its layout, made once per
    /// epoch and kept with the producer), its packing statistics recorded in the metrics.
    func batches(dataset: Served, plan: ServedPlan, epoch: Int) async throws -> Int {
        guard plan.packed != nil else { return plan.batchesPerEpoch }
        return try await batches(of: packedProducer(dataset: dataset, plan: plan), named: dataset.name, epoch: epoch)
    }

    /// Global batches of `epoch` of a packed producer's plan (its layout, made once per epoch
    /// and kept with the producer), its packing statistics recorded in the metrics under `name`.
    func batches(of producer: some PackedProducer, named name: String, epoch: Int) async throws -> Int {
        let (count, statistics, isNew) = try await runBlocking { () -> (Int, PackingStatistics, Bool) in
            let known = producer.hasLayout(epoch: epoch)
            let layout = producer.layout(epoch: epoch)
            return (producer.batchesPerEpoch(epoch: epoch), layout.statistics, !known)
        }
        if isNew { metrics.packed(dataset: name, plan: producer.fingerprint, statistics: statistics) }
        return count
    }

    /// The batches of `epoch` of a packed cursor, whose epochs differ; nil for an unpacked
    /// cursor (its `batches_per_epoch` holds), an unknown one and an epoch outside the plan's
    /// (the ack check refuses those).
    func packedBatches(cursor id: String, epoch: Int) async throws -> Int? {
        guard PlanRequest.epochs.contains(epoch) else { return nil }
        var known = cursorPlans.value(for: id)
        if known == nil {
            guard let state = try await store.cursor(id) else { return nil }
            let packed = state.packing.map {
                PackedCursor(
                    dataset: state.dataset, group: state.group, parameters: state.plan, packing: $0, version: state.datasetVersion, mixture: state.mixture)
            }
            cursorPlans.insert(packed, for: id)
            known = .some(packed)
        }
        guard let cursor = known ?? nil else { return nil }
        if let pinned = cursor.mixture {
            let source = ServedSource.mixture(try served(mixture: MixtureQuery(pinned: pinned)))
            let plan = try await plan(source: source, group: cursor.group, parameters: cursor.parameters, packing: cursor.packing)
            return try await batches(source: source, plan: plan, epoch: epoch)
        }
        let served = try served(Substring(cursor.dataset))
        let plan = try await plan(dataset: served, group: cursor.group, parameters: cursor.parameters, packing: cursor.packing, preferring: cursor.version)
        return try await batches(dataset: served, plan: plan, epoch: epoch)
    }

    private func packedProducer(dataset: Served, plan: ServedPlan) async throws -> PackedBatchProducer {
        guard let packed = plan.packed else { preconditionFailure("an unpacked plan has no packed producer") }
        if let known = packedProducers.value(for: packed.fingerprint) { return known }
        let made = try await PackedBatchProducer(
            dataset: dataset.dataset, plan: packed, compressionLevel: prefetch.compressionLevel, contentChecksum: prefetch.frameContentChecksum)
        packedProducers.insert(made, for: packed.fingerprint)
        return made
    }

    /// Frames from the spool when a shard set there holds this plan's epoch for this rank,
    /// otherwise batches prepared live from the dataset. A packed plan takes only a set
    /// packed by the same spec, an unpacked one only an unpacked set.
    func producer(dataset: Served, plan: ServedPlan, epoch: Int, rank: Int) async throws -> (any BatchProducer, spooled: Bool) {
        let batches = try await batches(dataset: dataset, plan: plan, epoch: epoch)
        let requirement: ShardRequirement
        switch plan.kind {
        case .packed(let packed): requirement = ShardRequirement(plan: packed, epochs: epoch..<epoch + 1)
        case .dataset(let base): requirement = ShardRequirement(plan: base, epochs: epoch..<epoch + 1, padLengths: prefetch.padLengths)
        case .mixture, .packedMixture: preconditionFailure("a mixture's producer comes from producer(source:plan:epoch:rank:)")
        }
        if let set = spooled(requirement, epoch: epoch, rank: rank, batches: batches) { return (set, true) }
        guard case .dataset(let base) = plan.kind else { return (try await packedProducer(dataset: dataset, plan: plan), false) }
        if let live = liveProducers.value(for: plan.fingerprint) { return (live, false) }
        let live = try await LiveBatchProducer(dataset: dataset.dataset, plan: base, configuration: prefetch)
        liveProducers.insert(live, for: plan.fingerprint)
        return (live, false)
    }

    /// The spool's first set that serves `requirement` and holds `epoch` for `rank`.
    func spooled(_ requirement: ShardRequirement, epoch: Int, rank: Int, batches: Int) -> SpoolBatchProducer? {
        spool.first { producer in
            producer.shards.manifest.serves(requirement) && producer.holds(epoch: epoch, rank: rank, batchesPerEpoch: batches)
        }
    }

    /// A dataset's name, version, samples and splits (and schema).
    func describe(_ name: Substring, schema includeSchema: Bool) async throws -> DatasetDescription {
        let served = try served(name)
        let info = try await served.dataset.info()
        var description = DatasetDescription(name: served.name, version: info.datasetVersion, samples: info.sampleCount, splits: info.splits)
        if includeSchema, let schema = info.schema {
            description.schema = try WireJSON.decode(JSONValue.self, from: Data(schema.canonicalJSON().utf8))
        }
        return description
    }

    /// The body of `GET /v1/datasets/{name}` (one dataset, with its schema) or, for nil,
    /// `GET /v1/datasets`.
    func describeJSON(_ name: Substring?) async throws -> Data {
        if let name { return try WireJSON.encode(try await describe(name, schema: true)) }
        var all: [DatasetDescription] = []
        for name in names { all.append(try await describe(Substring(name), schema: false)) }
        return try WireJSON.encode(DatasetList(datasets: all))
    }
}
