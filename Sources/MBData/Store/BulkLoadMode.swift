import GRDB
import GRDBSQLite

/// The journal an ingest writes with.
///
/// In WAL mode every page is written twice: to the WAL, then by the checkpoint into the
/// database. An ingest mostly appends new pages, and a rollback journal never copies pages
/// that lie past the file's old end, so while no other connection has the file open the
/// ingest switches to a rollback journal (`TRUNCATE`, `synchronous = FULL`: each
/// transaction is durable and a crash or kill rolls back only the open one) and returns
/// to WAL when it is done. On 1M CIFAR rows that took the NPY ingest from 15–17 s to
/// about 10 s (Benchmarks/README.md). When another connection holds the file (`serve`
/// reading beside an ingest) the switch is refused at once and the ingest stays in WAL,
/// so readers keep their snapshots.
enum BulkLoadMode {
    /// Tries the rollback journal; returns whether it is now in force.
    static func enter(_ db: Database) throws -> Bool {
        guard let connection = db.sqliteConnection else { return false }
        // Fail at once rather than wait out the busy timeout when another connection is open.
        sqlite3_busy_timeout(connection, 0)
        defer { sqlite3_busy_timeout(connection, 30_000) }
        guard (try? String.fetchOne(db, sql: "PRAGMA journal_mode = TRUNCATE")) == "truncate" else {
            return false
        }
        try db.execute(sql: "PRAGMA synchronous = FULL")
        return true
    }

    /// Back to WAL (waiting for any reader that opened meanwhile), or a checkpoint that
    /// leaves the WAL empty if the ingest ran in WAL mode.
    static func leave(_ db: Database, entered: Bool) {
        if entered {
            _ = try? String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            try? db.execute(sql: "PRAGMA synchronous = NORMAL")
        } else {
            try? db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }
}
