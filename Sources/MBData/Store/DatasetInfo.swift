import Foundation
import GRDB

/// What `mbdata inspect` shows of a dataset.
public struct DatasetInfo: Sendable, Codable {
    /// One row of the ingest log (`mbdata_ingest_log`): one run over one source.
    public struct IngestRecord: Sendable, Codable {
        /// The log entry's id, in run order.
        public var id: Int64
        /// The source as it was named: a path, `-` for stdin, or `FIELD=path.npy` pairs.
        public var source: String
        /// The source format (``SourceFormat`` raw value).
        public var format: String
        /// `complete`, `failed`, `running` (still going, or killed), or `interrupted` (killed, and
        /// continued by a later run).
        public var status: String
        /// When the run started: ISO 8601 UTC with milliseconds.
        public var startedAt: String
        /// Source records read, bad ones included.
        public var recordsRead: Int
        /// Samples added to the dataset.
        public var rowsAdded: Int
        /// Records whose key was already in the dataset.
        public var rowsSkipped: Int
        /// Bad records passed over under ``IngestOptions/ErrorPolicy/skip``.
        public var rowsFailed: Int
        /// Source bytes read.
        public var bytes: Int
        /// Wall-clock duration of the run, in seconds.
        public var seconds: Double
        /// `xxh64:` and 16 hex digits of the bytes read, when the run finished reading the source.
        public var contentHash: String?
        /// The ingest options in force, as `key=value` pairs separated by spaces.
        public var options: String
        /// Why a failed run stopped.
        public var message: String?
    }

    /// The dataset file's path.
    public var path: String
    /// The version of the dataset file format (the tables mbdata keeps).
    public var formatVersion: Int
    /// The dataset version now (``Dataset/version()``).
    public var datasetVersion: Int
    /// The dataset's schema; nil before the first ingest.
    public var schema: Schema?
    /// Samples in every split together.
    public var sampleCount: Int
    /// Samples per split, by split name.
    public var splits: [String: Int]
    /// Bytes of the database file plus its WAL.
    public var sizeOnDisk: Int
    /// Whether this process cannot write the file (read-only storage, or no permission), so
    /// it is read as it is (``Dataset/isReadOnly``).
    public var readOnly: Bool
    /// The class names of an image-folder dataset, label order.
    public var classes: [String]?
    /// Every ingest run, oldest first.
    public var ingests: [IngestRecord]
}

extension Dataset {
    /// The dataset's schema, counts per split, size, version and ingest log: what
    /// `mbdata inspect` prints.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.storage` when the file cannot be read.
    public func info() async throws -> DatasetInfo {
        let (path, readOnly) = (self.path, isReadOnly)
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
                sampleCount: splits.values.reduce(0, +), splits: splits, sizeOnDisk: size, readOnly: readOnly, classes: classes,
                ingests: ingests)
        }
    }
}
