import Foundation
import GRDB

/// The ingest's bookkeeping in the dataset: the ingest log (`mbdata_ingest_log`), the version
/// log (`mbdata_versions`), the dataset version and the metadata a source defines. Every
/// statement runs on the writer connection the ingest holds.
struct IngestLogStore {
    let db: Database

    /// The last logged run of the input named `fingerprint`.
    struct PreviousRun {
        var id: Int64
        var isComplete: Bool
        var recordsCommitted: Int
    }

    func lastRun(fingerprint: String) throws -> PreviousRun? {
        try Row.fetchOne(
            db, sql: "SELECT id, status, records_read FROM mbdata_ingest_log WHERE fingerprint = ? ORDER BY id DESC LIMIT 1",
            arguments: [fingerprint]
        ).map { row in
            PreviousRun(id: row["id"], isComplete: row["status"] == "complete", recordsCommitted: row["records_read"])
        }
    }

    /// Logs a new run as `running` (and the run it resumes as `interrupted`), recording the
    /// source's metadata in the same transaction; returns the new run's id.
    func start(
        source: any SampleSource, fingerprint: String?, options: IngestOptions, skipping skipRecords: Int, resuming resumedFrom: Int64?
    ) throws -> Int64 {
        try db.inTransaction {
            try recordMetadata(source.metadata, source: source.name)
            if let resumedFrom {
                try db.execute(sql: "UPDATE mbdata_ingest_log SET status = 'interrupted' WHERE id = ? AND status = 'running'", arguments: [resumedFrom])
            }
            try db.execute(
                sql: """
                    INSERT INTO mbdata_ingest_log(source, format, fingerprint, options, status, started_at, records_read, resumed_from)
                    VALUES (?, ?, ?, ?, 'running', ?, ?, ?)
                    """,
                arguments: [source.name, source.formatName, fingerprint, options.optionsDescription, Timestamp.now(), skipRecords, resumedFrom])
            return .commit
        }
        return db.lastInsertedRowID
    }

    /// The dataset version: the number of commits that added rows.
    func currentVersion() throws -> Int {
        Int(try Dataset.meta(db, "dataset_version") ?? "0") ?? 0
    }

    /// Writes the run's counters; inside the transaction that commits the rows they count.
    func recordProgress(of summary: IngestSummary, run: Int64, started: Date) throws {
        try db.execute(
            sql: """
                UPDATE mbdata_ingest_log SET records_read = ?, rows_added = ?, rows_skipped = ?, rows_failed = ?, bytes = ?,
                    duration_s = ? WHERE id = ?
                """,
            arguments: [
                summary.recordsRead, summary.rowsAdded, summary.rowsSkipped, summary.rowsFailed, summary.bytesRead,
                Date().timeIntervalSince(started), run,
            ])
    }

    /// Moves the dataset to `version`, which the rows of this transaction (`rowsAdded`, up to
    /// the largest `_id`) make; inside that transaction.
    func recordVersion(_ version: Int, rowsAdded: Int, run: Int64) throws {
        let maxID = try Int64.fetchOne(db, sql: "SELECT coalesce(max(_id), 0) FROM samples") ?? 0
        try Dataset.setMeta(db, "dataset_version", String(version))
        try db.execute(
            sql: "INSERT INTO mbdata_versions(version, max_id, rows_added, ingest_id, committed_at) VALUES (?, ?, ?, ?, ?)",
            arguments: [version, maxID, rowsAdded, run, Timestamp.now()])
    }

    /// Marks the run `status` (`failed`, or `interrupted` for a cancelled one, which a re-run resumes) with `message`.
    func recordEnd(of run: Int64, status: String, message: String, started: Date) throws {
        try db.execute(
            sql: "UPDATE mbdata_ingest_log SET status = ?, finished_at = ?, duration_s = ?, message = ? WHERE id = ?",
            arguments: [status, Timestamp.now(), Date().timeIntervalSince(started), message, run])
    }

    /// Marks a run that found no records as failed.
    func recordEmpty(_ run: Int64) throws {
        try db.execute(sql: "UPDATE mbdata_ingest_log SET status = 'failed', message = 'no records' WHERE id = ?", arguments: [run])
    }

    /// Marks the run complete with the totals of `summary`.
    func recordCompletion(of run: Int64, _ summary: IngestSummary) throws {
        try db.execute(
            sql: """
                UPDATE mbdata_ingest_log SET status = 'complete', finished_at = ?, duration_s = ?, content_hash = ?, bytes = ?,
                    message = ? WHERE id = ?
                """,
            arguments: [
                Timestamp.now(), summary.seconds, summary.contentHash, summary.bytesRead,
                summary.notes.isEmpty ? nil : summary.notes.joined(separator: "; "), run,
            ])
    }

    /// Records dataset metadata a source defines; a different value already recorded is an error.
    private func recordMetadata(_ metadata: [String: String], source: String) throws {
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            if let existing = try Dataset.meta(db, key) {
                guard existing == value else {
                    throw MBDataError(.schemaMismatch, "the source's \(key) \(value) differ from the dataset's \(existing)", source: source)
                }
            } else {
                try Dataset.setMeta(db, key, value)
            }
        }
    }
}
