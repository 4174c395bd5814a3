import Foundation
import HTTPTypes
import Logging
import MBData
import MBDataWire
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The state store every daemon of a cluster shares (DESIGN decision 15): cursors, pins,
/// share-group leases and stream claims in one PostgreSQL database, in the schema `mbdata`
/// (``PostgresMigrations``).
///
/// The store owns its connection pool, a `PostgresClient`, and is a `Service`: its ``run()``
/// must run — in the daemon's `ServiceGroup`, listed before the server so that it shuts down
/// after the server's last write — for as long as the store is used; a call made while it
/// does not run waits until ``Configuration/operationTimeout`` and fails as unavailable.
/// The schema is migrated on the first call.
///
/// Every method is one transaction, and returns only after its `COMMIT`. A cursor's
/// read-modify-writes lock its row (`SELECT … FOR UPDATE`), so acks from several daemons
/// never overwrite each other; leases and stream claims expire on the database's clock
/// (`statement_timestamp()`), never a daemon's, so daemons whose clocks differ agree on who
/// holds what.
package final class PostgresStateStore: StateStore, Service {
    /// How the store talks to PostgreSQL.
    package struct Configuration: Sendable {
        /// The most one call may take, from asking the pool for a connection to `COMMIT`;
        /// past it the call fails as unavailable (the daemon answers 503). 5 seconds:
        /// longer than any healthy transaction of the store, shorter than a client's
        /// request timeout, so a database that is down is reported, not waited for.
        package var operationTimeout: Duration = .seconds(5)
        /// The most the schema migration may take, waiting for another daemon's migration
        /// included. 60 seconds: it runs once per daemon, its DDL on a busy server can take
        /// far longer than a healthy cursor transaction, and a daemon that gave up on it
        /// would answer every request 503.
        package var migrationTimeout: Duration = .seconds(60)
        /// The most connections one daemon opens. 16: a daemon's requests are short
        /// transactions, and a cluster of daemons must stay below the server's
        /// `max_connections` (100 by default).
        package var maximumConnections = 16

        /// The defaults.
        package init() {}
    }

    /// The URL without its password.
    package let location: String
    let client: PostgresClient
    private let configuration: Configuration
    let logger: Logger
    private let migrated = Mutex(false)

    /// A store of the database `url` names (`postgresql://…`, see ``PostgresURL``); nothing
    /// is connected before ``run()`` runs. Throws `.invalidArgument` for a malformed URL.
    package convenience init(url: String, configuration: Configuration = .init(), logger: Logger) throws {
        try self.init(url: PostgresURL(url), configuration: configuration, logger: logger)
    }

    /// A store of the database `url` names.
    package init(url: PostgresURL, configuration: Configuration = .init(), logger: Logger) {
        location = url.location
        self.configuration = configuration
        self.logger = logger
        var clientConfiguration = url.clientConfiguration
        clientConfiguration.options.maximumConnections = configuration.maximumConnections
        clientConfiguration.options.connectTimeout = configuration.operationTimeout
        client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
    }

    /// Runs the connection pool until the task is cancelled or a graceful shutdown begins.
    package func run() async throws {
        await client.run()
    }

    /// Brings the schema to the newest version (the first call of any method does it too);
    /// a daemon calls it at start to report an unreachable database at once.
    package func migrate() async throws {
        _ = try await transaction("the schema migrations", migrating: false, timeout: configuration.migrationTimeout) { connection, logger in
            try await PostgresMigrations.migrate(connection, logger: logger)
        }
        migrated.withLock { $0 = true }
    }

    package func cursor(_ id: String) async throws -> CursorState? {
        try await transaction("cursor \(id)") { connection, logger in
            try await Self.storedCursor(id, locking: false, connection, logger)
        }
    }

    package func createCursor(_ fresh: CursorState) async throws -> CursorState {
        let json = try Self.json(fresh)
        return try await transaction("cursor \(fresh.cursor)") { connection, logger in
            try await connection.query(
                "INSERT INTO mbdata.cursors (id, state) VALUES (\(fresh.cursor), \(json)::jsonb) ON CONFLICT (id) DO NOTHING", logger: logger)
            return try await Self.storedCursor(fresh.cursor, locking: false, connection, logger) ?? fresh
        }
    }

    package func updateCursor(_ id: String, _ change: @escaping @Sendable (inout CursorState) throws -> Bool) async throws -> CursorState {
        try await transaction("cursor \(id)") { connection, logger in
            guard var state = try await Self.storedCursor(id, locking: true, connection, logger) else { throw ServeError.unknownCursor(id) }
            if try change(&state) { try await Self.write(state, connection, logger) }
            return state
        }
    }

    package func replaceCursor(_ state: CursorState) async throws {
        let json = try Self.json(state)
        try await transaction("cursor \(state.cursor)") { connection, logger in
            try await connection.query(
                """
                INSERT INTO mbdata.cursors (id, state) VALUES (\(state.cursor), \(json)::jsonb)
                ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()
                """, logger: logger)
            try await connection.query("DELETE FROM mbdata.leases WHERE cursor = \(state.cursor)", logger: logger)
        }
    }

    package func pinnedVersion(key: String) async throws -> Int? {
        try await transaction("the pin of \(key)") { connection, logger in
            try await Self.pinnedVersion(key, connection, logger)
        }
    }

    package func pin(key: String, version: Int) async throws -> Int {
        try await transaction("the pin of \(key)") { connection, logger in
            try await connection.query(
                "INSERT INTO mbdata.pinned_plans (key, dataset_version) VALUES (\(key), \(version)) ON CONFLICT (key) DO NOTHING",
                logger: logger)
            return try await Self.pinnedVersion(key, connection, logger) ?? version
        }
    }

    package func lease(
        cursor: String, epoch: Int, seconds: Double,
        firstFree: @escaping @Sendable (CursorState, Set<Int>) -> Int?
    ) async throws -> (outcome: LeaseOutcome, expired: Int) {
        try await transaction("a lease of cursor \(cursor)") { connection, logger in
            // The cursor's row lock makes the leases of one cursor a critical section across daemons.
            guard let state = try await Self.storedCursor(cursor, locking: true, connection, logger) else {
                throw ServeError.unknownCursor(cursor)
            }
            var expired = 0
            for try await count in try await connection.query(
                """
                WITH ended AS (DELETE FROM mbdata.leases WHERE cursor = \(cursor) AND expires_at <= statement_timestamp() RETURNING 1)
                SELECT count(*)::bigint FROM ended
                """, logger: logger
            ).decode(Int.self) {
                expired = count
            }
            var held: [Int: Double] = [:]
            for try await (batch, remaining) in try await connection.query(
                """
                SELECT batch, EXTRACT(EPOCH FROM expires_at - statement_timestamp())::float8
                FROM mbdata.leases WHERE cursor = \(cursor) AND epoch = \(epoch)
                """, logger: logger
            ).decode((Int, Double).self) {
                held[batch] = remaining
            }
            guard let batch = firstFree(state, Set(held.keys)) else {
                guard let soonest = held.values.min() else { return (.complete, expired) }
                return (.wait(seconds: max(0.05, soonest)), expired)
            }
            var lease: Int64?
            for try await id in try await connection.query(
                """
                INSERT INTO mbdata.leases (cursor, epoch, batch, expires_at)
                VALUES (\(cursor), \(epoch), \(batch), statement_timestamp() + make_interval(secs => \(seconds)))
                RETURNING id
                """, logger: logger
            ).decode(Int64.self) {
                lease = id
            }
            guard let lease else { throw MBDataError(.storage, "the lease of batch \(batch) of cursor \(cursor) was not stored") }
            return (.leased(batch: batch, lease: UInt64(lease)), expired)
        }
    }

    package func ackLeases(cursor: String, leases: [UInt64]) async throws -> CursorState {
        try await transaction("acks of cursor \(cursor)") { connection, logger in
            try await Self.acknowledge(cursor: cursor, leases: leases, connection, logger).state
        }
    }

    /// Inside a transaction: locks the cursor, acks the batches `leases` hold and ends the
    /// leases (``ackLeases(cursor:leases:)``); returns the cursor as written and what each
    /// lease held. Throws `409 lease_expired`, having written nothing, when one is unknown,
    /// expired or another cursor's.
    static func acknowledge(
        cursor: String, leases: [UInt64], _ connection: PostgresConnection, _ logger: Logger
    ) async throws -> (state: CursorState, held: [(lease: UInt64, epoch: Int, batch: Int)]) {
        let named = Set(leases)
        let ids = named.map { Int64(clamping: $0) }
        guard var state = try await storedCursor(cursor, locking: true, connection, logger) else {
            throw ServeError.unknownCursor(cursor)
        }
        var held: [(lease: UInt64, epoch: Int, batch: Int)] = []
        for try await (id, epoch, batch) in try await connection.query(
            """
            SELECT id, epoch, batch FROM mbdata.leases
            WHERE cursor = \(cursor) AND id = ANY(\(ids)) AND expires_at > statement_timestamp()
            """, logger: logger
        ).decode((Int64, Int, Int).self) {
            held.append((UInt64(id), epoch, batch))
        }
        if let missing = named.subtracting(held.map(\.lease)).min() {
            throw ServeError.leaseExpired(missing, cursor: cursor)
        }
        for lease in held { _ = state.ack(epoch: lease.epoch, batches: [lease.batch]) }
        try await write(state, connection, logger)
        try await connection.query("DELETE FROM mbdata.leases WHERE id = ANY(\(ids))", logger: logger)
        return (state, held)
    }

    package func releaseLease(_ lease: UInt64) async throws {
        try await transaction("the release of lease \(lease)") { connection, logger in
            try await connection.query("DELETE FROM mbdata.leases WHERE id = \(Int64(clamping: lease))", logger: logger)
        }
    }

    package func claimStream(cursor: String, holder: String, seconds: Double) async throws -> Bool {
        try await transaction("the stream claim of cursor \(cursor)") { connection, logger in
            // One statement: the insert, or the takeover of a claim that is this holder's or
            // has expired; nothing comes back when another holder's claim stands.
            var claimed = false
            for try await _ in try await connection.query(
                """
                INSERT INTO mbdata.stream_claims AS claim (cursor, holder, expires_at)
                VALUES (\(cursor), \(holder), statement_timestamp() + make_interval(secs => \(seconds)))
                ON CONFLICT (cursor) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                WHERE claim.holder = EXCLUDED.holder OR claim.expires_at <= statement_timestamp()
                RETURNING claim.holder
                """, logger: logger
            ).decode(String.self) {
                claimed = true
            }
            return claimed
        }
    }

    package func releaseStream(cursor: String, holder: String) async throws {
        try await transaction("the stream claim of cursor \(cursor)") { connection, logger in
            try await connection.query("DELETE FROM mbdata.stream_claims WHERE cursor = \(cursor) AND holder = \(holder)", logger: logger)
        }
    }

    package func isUnavailable(_ error: any Error) -> Bool {
        guard let error = error as? MBDataError, error.code == .storage, let cause = error.cause else { return false }
        return PostgresFailure.isTransient(cause)
    }

    // MARK: - Transactions

    /// Runs `body` in one transaction, migrating the schema first when this store has not,
    /// within `timeout` (``Configuration/operationTimeout`` unless given). A failure of the database becomes a
    /// `.storage` error whose cause is the driver's error; an error `body` throws itself (a
    /// refusal) comes out as it was thrown, and both roll the transaction back.
    @discardableResult
    func transaction<T: Sendable>(
        _ what: String, migrating: Bool = true, timeout: Duration? = nil,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws -> T {
        if migrating, !migrated.withLock({ $0 }) { try await migrate() }
        let (client, logger, timeout) = (client, logger, timeout ?? configuration.operationTimeout)
        do {
            return try await PostgresFailure.withDeadline(timeout) {
                try await client.withTransaction(logger: logger) { connection in try await body(connection, logger) }
            }
        } catch {
            let unwrapped = PostgresFailure.unwrapped(error)
            guard PostgresFailure.isDatabaseError(unwrapped) else { throw unwrapped }
            throw MBDataError(
                .storage, "cannot write \(what) to the serve state database: \(PostgresFailure.describe(unwrapped))", source: location,
                cause: unwrapped)
        }
    }

    private static func json(_ state: CursorState) throws -> String {
        String(decoding: try WireJSON.encode(state), as: UTF8.self)
    }

    static func storedCursor(_ id: String, locking: Bool, _ connection: PostgresConnection, _ logger: Logger) async throws -> CursorState? {
        let query: PostgresQuery =
            locking
            ? "SELECT state::text FROM mbdata.cursors WHERE id = \(id) FOR UPDATE"
            : "SELECT state::text FROM mbdata.cursors WHERE id = \(id)"
        var found: CursorState?
        for try await json in try await connection.query(query, logger: logger).decode(String.self) {
            do {
                found = try WireJSON.decode(CursorState.self, from: Data(json.utf8))
            } catch {
                throw MBDataError(.corruptData, "the stored state of cursor \(id) is not a cursor state", cause: error)
            }
        }
        return found
    }

    private static func write(_ state: CursorState, _ connection: PostgresConnection, _ logger: Logger) async throws {
        let json = try json(state)
        try await connection.query(
            "UPDATE mbdata.cursors SET state = \(json)::jsonb, updated_at = now() WHERE id = \(state.cursor)", logger: logger)
    }

    private static func pinnedVersion(_ key: String, _ connection: PostgresConnection, _ logger: Logger) async throws -> Int? {
        var version: Int?
        for try await found in try await connection.query(
            "SELECT dataset_version FROM mbdata.pinned_plans WHERE key = \(key)", logger: logger
        ).decode(Int.self) {
            version = found
        }
        return version
    }
}
