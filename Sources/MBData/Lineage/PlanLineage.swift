import GRDB

/// Lineage of a plan (issue 14 §4, `mbdata explain`): which samples — dataset, `_id`, key —
/// a step of an epoch held, with the packing layout of packed rows, and the inverse: the
/// steps (and rows) of an epoch in which a sample appears. Both are computed from the plan
/// alone, a pure function of (seed, epoch, dataset versions), so they say what any loader,
/// shard set or daemon serving the plan delivered.
///
/// Each position of an epoch's order resolves to a source dataset and a sample of it
/// (``sample(epoch:position:)``). A plan over one dataset has one source; a mixture plan
/// resolves a position through its draw to one of several, with the pass (repeat) of that
/// source's stream the draw belongs to.
///
/// Costs: an unpacked step or sample is O(1) plan arithmetic (a sample found by key or id
/// also scans the plan's ids once; a mixture's positions cost O(N²) with N sources); a
/// packed one packs the epoch's lengths once (O(samples)) to find its windows, then one window.
public struct PlanLineage: Sendable {
    /// One dataset samples are read from.
    public struct Source: Sendable {
        /// The dataset's name in entries (a file's name, a daemon's dataset name, a mixture's source name).
        public let name: String
        /// The dataset.
        public let dataset: Dataset
        /// The dataset's pinned plan: its ids at the plan's version (a mixture's source plan
        /// has the mixture's split and neutral parameters).
        public let plan: DatasetPlan
        let keyField: String?

        init(name: String, dataset: Dataset, plan: DatasetPlan) async throws {
            self.name = name
            self.dataset = dataset
            self.plan = plan
            keyField = try await dataset.schema()?.key
        }
    }

    /// The datasets samples are read from, in `_source` order: one for a plan over one dataset.
    public let sources: [Source]
    /// The packed plan over one dataset; nil for unpacked batches or a mixture's.
    public let packed: PackedPlan?
    /// The packed mixture plan; nil for unpacked batches or one dataset's.
    public let packedMixture: PackedMixturePlan?
    /// The mixture plan; nil for a plan over one dataset.
    public let mixture: MixtureBatchPlan?

    /// The packing of the plan's rows, over one dataset or a mixture; nil for unpacked batches.
    var packing: (any PackedBatching)? {
        if let packed { return packed }
        return packedMixture
    }

    /// Whether the plan's batches are packed rows (over one dataset or a mixture).
    public var isPacked: Bool { packing != nil }

    /// The (first) dataset's name in entries.
    public var name: String { sources[0].name }
    /// The (first) dataset samples are read from.
    public var dataset: Dataset { sources[0].dataset }
    /// The plan over one dataset (for a packed plan, the unpacked plan it packs); a mixture's first source's plan.
    public var plan: DatasetPlan { sources[0].plan }

    /// The lineage of `plan` (packed by `packed` when given, which must pack `plan`) over
    /// `dataset`, named `name` in entries.
    ///
    /// - Throws: What reading the dataset's schema throws.
    public init(name: String, dataset: Dataset, plan: DatasetPlan, packed: PackedPlan? = nil) async throws {
        precondition(packed.map { $0.base == plan } ?? true, "the packed plan packs another plan")
        sources = [try await Source(name: name, dataset: dataset, plan: plan)]
        self.packed = packed
        mixture = nil
        packedMixture = nil
    }

    /// The lineage of a mixture plan over `datasets`, given in `_source` order (those the plan
    /// was resolved from); entries name each source as the mixture does.
    ///
    /// - Throws: What reading the datasets' schemas throws.
    public init(mixture: MixtureBatchPlan, datasets: [Dataset]) async throws {
        try await self.init(mixture: mixture, packed: nil, datasets: datasets)
    }

    /// The lineage of a packed mixture plan over `datasets`, given in `_source` order; entries
    /// name each segment's source as the mixture does.
    ///
    /// - Throws: What reading the datasets' schemas throws.
    public init(packedMixture: PackedMixturePlan, datasets: [Dataset]) async throws {
        try await self.init(mixture: packedMixture.base, packed: packedMixture, datasets: datasets)
    }

