import GRDB

/// The dataset file's own tables, versioned. The `samples` table is not here: its columns
/// come from the schema and it is created on the first ingest (`SampleTable`); nor are the
/// `outputs_<name>` tables, whose columns come from each output's schema (`OutputTable`).
enum DatasetMigrations {
    /// The format this build writes; a file with a larger number is refused.
    static let formatVersion = 2

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
                sql: "INSERT INTO mbdata_meta(key, value) VALUES ('format_version', '1'), ('dataset_version', '0'), ('created_at', ?)",
                arguments: [Timestamp.now()])
        }
        // Inference outputs: the outputs, each job's pinned plan and the batches it committed
        // (a batch's row here commits in the transaction that writes its outputs).
        migrator.registerMigration("v2: outputs") { db in
            try db.execute(
                sql: """
                    CREATE TABLE mbdata_outputs (
                        name TEXT PRIMARY KEY NOT NULL,
                        schema TEXT NOT NULL,
                        created_at TEXT NOT NULL
                    );
                    CREATE TABLE mbdata_output_jobs (
                        id INTEGER PRIMARY KEY,
                        output TEXT NOT NULL,
                        plan_key TEXT NOT NULL,
                        plan TEXT NOT NULL,
                        fingerprint TEXT NOT NULL,
                        dataset_version INTEGER NOT NULL,
                        batches INTEGER NOT NULL,
                        created_at TEXT NOT NULL,
                        UNIQUE (output, plan_key)
                    );
                    CREATE TABLE mbdata_output_batches (
                        job INTEGER NOT NULL,
                        batch INTEGER NOT NULL,
                        rows INTEGER NOT NULL,
                        committed_at TEXT NOT NULL,
                        PRIMARY KEY (job, batch)
                    ) WITHOUT ROWID;
                    UPDATE mbdata_meta SET value = '2' WHERE key = 'format_version';
                    """)
        }
        return migrator
    }
}
