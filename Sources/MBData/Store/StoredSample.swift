import GRDB

/// A sample as read back from the store.
public struct StoredSample: Sendable, Hashable {
    /// The sample's `_id`: assigned in ingest order from 1, never reused.
    public var id: Int64
    /// The split the sample was ingested into (`train`, `val`, …).
    public var split: String
    /// Values in the schema's field order.
    public var values: [SampleValue]
}

extension Dataset {
    /// Samples in id order, optionally of one split; for inspection and tests, not for
    /// training loops (the prefetcher reads in batches). Empty before the first ingest.
    ///
    /// - Parameters:
    ///   - split: Only samples of this split; nil (default) for every split.
    ///   - limit: At most this many samples (default: all).
    /// - Throws: `MBDataError` with `MBDataError.Code.storage` when the file cannot be read,
    ///   `MBDataError.Code.corruptData` when the samples table does not match the schema.
    public func samples(split: String? = nil, limit: Int = Int.max) async throws -> [StoredSample] {
        try await read { db in
            guard let schema = try Self.storedSchema(db) else { return [] }
            let filter = split == nil ? "" : "WHERE _split = ?"
            var samples: [StoredSample] = []
            try SampleRowDecoder.forEachRow(
                db, sql: "SELECT * FROM samples \(filter) ORDER BY _id LIMIT ?",
                arguments: (split.map { [$0] } ?? []) + [Int64(clamping: limit)], fieldCount: schema.fields.count
            ) { id, split, values in
                samples.append(StoredSample(id: id, split: split, values: values))
            }
            return samples
        }
    }
}