    private init(mixture: MixtureBatchPlan, packed: PackedMixturePlan?, datasets: [Dataset]) async throws {
        precondition(datasets.count == mixture.sources.count, "\(datasets.count) datasets for \(mixture.sources.count) sources")
        var sources: [Source] = []
        for (index, dataset) in datasets.enumerated() {
            sources.append(try await Source(name: mixture.names[index], dataset: dataset, plan: mixture.sources[index]))
        }
        self.sources = sources
        self.mixture = mixture
        self.packed = nil
        packedMixture = packed
    }

    /// The lineage of the plan of `parameters` (packed by `packing` when given) pinned to
    /// `version` (default: the current one).
    ///
    /// - Throws: What ``Dataset/plan(_:version:)`` and ``Dataset/packedPlan(_:packing:version:)`` throw.
    public static func make(
        dataset: Dataset, name: String, parameters: PlanParameters, packing: PackingSpec? = nil, version: Int? = nil
    ) async throws -> PlanLineage {
        if let packing {
            let packed = try await dataset.packedPlan(parameters, packing: packing, version: version)
            return try await PlanLineage(name: name, dataset: dataset, plan: packed.base, packed: packed)
        }
        return try await PlanLineage(name: name, dataset: dataset, plan: dataset.plan(parameters, version: version))
    }

    /// The lineage of the mixture of `components` (their datasets at their current versions,
    /// or those `pinnedTo` records) with `epochSize` draws per epoch under `parameters`,
    /// packed by `packing` when given.
    ///
    /// - Throws: What ``MixtureBatchPlan/resolve(_:epochSize:parameters:pinnedTo:)`` and
    ///   ``PackedMixturePlan/resolve(_:epochSize:parameters:packing:pinnedTo:)`` throw.
    public static func make(
        mixture components: [MixtureComponent], epochSize: Int?, parameters: PlanParameters, packing: PackingSpec? = nil, pinnedTo versions: [String: Int] = [:]
    ) async throws -> PlanLineage {
        let datasets = try components.map { try $0.storedDataset() }
        if let packing {
            let plan = try await PackedMixturePlan.resolve(components, epochSize: epochSize, parameters: parameters, packing: packing, pinnedTo: versions)
            return try await PlanLineage(packedMixture: plan, datasets: datasets)
        }
        let plan = try await MixtureBatchPlan.resolve(components, epochSize: epochSize, parameters: parameters, pinnedTo: versions)
        return try await PlanLineage(mixture: plan, datasets: datasets)
    }

    /// The lineage of the plan a shard set was written with: its parameters, packing and
    /// dataset version from the manifest, checked against `dataset` (the same content at
    /// that version), so the steps are the set's batches.
    ///
    /// - Throws: `MBDataError` with `.invalidDataset` when the dataset no longer holds what
    ///   the set was made from; what ``make(dataset:name:parameters:packing:version:)`` throws.
    public static func make(shards: ShardSet, dataset: Dataset, name: String) async throws -> PlanLineage {
        let manifest = shards.manifest
        let lineage = try await make(
            dataset: dataset, name: name, parameters: manifest.plan.parameters, packing: try manifest.packing?.spec(),
            version: manifest.dataset.version)
        let requirement = lineage.packed.map { ShardRequirement(plan: $0) } ?? ShardRequirement(plan: lineage.plan)
        try manifest.check(serves: requirement, source: shards.directory)
        return lineage
    }

