import GRDB

/// How much of one split an output covers.
public struct OutputCoverage: Sendable, Hashable {
    /// The split (`_split` of the samples).
    public let split: String
    /// Samples of the split that have an output row.
    public let written: Int
    /// Samples of the split at the current dataset version.
    public let expected: Int
}

extension Dataset {
    /// Rows written and samples expected for output `name`, per split (by name) at the
    /// current dataset version; a split the output has no row for shows 0 written.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when there is no such
    ///   output; `MBDataError.Code.storage` when the file cannot be read.
    public func outputCoverage(_ name: String) async throws -> [OutputCoverage] {
        let path = self.path
        return try await read { db in
            _ = try Self.outputSchema(db, name, path: path)
            guard try db.tableExists(SampleTable.name) else { return [] }
            let maxID = try Self.currentMaxID(db)
            // Both counts walk the small split index; the join probes the output table by _id.
            let expected = try Row.fetchAll(
                db, sql: "SELECT _split, count(*) FROM samples INDEXED BY samples_split WHERE _id <= ? GROUP BY _split ORDER BY _split",
                arguments: [maxID])
            let written = try Dictionary(
                uniqueKeysWithValues: Row.fetchAll(
                    db,
                    sql: """
                        SELECT s._split, count(*) FROM samples AS s INDEXED BY samples_split
                        CROSS JOIN \(OutputTable.quotedName(of: name)) AS o ON o._id = s._id
                        WHERE s._id <= ? GROUP BY s._split
                        """,
                    arguments: [maxID]
                ).map { ($0[0] as String, $0[1] as Int) })
            return expected.map { row in
                let split: String = row[0]
                return OutputCoverage(split: split, written: written[split] ?? 0, expected: row[1])
            }
        }
    }

    /// The highest sample id of the current version (0 before the first ingest).
    static func currentMaxID(_ db: Database) throws -> Int64 {
        let version = Int(try meta(db, "dataset_version") ?? "0") ?? 0
        return try Int64.fetchOne(db, sql: "SELECT max_id FROM mbdata_versions WHERE version = ?", arguments: [version]) ?? 0
    }
}
