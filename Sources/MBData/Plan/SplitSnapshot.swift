import GRDB

/// The ids of one split (or of every sample) at one dataset version: read once, then shared
/// by every plan over them, so a plan of new parameters costs no scan of the ids — a daemon
/// keeps one per split and version and a new consumer group's plan is O(1) in the dataset's
/// size.
package struct SplitSnapshot: Sendable {
    /// The split; nil for every sample.
    package let split: String?
    /// The dataset version the ids are pinned to.
    package let datasetVersion: Int
    /// The largest sample id at that version.
    package let maxID: Int64
    /// The split's ids at that version, ascending.
    package let ids: SampleIDs
    /// xxh64 of the schema and the ids so far: a plan's fingerprint finishes a copy of it with
    /// its version and parameters (``DatasetPlan/fingerprint``).
    let digest: XXH64

    init(split: String?, datasetVersion: Int, maxID: Int64, ids: SampleIDs, schema: Schema) {
        self.split = split
        self.datasetVersion = datasetVersion
        self.maxID = maxID
        self.ids = ids
        var digest = XXH64()
        digest.update(Array(schema.canonicalJSON().utf8))
        ids.forEachChunk { digest.update(UnsafeRawBufferPointer($0)) }
        self.digest = digest
    }
}

extension Dataset {
    /// The ids of `split` (nil: every sample) at `version` (nil: the current one).
    ///
    /// - Throws: `MBDataError` as ``plan(_:version:)`` does.
    package func snapshot(split: String?, version: Int?) async throws -> SplitSnapshot {
        let path = self.path
        return try await read { db in try Self.snapshot(db, split: split, version: version, path: path) }
    }

    /// ``snapshot(split:version:)`` inside a read the caller holds.
    static func snapshot(_ db: Database, split: String?, version: Int?, path: String) throws -> SplitSnapshot {
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
        // Ids come from the small split index, not the table: a scan of the table's rowids
        // would read every leaf page, i.e. the whole dataset. They stream into runs, never
        // into an array of every id.
        let ids: SampleIDs
        if let split {
            var builder = SampleIDs.Builder()
            let rows = try Int64.fetchCursor(
                db, sql: "SELECT _id FROM samples INDEXED BY samples_split WHERE _split = ? AND _id <= ? ORDER BY _id",
                arguments: [split, maxID])
            while let id = try rows.next() { builder.append(id) }
            ids = builder.finish()
        } else {
            // The index is ordered by split, then id: each split's ids ascend, so the runs
            // of all splits, sorted and joined, are the ids in order.
            var runs: [(start: Int64, length: Int)] = []
            let rows = try Int64.fetchCursor(db, sql: "SELECT _id FROM samples INDEXED BY samples_split WHERE _id <= ?", arguments: [maxID])
            while let id = try rows.next() {
                if let last = runs.last, last.start + Int64(last.length) == id {
                    runs[runs.count - 1].length += 1
                } else {
                    runs.append((id, 1))
                }
            }
            runs.sort { $0.start < $1.start }
            var builder = SampleIDs.Builder()
            for run in runs { builder.append(run: run.start, length: run.length) }
            ids = builder.finish()
        }
        guard !ids.isEmpty else {
            throw MBDataError(.invalidArgument, "split \(split ?? "(all)") has no samples at version \(pinned)", source: path)
        }
        return SplitSnapshot(split: split, datasetVersion: pinned, maxID: maxID, ids: ids, schema: schema)
    }
}