    /// The lineage of the mixture a shard set was written with: its sources (matched to
    /// `datasets` by ``MixtureDataset/mixtureName``), weights, epoch size and parameters from
    /// the manifest, each source pinned to the version it records and checked against it.
    ///
    /// - Throws: `MBDataError` with `.invalidArgument` when the set holds one dataset's
    ///   batches or a source has no dataset among `datasets`; `.invalidDataset` when a
    ///   dataset no longer holds what the set was made from; what resolving the mixture throws.
    public static func make(shards: ShardSet, datasets: [Dataset]) async throws -> PlanLineage {
        let manifest = shards.manifest
        guard let info = manifest.mixture else {
            throw MBDataError(.invalidArgument, "the shards hold one dataset's batches, not a mixture", source: shards.directory, parameter: "dataset")
        }
        let components = try info.sources.map { source in
            guard let dataset = datasets.first(where: { $0.mixtureName == source.name }) else {
                throw MBDataError(
                    .invalidArgument, "the shards' mixture draws from '\(source.name)': name its dataset (\(source.name).mbdb) with --dataset",
                    source: shards.directory, parameter: "dataset")
            }
            return MixtureComponent(dataset: dataset, weight: source.weight)
        }
        let lineage = try await make(
            mixture: components, epochSize: info.sources.first?.weight.isRelative == true ? info.epochSize : nil, parameters: manifest.plan.parameters,
            packing: try manifest.packing?.spec(), pinnedTo: info.pinned.datasetVersions)
        var requirement = lineage.packedMixture.map { ShardRequirement(plan: $0) } ?? ShardRequirement(parameters: lineage.parameters)
        if let plan = lineage.mixture, lineage.packedMixture == nil {
            requirement.mixture = .pinned(plan.pinned)
            requirement.requirePacking(nil)
        }
        requirement.padLengths = nil
        try manifest.check(serves: requirement, source: shards.directory)
        return lineage
    }

    /// The plan's parameters (a packed plan's batch size counts rows).
    public var parameters: PlanParameters { mixture?.parameters ?? plan.parameters }

    /// How the epoch's positions become batches.
    private var batching: EpochPlan { mixture?.plan ?? plan.plan }

    /// Global batches of `epoch` (a packed plan's epochs differ: this packs the epoch's lengths).
    public func batchesPerEpoch(epoch: Int) async throws -> Int {
        guard let packing else { return batching.batchesPerEpoch }
        return try await runBlocking { packing.batchesPerEpoch(packing.layout(epoch: epoch)) }
    }

    /// The source (index into ``sources``), the index into its plan's ids of the sample at
    /// `position` of `epoch`'s order, and for a mixture the pass over that source it belongs to.
    func sample(epoch: Int, position: Int) -> (source: Int, index: Int, pass: Int?) {
        if let mixture {
            let draw = mixture.mixture.draw(epoch: epoch, position: position)
            return (draw.source, draw.index, draw.pass)
        }
        return (0, parameters.shuffle ? plan.plan.permutation(epoch: epoch).index(at: position) : position, nil)
    }

