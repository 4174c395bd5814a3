import Foundation
import GRDB
import Logging
import MBData
import MBDataTestSupport
import MBDataWire
import Testing

@testable import MBDataServer

/// The embedded state store against the ``StateStore`` contract, `--state` parsing and the
/// store factory.
@Suite struct SQLiteStateStoreTests {
    static let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    /// A state file written by an earlier daemon (the same v1 migration, its cursor row)
    /// opens with its cursor and pin, and takes new writes.
    @Test func aStateFileOfAnEarlierDaemonKeepsItsCursorsAndPins() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("state.sqlite")
        var saved = CursorTests.state(batches: 10, mode: .partition)
        saved.epochs = [.init(epoch: 0, lowWatermark: 4, finishedAbove: [6])]
        // The file as earlier daemons left it: GRDB's record of the v1 migration and its tables.
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY); INSERT INTO grdb_migrations VALUES ('v1');
                    CREATE TABLE cursors (id TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL);
                    CREATE TABLE pinned_plans (key TEXT PRIMARY KEY, dataset_version INTEGER NOT NULL);
                    """)
        }
        try await queue.write { [saved] db in
            try db.execute(
                sql: "INSERT INTO cursors (id, state, updated_at) VALUES (?, ?, '2026-01-01T00:00:00Z')",
                arguments: [saved.cursor, String(decoding: try WireJSON.encode(saved), as: UTF8.self)])
            try db.execute(sql: "INSERT INTO pinned_plans (key, dataset_version) VALUES ('d|g|k', 3)")
        }
        try queue.close()

        let store = try SQLiteStateStore(path: path)
        #expect(try await store.cursor(saved.cursor) == saved)
        #expect(try await store.pinnedVersion(key: "d|g|k") == 3)
        #expect(try await store.pin(key: "d|g|k", version: 5) == 3)
        let acked = try await store.updateCursor(saved.cursor) { $0.ack(epoch: 0, batches: [4, 5]) > 0 }
        #expect(acked.progress(epoch: 0).lowWatermark == 7)
        #expect(try await SQLiteStateStore(path: path).cursor(saved.cursor) == acked)
    }

    @Test func createCursorKeepsTheStoredCursorAndUpdateCursorWritesOnlyWhatItsChangeAccepts() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.path("state.sqlite"))
        let fresh = CursorTests.state(batches: 10, mode: .partition)
        #expect(try await store.cursor(fresh.cursor) == nil)
        #expect(try await store.createCursor(fresh) == fresh)
        _ = try await store.updateCursor(fresh.cursor) { $0.ack(epoch: 0, batches: [0]) > 0 }
        #expect(try await store.createCursor(fresh).progress(epoch: 0).lowWatermark == 1)

        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await store.updateCursor(fresh.cursor) { state in
                state.epochs = []
                throw Refused()
            }
        }
        let unchanged = try await store.updateCursor(fresh.cursor) { state in
            state.epochs = []
            return false
        }
        #expect(unchanged.progress(epoch: 0).lowWatermark == 1)
        #expect(try await store.cursor(fresh.cursor)?.progress(epoch: 0).lowWatermark == 1)
        let unknown = await #expect(throws: ServeError.self) { try await store.updateCursor("c-unknown") { _ in true } }
        #expect(unknown?.code == "unknown_cursor")
    }

    @Test func replacingACursorEndsItsLeases() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.path("state.sqlite"))
        let cursor = try await store.createCursor(CursorTests.state(batches: 2))
        let first = try await store.lease(cursor: cursor.cursor, epoch: 0, seconds: 30) { $0.firstUnacked(epoch: 0, skipping: $1) }
        guard case .leased(0, let lease) = first.outcome else { Issue.record("no lease"); return }
        try await store.replaceCursor(cursor)
        await #expect(throws: ServeError.self) { try await store.ackLeases(cursor: cursor.cursor, leases: [lease]) }
        let again = try await store.lease(cursor: cursor.cursor, epoch: 0, seconds: 30) { $0.firstUnacked(epoch: 0, skipping: $1) }
        guard case .leased(0, _) = again.outcome else { Issue.record("batch 0 was not offered again"); return }
    }

    @Test func aReleasedLeaseGivesItsBatchBackAndExpiredOnesAreCounted() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualClock()
        let store = try SQLiteStateStore(path: directory.path("state.sqlite"), clock: clock.serveClock)
        let cursor = try await store.createCursor(CursorTests.state(batches: 3)).cursor
        let pick: @Sendable (CursorState, Set<Int>) -> Int? = { $0.firstUnacked(epoch: 0, skipping: $1) }
        guard case .leased(0, let released) = try await store.lease(cursor: cursor, epoch: 0, seconds: 5, firstFree: pick).outcome,
            case .leased(1, _) = try await store.lease(cursor: cursor, epoch: 0, seconds: 5, firstFree: pick).outcome
        else { Issue.record("no leases"); return }
        try await store.releaseLease(released)
        guard case .leased(0, _) = try await store.lease(cursor: cursor, epoch: 0, seconds: 5, firstFree: pick).outcome else {
            Issue.record("the released batch was not offered again")
            return
        }
        clock.advance(by: .seconds(5))
        let afterExpiry = try await store.lease(cursor: cursor, epoch: 0, seconds: 5, firstFree: pick)
        #expect(afterExpiry.expired == 2)
        #expect(afterExpiry.outcome == .leased(batch: 0, lease: released + 3))
    }

    @Test func aStreamClaimIsExclusiveUntilReleasedOrLapsed() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualClock()
        let store = try SQLiteStateStore(path: directory.path("state.sqlite"), clock: clock.serveClock)
        #expect(try await store.claimStream(cursor: "c-1", holder: "a", seconds: 30))
        #expect(try await !store.claimStream(cursor: "c-1", holder: "b", seconds: 30))
        #expect(try await store.claimStream(cursor: "c-2", holder: "b", seconds: 30))
        clock.advance(by: .seconds(20))
        #expect(try await store.claimStream(cursor: "c-1", holder: "a", seconds: 30))
        clock.advance(by: .seconds(20))
        #expect(try await !store.claimStream(cursor: "c-1", holder: "b", seconds: 30))
        try await store.releaseStream(cursor: "c-1", holder: "b")
        #expect(try await !store.claimStream(cursor: "c-1", holder: "b", seconds: 30))
        try await store.releaseStream(cursor: "c-1", holder: "a")
        #expect(try await store.claimStream(cursor: "c-1", holder: "b", seconds: 30))
        clock.advance(by: .seconds(30))
        #expect(try await store.claimStream(cursor: "c-1", holder: "a", seconds: 30))
    }

    @Test func theStateOptionNamesAFileOrAPostgreSQLURL() throws {
        #expect(try StateLocation(parsing: "/var/lib/mbdata/state.sqlite") == .sqlite(path: "/var/lib/mbdata/state.sqlite"))
        #expect(try StateLocation(parsing: "state.sqlite") == .sqlite(path: "state.sqlite"))
        let cluster = try StateLocation(parsing: "postgresql://mbdata:secret@db:5433/mbdata")
        guard case .postgres(let url) = cluster else { Issue.record("not a PostgreSQL location"); return }
        #expect(url.host == "db" && url.port == 5433 && url.user == "mbdata" && url.path == "/mbdata")
        #expect(!cluster.description.contains("secret"))
        #expect(cluster.description.contains("db:5433/mbdata"))
        #expect(try StateLocation(parsing: "postgres://db/mbdata").description == "postgres://db/mbdata")
        for text in ["", "mysql://db/x", "postgresql:///nohost", "https://db/x"] {
            let error = #expect(throws: MBDataError.self) { try StateLocation(parsing: text) }
            #expect(error?.code == .invalidArgument)
        }
    }

    @Test func aPostgreSQLStateOpensTheSharedStoreWithoutConnectingYet() async throws {
        let store = try await makeStateStore(
            .postgres(url: URL(string: "postgresql://mbdata:secret@db/mbdata")!), clock: .continuous, logger: Self.logger)
        #expect(store is PostgresStateStore)
        #expect(store.location == "postgresql://mbdata@db:5432/mbdata")
    }
}
