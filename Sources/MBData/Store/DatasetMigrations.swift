import GRDB

/// The dataset file's own tables, versioned. The `samples` table is not here: its columns
/// come from the schema and it is created on the first ingest (`SampleTable`).
enum DatasetMigrations {
    /// The format this build writes; a file with a larger number is refused.
    static let formatVersion = 1

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: meta, ingest log, versions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE mbdata_meta (
                        key TEXT PRIMARY KEY NOT NULL,
                        value TEXT NOT NULL
                    );
                    CREATE TABLE mbdata_ingest_log (
                        id INTEGER PRIMARY KEY,
                        source TEXT NOT NULL,
                        format TEXT NOT NULL,
                        fingerprint TEXT,
                        options TEXT NOT NULL,
                        status TEXT NOT NULL,
                        started_at TEXT NOT NULL,
                        finished_at TEXT,
                        records_read INTEGER NOT NULL DEFAULT 0,
                        rows_added INTEGER NOT NULL DEFAULT 0,
                        rows_skipped INTEGER NOT NULL DEFAULT 0,
                        rows_failed INTEGER NOT NULL DEFAULT 0,
                        bytes INTEGER NOT NULL DEFAULT 0,
                        duration_s REAL NOT NULL DEFAULT 0,
                        content_hash TEXT,
                        resumed_from INTEGER,
                        message TEXT
                    );
                    CREATE INDEX mbdata_ingest_log_fingerprint ON mbdata_ingest_log(fingerprint);
                    CREATE TABLE mbdata_versions (
                        version INTEGER PRIMARY KEY,
                        max_id INTEGER NOT NULL,
                        rows_added INTEGER NOT NULL,
                        ingest_id INTEGER NOT NULL REFERENCES mbdata_ingest_log(id),
                        committed_at TEXT NOT NULL
                    );
                    """)
            try db.execute(
                sql: "INSERT INTO mbdata_meta(key, value) VALUES ('format_version', ?), ('dataset_version', '0'), ('created_at', ?)",
                arguments: [String(formatVersion), Timestamp.now()])
        }
        return migrator
    }
}
