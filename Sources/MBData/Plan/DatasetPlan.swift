import GRDB

/// An epoch plan pinned to one dataset version: the ids of the plan's split as they were at
/// that version, so an ingest running beside a reader never changes an epoch in flight.
public struct DatasetPlan: Sendable, Hashable {
    /// The epochs' order and batches over the ids below.
    public let plan: EpochPlan
    /// The dataset version the plan is pinned to (``Dataset/version()``).
    public let datasetVersion: Int
    /// The largest sample id at that version; later samples are not in the plan.
    public let maxID: Int64
    /// Sample ids of the split at that version, ascending; the plan's indices point here.
    public let ids: [Int64]
    /// Identifies the dataset content and plan: schema, version, ids and parameters.
    public let fingerprint: String

    /// The parameters the plan was made with (``EpochPlan/parameters``).
    public var parameters: PlanParameters { plan.parameters }

    /// The fingerprint of a plan: xxh64 of the schema, the ascending ids, the version, the
    /// highest id and the parameters (`verify` recomputes it from a shard set's batches).
    static func fingerprint(schema: Schema, ids: [Int64], version: Int, maxID: Int64, parameters: PlanParameters) -> String {
        var hash = XXH64()
        hash.update(Array(schema.canonicalJSON().utf8))
        ids.withUnsafeBytes { hash.update($0) }
        hash.update(Array("\(version)|\(maxID)|\(parameters.key)".utf8))
        return hash.hexDigest
    }

    /// The sample ids of rank `rank`'s part of global batch `batch` of `epoch`; nil is padding.
    public func sampleIDs(epoch: Int, batch: Int, rank: Int = 0) -> [Int64?] {
        plan.indices(epoch: epoch, batch: batch, rank: rank).map { $0.map { ids[$0] } }
    }
}

extension Dataset {
    /// Pins a plan to the dataset's current version (or an earlier `version`): reads the
    /// ids of the plan's split as they were at that version and fingerprints them.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for invalid
    ///   parameters, a version that does not exist or a split without samples at it;
    ///   `MBDataError.Code.invalidDataset` when nothing was ingested yet;
    ///   `MBDataError.Code.storage` when the file cannot be read.
    public func plan(_ parameters: PlanParameters, version: Int? = nil) async throws -> DatasetPlan {
        try parameters.validate()
        let path = self.path
        return try await read { db in try Self.plan(db, parameters, version: version, path: path) }
    }

    /// ``plan(_:version:)`` inside a read the caller holds (validated parameters).
    static func plan(_ db: Database, _ parameters: PlanParameters, version: Int?, path: String) throws -> DatasetPlan {
        guard let schema = try Self.storedSchema(db) else {
            throw MBDataError(.invalidDataset, "the dataset is empty: nothing ingested yet", source: path)
        }
        let current = Int(try Self.meta(db, "dataset_version") ?? "0") ?? 0
        let pinned = version ?? current
        guard pinned >= 1, pinned <= current else {
            throw MBDataError(.invalidArgument, "dataset version \(pinned) does not exist (current: \(current))", source: path)
        }
        guard let maxID = try Int64.fetchOne(db, sql: "SELECT max_id FROM mbdata_versions WHERE version = ?", arguments: [pinned]) else {
            throw MBDataError(.invalidDataset, "the version log has no entry for version \(pinned)", source: path)
        }
        // Ids come from the small split index, not the table: a scan of the table's
        // rowids would read every leaf page, i.e. the whole dataset.
        var ids: [Int64]
        if let split = parameters.split {
            ids = try Int64.fetchAll(
                db, sql: "SELECT _id FROM samples INDEXED BY samples_split WHERE _split = ? AND _id <= ? ORDER BY _id",
                arguments: [split, maxID])
        } else {
            ids = try Int64.fetchAll(db, sql: "SELECT _id FROM samples INDEXED BY samples_split WHERE _id <= ?", arguments: [maxID])
            ids.sort()
        }
        guard !ids.isEmpty else {
            throw MBDataError(.invalidArgument, "split \(parameters.split ?? "(all)") has no samples at version \(pinned)", source: path)
        }
        let plan = try EpochPlan(parameters: parameters, sampleCount: ids.count)
        let fingerprint = DatasetPlan.fingerprint(schema: schema, ids: ids, version: pinned, maxID: maxID, parameters: parameters)
        return DatasetPlan(plan: plan, datasetVersion: pinned, maxID: maxID, ids: ids, fingerprint: fingerprint)
    }
}
