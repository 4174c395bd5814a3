import Foundation
import GRDB
import MBData
import MBDataWire

/// The daemon's state database: cursors and the dataset version each plan is pinned to.
/// Every change is written here before the daemon believes it (and long before it answers),
/// so a restarted daemon resumes where its consumers left off.
final class CursorStore: Sendable {
    private let queue: DatabaseQueue
    let path: String

    /// `readOnly` opens an existing database that SQLite may only read — as a daemon finds
    /// a state file on a file system remounted read-only (the fault-injection tests use it).
    init(path: String, readOnly: Bool = false) throws {
        self.path = path
        var configuration = Configuration()
        configuration.readonly = readOnly
        // A daemon restarted while its predecessor still closes the file waits for it.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            guard !readOnly else { return }
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in
                try db.execute(
                    sql: """
                        CREATE TABLE cursors (id TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL);
                        CREATE TABLE pinned_plans (key TEXT PRIMARY KEY, dataset_version INTEGER NOT NULL);
                        """)
            }
            if !readOnly { try migrator.migrate(queue) }
        } catch {
            throw MBDataError.wrapping(error, .storage, "cannot open the serve state database", source: path)
        }
    }

    func loadCursors() throws -> [CursorState] {
        try queue.read { db in
            try String.fetchAll(db, sql: "SELECT state FROM cursors").compactMap {
                try? WireJSON.decode(CursorState.self, from: Data($0.utf8))
            }
        }
    }

    func save(_ state: CursorState) async throws {
        let json = String(decoding: try WireJSON.encode(state), as: UTF8.self)
        try await writing("cursor \(state.cursor)") { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO cursors (id, state, updated_at) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                arguments: [state.cursor, json])
        }
    }

    func pinnedVersion(key: String) async throws -> Int? {
        try await queue.read { db in try Int.fetchOne(db, sql: "SELECT dataset_version FROM pinned_plans WHERE key = ?", arguments: [key]) }
    }

    /// Pins `key` to `version` unless it is pinned already; returns the version it is pinned to.
    func pin(key: String, version: Int) async throws -> Int {
        try await writing("the pin of \(key)") { db in
            try db.execute(sql: "INSERT OR IGNORE INTO pinned_plans (key, dataset_version) VALUES (?, ?)", arguments: [key, version])
            return try Int.fetchOne(db, sql: "SELECT dataset_version FROM pinned_plans WHERE key = ?", arguments: [key]) ?? version
        }
    }

    /// One write transaction; a failure becomes a `.storage` error that keeps the
    /// `DatabaseError` as its cause (the daemon answers it 503 `state_unavailable`).
    private func writing<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await queue.write(body)
        } catch let error as DatabaseError {
            throw MBDataError(.storage, "cannot write \(what) to the serve state database: \(error.resultCode)", source: path, cause: error)
        }
    }

    /// Whether `error` is a state-database write that failed and changed nothing: the
    /// disk is full or read-only, or the file cannot be written or locked. A retry may succeed.
    static func isUnavailable(_ error: MBDataError) -> Bool {
        guard error.code == .storage, let cause = error.cause as? DatabaseError else { return false }
        return [.SQLITE_FULL, .SQLITE_READONLY, .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_PERM]
            .contains(cause.resultCode)
    }
}
