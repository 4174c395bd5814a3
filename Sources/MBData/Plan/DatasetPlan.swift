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
    public let ids: SampleIDs
    /// Identifies the dataset content and plan: schema, version, ids and parameters.
    public let fingerprint: String

    /// The parameters the plan was made with (``EpochPlan/parameters``).
    public var parameters: PlanParameters { plan.parameters }

    /// The plan of `parameters` over a split's ids; O(1) in the number of ids.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for invalid parameters.
    package init(_ parameters: PlanParameters, over snapshot: SplitSnapshot) throws {
        plan = try EpochPlan(parameters: parameters, sampleCount: snapshot.ids.count)
        datasetVersion = snapshot.datasetVersion
        maxID = snapshot.maxID
        ids = snapshot.ids
        var hash = snapshot.digest
        hash.update(Self.fingerprintSuffix(version: snapshot.datasetVersion, maxID: snapshot.maxID, parameters: parameters))
        fingerprint = hash.hexDigest
    }

    /// The fingerprint of a plan: xxh64 of the schema, the ascending ids, the version, the
    /// highest id and the parameters (`verify` recomputes it from a shard set's batches).
    static func fingerprint(schema: Schema, ids: [Int64], version: Int, maxID: Int64, parameters: PlanParameters) -> String {
        var hash = XXH64()
        hash.update(Array(schema.canonicalJSON().utf8))
        ids.withUnsafeBytes { hash.update($0) }
        hash.update(fingerprintSuffix(version: version, maxID: maxID, parameters: parameters))
        return hash.hexDigest
    }

    private static func fingerprintSuffix(version: Int, maxID: Int64, parameters: PlanParameters) -> [UInt8] {
        Array("\(version)|\(maxID)|\(parameters.key)".utf8)
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
        return try DatasetPlan(parameters, over: await snapshot(split: parameters.split, version: version))
    }

    /// ``plan(_:version:)`` inside a read the caller holds (validated parameters).
    static func plan(_ db: Database, _ parameters: PlanParameters, version: Int?, path: String) throws -> DatasetPlan {
        try DatasetPlan(parameters, over: snapshot(db, split: parameters.split, version: version, path: path))
    }
}