    /// The samples of step `step` of `epoch`, for rank `rank` or (nil) every rank.
    ///
    /// - Throws: `MBDataError` with `.invalidArgument` for an epoch that is negative, a step
    ///   outside the epoch's batches or a rank outside the world; what reading keys throws.
    public func batch(epoch: Int, step: Int, rank: Int? = nil) async throws -> BatchLineage {
        guard epoch >= 0 else { throw MBDataError(.invalidArgument, "the epoch must not be negative, got \(epoch)", parameter: "epoch") }
        if let rank, !(0..<parameters.world).contains(rank) {
            throw MBDataError(.invalidArgument, "rank \(rank) is outside 0..<\(parameters.world)", parameter: "rank")
        }
        let ranks = rank.map { [$0] } ?? Array(0..<parameters.world)
        let (batches, rows) = try await runBlocking { () -> (Int, [[PackedRow]]?) in
            guard let packed = self.packing else { return (self.batching.batchesPerEpoch, nil) }
            let layout = packed.layout(epoch: epoch)
            let batches = packed.batchesPerEpoch(layout)
            guard (0..<batches).contains(step) else { return (batches, nil) }
            return (batches, ranks.map { packed.rows(layout, batch: step, rank: $0) })
        }
        guard (0..<batches).contains(step) else {
            throw MBDataError(.invalidArgument, "step \(step) is outside the \(batches) batches of epoch \(epoch)", parameter: "step")
        }
        var entries: [LineageEntry] = []
        var paddingRows = 0
        if let rows {
            for (rank, rankRows) in zip(ranks, rows) {
                for (row, packedRow) in rankRows.enumerated() {
                    if packedRow.segments.isEmpty { paddingRows += 1 }
                    var column = 0
                    for (segment, piece) in packedRow.segments.enumerated() {
                        entries.append(
                            entry(epoch: epoch, step: step, rank: rank, row: row, position: piece.sample, segment: segment + 1, piece: piece, column: column))
                        column += piece.length
                    }
                }
            }
        } else {
            let local = batching.localBatchSize
            for rank in ranks {
                let start = step * parameters.batchSize + rank * local
                for row in 0..<local {
                    let position = start + row
                    guard position < batching.sampleCount else {
                        paddingRows += 1
                        continue
                    }
                    entries.append(entry(epoch: epoch, step: step, rank: rank, row: row, position: position))
                }
            }
        }
        return BatchLineage(
            epoch: epoch, step: step, batchesPerEpoch: batches, ranks: ranks, rowsPerRank: batching.localBatchSize,
            rowLength: packing?.spec.rowLength, paddingRows: paddingRows, entries: try await withKeys(entries))
    }

    /// Where sample `id` of source `source` (an index into ``sources``) appears in `epoch`:
    /// one entry per row holding it (several for the pieces of a split sample, or for a
    /// mixture's source drawn more than once per epoch), in step order; none when the plan
    /// leaves it out (another split, a dropped tail, a dropped overlong or empty sample, a
    /// mixture's source drawn below its size this epoch).
    ///
    /// - Throws: `MBDataError` with `.invalidArgument` for a negative epoch or a source
    ///   outside ``sources``; what reading keys throws.
    public func appearances(epoch: Int, id: Int64, source: Int = 0) async throws -> [LineageEntry] {
        guard epoch >= 0 else { throw MBDataError(.invalidArgument, "the epoch must not be negative, got \(epoch)", parameter: "epoch") }
        guard sources.indices.contains(source) else {
            throw MBDataError(.invalidArgument, "source \(source) is outside 0..<\(sources.count)", parameter: "source")
        }
        guard let index = sources[source].plan.ids.firstIndex(of: id) else { return [] }
        let g = parameters.batchSize
        let positions = mixture.map { $0.mixture.positions(ofSample: index, source: source, epoch: epoch) }
            ?? [parameters.shuffle ? plan.plan.permutation(epoch: epoch).position(of: index) : index]
        if let packing {
            return try await withKeys(packedAppearances(epoch: epoch, positions: positions, packing: packing))
        }
        let local = batching.localBatchSize
        return try await withKeys(
            positions.filter { $0 / g < batching.batchesPerEpoch }.map { position in
                entry(epoch: epoch, step: position / g, rank: position % g / local, row: position % local, position: position)
            })
    }

    /// The packed rows holding the input `positions` of `epoch`: each position's window is
    /// packed again and searched; rows past the epoch's last batch are left out.
    private func packedAppearances(epoch: Int, positions: [Int], packing: any PackedBatching) async throws -> [LineageEntry] {
        let g = parameters.batchSize
        let rows = try await runBlocking { () -> [(row: Int, segment: Int, piece: PackedSegment, column: Int)] in
            let layout = packing.layout(epoch: epoch)
            let window = packing.spec.packer.window
            let batches = packing.batchesPerEpoch(layout)
            var found: [(row: Int, segment: Int, piece: PackedSegment, column: Int)] = []
            for position in positions {
                let start = position / window * window
                let end = min(start + window, packing.inputCount)
                let windowRows = packing.spec.packer.packWindow(packing.orderedLengths(epoch: epoch, start..<end), firstSample: start).rows
                let before = layout.rowsBeforeWindow[position / window]
                for (row, packedRow) in windowRows.enumerated() where (before + row) / g < batches {
                    var column = 0
                    for (segment, piece) in packedRow.segments.enumerated() {
                        if piece.sample == position { found.append((before + row, segment + 1, piece, column)) }
                        column += piece.length
                    }
                }
            }
            return found.sorted { $0.row < $1.row }
        }
        let local = packing.localBatchRows
        return rows.map { found in
            entry(
                epoch: epoch, step: found.row / g, rank: found.row % g / local, row: found.row % local, position: found.piece.sample,
                segment: found.segment, piece: found.piece, column: found.column)
        }
    }

