import GRDB

/// Lineage of a plan (issue 14 §4, `mbdata explain`): which samples — dataset, `_id`, key —
/// a step of an epoch held, with the packing layout of packed rows, and the inverse: the
/// steps (and rows) of an epoch in which a sample appears. Both are computed from the plan
/// alone, a pure function of (seed, epoch, dataset version), so they say what any loader,
/// shard set or daemon serving the plan delivered.
///
/// Each position of an epoch's order resolves to a source dataset and a sample of it
/// (``sample(epoch:position:)``). A plan over one dataset has one source; a mixture plan
/// resolves a position through its draw to one of several, and every entry already names
/// its dataset, so a mixture slots in there.
///
/// Costs: an unpacked step or sample is O(1) plan arithmetic (a sample found by key or id
/// also scans the plan's ids once); a packed one packs the epoch's lengths once
/// (O(samples)) to find its windows, then one window.
public struct PlanLineage: Sendable {
    /// The dataset's name in entries (a file's name, a daemon's dataset name).
    public let name: String
    /// The dataset samples are read from.
    public let dataset: Dataset
    /// The plan; for a packed plan, the unpacked plan it packs.
    public let plan: DatasetPlan
    /// The packed plan; nil for unpacked batches.
    public let packed: PackedPlan?
    private let keyField: String?

    /// The lineage of `plan` (packed by `packed` when given, which must pack `plan`) over
    /// `dataset`, named `name` in entries.
    ///
    /// - Throws: What reading the dataset's schema throws.
    public init(name: String, dataset: Dataset, plan: DatasetPlan, packed: PackedPlan? = nil) async throws {
        precondition(packed.map { $0.base == plan } ?? true, "the packed plan packs another plan")
        self.name = name
        self.dataset = dataset
        self.plan = plan
        self.packed = packed
        keyField = try await dataset.schema()?.key
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

    /// The plan's parameters (a packed plan's batch size counts rows).
    public var parameters: PlanParameters { plan.parameters }

    /// Global batches of `epoch` (a packed plan's epochs differ: this packs the epoch's lengths).
    public func batchesPerEpoch(epoch: Int) async throws -> Int {
        guard let packed else { return plan.plan.batchesPerEpoch }
        return try await runBlocking { packed.batchesPerEpoch(packed.layout(epoch: epoch)) }
    }

    /// The source (index into the lineage's datasets: always 0 for one dataset) and the plan
    /// index of the sample at `position` of `epoch`'s order.
    func sample(epoch: Int, position: Int) -> (source: Int, index: Int) {
        (0, parameters.shuffle ? plan.plan.permutation(epoch: epoch).index(at: position) : position)
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
            guard let packed = self.packed else { return (self.plan.plan.batchesPerEpoch, nil) }
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
            let local = plan.plan.localBatchSize
            for rank in ranks {
                let start = step * parameters.batchSize + rank * local
                for row in 0..<local {
                    let position = start + row
                    guard position < plan.plan.sampleCount else {
                        paddingRows += 1
                        continue
                    }
                    entries.append(entry(epoch: epoch, step: step, rank: rank, row: row, position: position))
                }
            }
        }
        return BatchLineage(
            epoch: epoch, step: step, batchesPerEpoch: batches, ranks: ranks, rowsPerRank: plan.plan.localBatchSize,
            rowLength: packed?.spec.rowLength, paddingRows: paddingRows, entries: try await withKeys(entries))
    }

    /// Where sample `id` appears in `epoch`: one entry per row holding it (several for the
    /// pieces of a split sample), in step order; none when the plan leaves it out (another
    /// split, a dropped tail, a dropped overlong or empty sample).
    ///
    /// - Throws: `MBDataError` with `.invalidArgument` for a negative epoch; what reading keys throws.
    public func appearances(epoch: Int, id: Int64) async throws -> [LineageEntry] {
        guard epoch >= 0 else { throw MBDataError(.invalidArgument, "the epoch must not be negative, got \(epoch)", parameter: "epoch") }
        guard let index = plan.ids.firstIndex(of: id) else { return [] }
        let position = parameters.shuffle ? plan.plan.permutation(epoch: epoch).position(of: index) : index
        let g = parameters.batchSize
        var entries: [LineageEntry] = []
        if let packed {
            let rows = try await runBlocking { () -> [(row: Int, segment: Int, piece: PackedSegment, column: Int)] in
                let layout = packed.layout(epoch: epoch)
                let window = packed.spec.packer.window
                let start = position / window * window
                let end = min(start + window, packed.lengths.count)
                let windowRows = packed.spec.packer.packWindow(packed.orderedLengths(epoch: epoch, start..<end), firstSample: start).rows
                let before = layout.rowsBeforeWindow[position / window]
                let batches = packed.batchesPerEpoch(layout)
                var found: [(row: Int, segment: Int, piece: PackedSegment, column: Int)] = []
                for (row, packedRow) in windowRows.enumerated() where (before + row) / g < batches {
                    var column = 0
                    for (segment, piece) in packedRow.segments.enumerated() {
                        if piece.sample == position { found.append((before + row, segment + 1, piece, column)) }
                        column += piece.length
                    }
                }
                return found
            }
            let local = packed.localBatchRows
            for found in rows {
                entries.append(
                    entry(
                        epoch: epoch, step: found.row / g, rank: found.row % g / local, row: found.row % local, position: position,
                        segment: found.segment, piece: found.piece, column: found.column))
            }
        } else if position / g < plan.plan.batchesPerEpoch {
            let local = plan.plan.localBatchSize
            entries.append(entry(epoch: epoch, step: position / g, rank: position % g / local, row: position % local, position: position))
        }
        return try await withKeys(entries)
    }

    /// The `_id` of the sample whose key field holds `key`; nil when none does at the plan's
    /// version.
    ///
    /// - Throws: `MBDataError` with `.invalidArgument` when the schema has no key field.
    public func id(key: String) async throws -> Int64? {
        guard let keyField else {
            throw MBDataError(.invalidArgument, "the dataset's schema has no key field: name the sample by --id", source: dataset.path)
        }
        let column = SampleTable.quoted(keyField)
        let maxID = plan.maxID
        return try await dataset.read { db in
            try Int64.fetchOne(db, sql: "SELECT _id FROM samples WHERE CAST(\(column) AS TEXT) = ? AND _id <= ? ORDER BY _id LIMIT 1", arguments: [key, maxID])
        }
    }

    private func entry(
        epoch: Int, step: Int, rank: Int, row: Int, position: Int, segment: Int? = nil, piece: PackedSegment? = nil, column: Int? = nil
    ) -> LineageEntry {
        let (_, index) = sample(epoch: epoch, position: position)
        return LineageEntry(
            dataset: name, id: plan.ids[index], epoch: epoch, step: step, rank: rank, row: row, position: position, segment: segment,
            offset: piece?.offset, length: piece?.length, column: column)
    }

    /// `entries` with their samples' keys, read in one transaction.
    private func withKeys(_ entries: [LineageEntry]) async throws -> [LineageEntry] {
        guard let keyField, !entries.isEmpty else { return entries }
        let column = SampleTable.quoted(keyField)
        let ids = Set(entries.map(\.id))
        let keys = try await dataset.read { db in
            let statement = try db.makeStatement(sql: "SELECT CAST(\(column) AS TEXT) FROM samples WHERE _id = ?")
            var keys: [Int64: String] = [:]
            for id in ids { keys[id] = try String.fetchOne(statement, arguments: [id]) }
            return keys
        }
        return entries.map { entry in
            var entry = entry
            entry.key = keys[entry.id]
            return entry
        }
    }
}
