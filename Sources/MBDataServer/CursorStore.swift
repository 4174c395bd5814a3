import Foundation
import GRDB
import MBData

/// The daemon's state database: cursors and the dataset version each plan is pinned to.
/// Every ack is written here before it is answered, so a restarted daemon resumes where
/// its consumers left off.
final class CursorStore: Sendable {
    private let queue: DatabaseQueue

    init(path: String) throws {
        var configuration = Configuration()
        // A daemon restarted while its predecessor still closes the file waits for it.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
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
            try migrator.migrate(queue)
        } catch {
            throw MBDataError(.storage, "cannot open the serve state database: \(error)", source: path)
        }
    }

    func loadCursors() throws -> [CursorState] {
        try queue.read { db in
            try String.fetchAll(db, sql: "SELECT state FROM cursors").compactMap {
                try? CursorState.decoder.decode(CursorState.self, from: Data($0.utf8))
            }
        }
    }

    func save(_ state: CursorState) async throws {
        let json = String(decoding: try CursorState.encoder.encode(state), as: UTF8.self)
        try await queue.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO cursors (id, state, updated_at) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                arguments: [state.cursor, json])
        }
    }

    func delete(cursor: String) async throws {
        try await queue.write { db in try db.execute(sql: "DELETE FROM cursors WHERE id = ?", arguments: [cursor]) }
    }

    func pinnedVersion(key: String) async throws -> Int? {
        try await queue.read { db in try Int.fetchOne(db, sql: "SELECT dataset_version FROM pinned_plans WHERE key = ?", arguments: [key]) }
    }

    func pin(key: String, version: Int) async throws {
        try await queue.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO pinned_plans (key, dataset_version) VALUES (?, ?)", arguments: [key, version])
        }
    }
}
