import Foundation
import GRDB
import HTTPTypes
import MBData
import MBDataWire
import Synchronization

/// The embedded state store of one daemon: cursors and pins in a SQLite file, leases and
/// stream claims in memory on the daemon's clock, so a restarted daemon offers the batches
/// of its leases again.
///
/// The file keeps the format and migrations of every earlier version: existing state files
/// keep working. This store is the file's only writer, so it keeps the committed cursors in
/// memory too — updated right after each commit, inside the database queue, which runs
/// one access at a time: a read never sees a cursor the file does not hold.
package final class SQLiteStateStore: StateStore {
    /// What the store holds in memory, changed under one lock: a lease is picked and an ack
    /// ends its lease against the same cursor state.
    private struct Memory {
        var cursors: [String: CursorState] = [:]
        var leases = LeaseTable()
        var streams: [String: (holder: String, expires: ContinuousClock.Instant)] = [:]
    }

    private let queue: DatabaseQueue
    private let clock: ServeClock
    private let memory: Mutex<Memory>
    /// The state file.
    package let path: String

    /// Opens the state file, creating and migrating it when writable, and loads its
    /// cursors; blocks.
    ///
    /// - Parameters:
    ///   - path: The SQLite file; created when missing.
    ///   - readOnly: Opens an existing file that SQLite may only read — as a daemon finds a
    ///     state file on a file system remounted read-only (the fault-injection tests use it).
    ///   - clock: The clock leases and stream claims expire by.
    /// - Throws: `MBDataError` `.storage` when the file cannot be opened or migrated.
    package init(path: String, readOnly: Bool = false, clock: ServeClock = .continuous) throws {
        self.path = path
        self.clock = clock
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
            let stored = try queue.read { db in
                // A row that does not decode is left out: its cursor starts afresh.
                try String.fetchAll(db, sql: "SELECT state FROM cursors").compactMap {
                    try? WireJSON.decode(CursorState.self, from: Data($0.utf8))
                }
            }
            memory = Mutex(Memory(cursors: Dictionary(stored.map { ($0.cursor, $0) }, uniquingKeysWith: { _, last in last })))
        } catch {
            throw MBDataError.wrapping(error, .storage, "cannot open the serve state database", source: path)
        }
    }

    package var location: String { path }

    package func cursor(_ id: String) async throws -> CursorState? {
        memory.withLock { $0.cursors[id] }
    }

    package func createCursor(_ fresh: CursorState) async throws -> CursorState {
        if let known = try await cursor(fresh.cursor) { return known }
        return try await writing("cursor \(fresh.cursor)") { db in
            if let known = self.memory.withLock({ $0.cursors[fresh.cursor] }) { return known }
            try Self.save(fresh, db)
            return fresh
        } committed: { stored, memory in
            memory.cursors[stored.cursor] = stored
        }
    }

    package func updateCursor(_ id: String, _ change: @escaping @Sendable (inout CursorState) throws -> Bool) async throws -> CursorState {
        try await writing("cursor \(id)") { db in
            guard let stored = self.memory.withLock({ $0.cursors[id] }) else { throw ServeError.unknownCursor(id) }
            var state = stored
            guard try change(&state) else { return stored }
            try Self.save(state, db)
            return state
        } committed: { state, memory in
            memory.cursors[id] = state
        }
    }

    package func replaceCursor(_ state: CursorState) async throws {
        try await writing("cursor \(state.cursor)") { db in
            try Self.save(state, db)
        } committed: { _, memory in
            memory.cursors[state.cursor] = state
            memory.leases.removeAll(cursor: state.cursor)
        }
    }

    package func pinnedVersion(key: String) async throws -> Int? {
        try await queue.read { db in try Int.fetchOne(db, sql: "SELECT dataset_version FROM pinned_plans WHERE key = ?", arguments: [key]) }
    }

    package func pin(key: String, version: Int) async throws -> Int {
        try await writing("the pin of \(key)") { db in
            try db.execute(sql: "INSERT OR IGNORE INTO pinned_plans (key, dataset_version) VALUES (?, ?)", arguments: [key, version])
            return try Int.fetchOne(db, sql: "SELECT dataset_version FROM pinned_plans WHERE key = ?", arguments: [key]) ?? version
        }
    }

    package func lease(
        cursor: String, epoch: Int, seconds: Double,
        firstFree: @escaping @Sendable (CursorState, Set<Int>) -> Int?
    ) async throws -> (outcome: LeaseOutcome, expired: Int) {
        let now = clock.now()
        return try memory.withLock { memory in
            guard let state = memory.cursors[cursor] else { throw ServeError.unknownCursor(cursor) }
            let expired = memory.leases.expire(cursor: cursor, now: now).count
            let outcome = memory.leases.lease(cursor: cursor, epoch: epoch, seconds: seconds, now: now) { firstFree(state, $0) }
            return (outcome, expired)
        }
    }

    package func ackLeases(cursor: String, leases: [UInt64]) async throws -> CursorState {
        let clock = self.clock
        let acked = try await writing("cursor \(cursor)") { db in
            let (stored, held) = try self.memory.withLock { memory in
                guard let state = memory.cursors[cursor] else { throw ServeError.unknownCursor(cursor) }
                let now = clock.now()
                var held: [UInt64: LeaseTable.Lease] = [:]
                for lease in leases where held[lease] == nil {
                    guard let found = memory.leases.held(lease, by: cursor, now: now) else {
                        throw ServeError(
                            .conflict, "lease_expired", "lease \(lease) of cursor \(cursor) expired or is unknown; its batch goes to another consumer")
                    }
                    held[lease] = found
                }
                return (state, held)
            }
            var state = stored
            for lease in held.values { _ = state.ack(epoch: lease.epoch, batches: [lease.batch]) }
            try Self.save(state, db)
            return (state, Array(held.keys))
        } committed: { acked, memory in
            memory.cursors[cursor] = acked.0
            for lease in acked.1 { memory.leases.remove(lease) }
        }
        return acked.0
    }

    package func releaseLease(_ lease: UInt64) async throws {
        memory.withLock { $0.leases.remove(lease) }
    }

    package func claimStream(cursor: String, holder: String, seconds: Double) async throws -> Bool {
        let now = clock.now()
        return memory.withLock { memory in
            if let claim = memory.streams[cursor], claim.holder != holder, claim.expires > now { return false }
            memory.streams[cursor] = (holder, now + .milliseconds(Int64(seconds * 1000)))
            return true
        }
    }

    package func releaseStream(cursor: String, holder: String) async throws {
        memory.withLock { memory in
            if memory.streams[cursor]?.holder == holder { memory.streams[cursor] = nil }
        }
    }

    /// A state-database write that failed and changed nothing: the disk is full or
    /// read-only, or the file cannot be written or locked.
    package func isUnavailable(_ error: any Error) -> Bool {
        guard let error = error as? MBDataError, error.code == .storage, let cause = error.cause as? DatabaseError else { return false }
        return [.SQLITE_FULL, .SQLITE_READONLY, .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_PERM]
            .contains(cause.resultCode)
    }

    private static func save(_ state: CursorState, _ db: Database) throws {
        let json = String(decoding: try WireJSON.encode(state), as: UTF8.self)
        try db.execute(
            sql: "INSERT OR REPLACE INTO cursors (id, state, updated_at) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            arguments: [state.cursor, json])
    }

    /// One write transaction; `committed` applies its result to memory once it committed,
    /// before the queue runs anything else. A failure becomes a `.storage` error that keeps
    /// the `DatabaseError` as its cause (the daemon answers it 503 `state_unavailable`);
    /// a ``ServeError`` thrown by `body` passes unchanged. Either way nothing changed.
    private func writing<T: Sendable>(
        _ what: String, _ body: @escaping @Sendable (Database) throws -> T,
        committed: @escaping @Sendable (T, inout Memory) -> Void = { _, _ in }
    ) async throws -> T {
        do {
            return try await queue.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction {
                    result = try body(db)
                    return .commit
                }
                guard let result else { preconditionFailure("a committed transaction without its result") }
                self.memory.withLock { committed(result, &$0) }
                return result
            }
        } catch let error as DatabaseError {
            throw MBDataError(.storage, "cannot write \(what) to the serve state database: \(error.resultCode)", source: path, cause: error)
        }
    }
}
