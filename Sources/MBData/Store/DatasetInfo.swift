import Foundation
import GRDB

/// What `mbdata inspect` shows of a dataset.
public struct DatasetInfo: Sendable, Codable {
    public struct IngestRecord: Sendable, Codable {
        public var id: Int64
        public var source: String
        public var format: String
        public var status: String
        public var startedAt: String
        public var recordsRead: Int
        public var rowsAdded: Int
        public var rowsSkipped: Int
        public var rowsFailed: Int
        public var bytes: Int
        public var seconds: Double
        public var contentHash: String?
        public var options: String
        public var message: String?
    }

    public var path: String
    public var formatVersion: Int
    public var datasetVersion: Int
    public var schema: Schema?
    public var sampleCount: Int
    /// Samples per split, by split name.
    public var splits: [String: Int]
    /// Bytes of the database file plus its WAL.
    public var sizeOnDisk: Int
    /// The class names of an image-folder dataset, label order.
    public var classes: [String]?
    public var ingests: [IngestRecord]
}

extension Dataset {
    public func info() async throws -> DatasetInfo {
        let path = self.path
        let size = ["", "-wal", "-shm"].reduce(0) { total, suffix in
            total + ((try? FileManager.default.attributesOfItem(atPath: path + suffix)[.size] as? NSNumber)?.intValue ?? 0)
        }
        return try await read { db in
            let schema = try Self.storedSchema(db)
            var splits: [String: Int] = [:]
            if schema != nil {
                for row in try Row.fetchAll(db, sql: "SELECT _split, count(*) FROM samples GROUP BY _split") {
                    splits[row[0]] = row[1]
                }
            }
            let classes = try Self.meta(db, "classes").flatMap { try? JSONDecoder().decode([String].self, from: Data($0.utf8)) }
            let ingests = try Row.fetchAll(db, sql: "SELECT * FROM mbdata_ingest_log ORDER BY id").map { row in
                DatasetInfo.IngestRecord(
                    id: row["id"], source: row["source"], format: row["format"], status: row["status"],
                    startedAt: row["started_at"], recordsRead: row["records_read"], rowsAdded: row["rows_added"],
                    rowsSkipped: row["rows_skipped"], rowsFailed: row["rows_failed"], bytes: row["bytes"],
                    seconds: row["duration_s"], contentHash: row["content_hash"], options: row["options"], message: row["message"])
            }
            return DatasetInfo(
                path: path, formatVersion: Int(try Self.meta(db, "format_version") ?? "0") ?? 0,
                datasetVersion: Int(try Self.meta(db, "dataset_version") ?? "0") ?? 0, schema: schema,
                sampleCount: splits.values.reduce(0, +), splits: splits, sizeOnDisk: size, classes: classes, ingests: ingests)
        }
    }
}