    /// The index into ``sources`` of the sample's source a caller names: 0 for one dataset's
    /// plan (which takes no name), else the mixture's source named `name`.
    ///
    /// - Throws: `MBDataError` with `.invalidArgument` (parameter `source`) for a name given to
    ///   one dataset's plan, none given to a mixture's, or one the mixture does not have.
    public func sourceIndex(named name: String?) throws -> Int {
        guard mixture != nil else {
            guard name == nil else { throw MBDataError(.invalidArgument, "a source name applies to a mixture's plan only", parameter: "source") }
            return 0
        }
        let names = sources.map(\.name).joined(separator: ", ")
        guard let name else {
            throw MBDataError(.invalidArgument, "a mixture's sample is named by its source (one of \(names)) and its key or _id", parameter: "source")
        }
        guard let index = sources.firstIndex(where: { $0.name == name }) else {
            throw MBDataError(.invalidArgument, "the mixture has no source '\(name)'; its sources are \(names)", parameter: "source")
        }
        return index
    }

    /// The `_id` of the sample of source `source` whose key field holds `key`; nil when none
    /// does at the plan's version.
    ///
    /// - Throws: `MBDataError` with `.invalidArgument` (parameter `key`) when the schema has no key field.
    public func id(key: String, source: Int = 0) async throws -> Int64? {
        let source = sources[source]
        guard let keyField = source.keyField else {
            throw MBDataError(.invalidArgument, "the dataset's schema has no key field: name the sample by its _id", source: source.dataset.path, parameter: "key")
        }
        let column = SampleTable.quoted(keyField)
        let maxID = source.plan.maxID
        return try await source.dataset.read { db in
            try Int64.fetchOne(db, sql: "SELECT _id FROM samples WHERE CAST(\(column) AS TEXT) = ? AND _id <= ? ORDER BY _id LIMIT 1", arguments: [key, maxID])
        }
    }

    private func entry(
        epoch: Int, step: Int, rank: Int, row: Int, position: Int, segment: Int? = nil, piece: PackedSegment? = nil, column: Int? = nil
    ) -> LineageEntry {
        let (source, index, pass) = sample(epoch: epoch, position: position)
        return LineageEntry(
            dataset: sources[source].name, id: sources[source].plan.ids[index], source: mixture == nil ? nil : source, pass: pass, epoch: epoch,
            step: step, rank: rank, row: row, position: position, segment: segment, offset: piece?.offset, length: piece?.length, column: column)
    }

    /// `entries` with their samples' keys, read in one transaction per source.
    private func withKeys(_ entries: [LineageEntry]) async throws -> [LineageEntry] {
        var keyed = entries
        for (index, source) in sources.enumerated() {
            guard let keyField = source.keyField else { continue }
            let rows = entries.indices.filter { (entries[$0].source ?? 0) == index }
            guard !rows.isEmpty else { continue }
            let column = SampleTable.quoted(keyField)
            let ids = Set(rows.map { entries[$0].id })
            let keys = try await source.dataset.read { db in
                let statement = try db.makeStatement(sql: "SELECT CAST(\(column) AS TEXT) FROM samples WHERE _id = ?")
                var keys: [Int64: String] = [:]
                for id in ids { keys[id] = try String.fetchOne(statement, arguments: [id]) }
                return keys
            }
            for row in rows { keyed[row].key = keys[keyed[row].id] }
        }
        return keyed
    }
}
