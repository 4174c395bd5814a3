import Foundation
import Logging
import MBData
import MBDataTestSupport
import MBDataWire
import Testing

@testable import MBDataServer

/// The shared state store against a real PostgreSQL (DESIGN decision 15): several store
/// instances play several daemons of one cluster on one database, and every guarantee the
/// protocol makes across daemons — no lost ack, exclusive leases, expiry on the database's
/// clock, one stream per cursor — is checked between them.
@Suite(.enabled(if: PostgresServer.isAvailable, Comment(rawValue: PostgresServer.unavailableReason)))
struct PostgresStateStoreTests {
    static let quiet = Logger(label: "postgres-test") { _ in SwiftLogNoOpLogHandler() }

    /// Runs `body` with `count` stores of `url` ("daemons"), each with its pool running.
    static func withStores<T: Sendable>(
        _ count: Int, url: String, timeout: Duration = .seconds(30), _ body: @escaping @Sendable ([PostgresStateStore]) async throws -> T
    ) async throws -> T {
        var configuration = PostgresStateStore.Configuration()
        configuration.operationTimeout = timeout
        let stores = try (0..<count).map { _ in try PostgresStateStore(url: url, configuration: configuration, logger: quiet) }
        return try await withThrowingTaskGroup(of: T?.self) { group in
            for store in stores {
                group.addTask {
                    try await store.run()
                    return nil
                }
            }
            defer { group.cancelAll() }
            return try await body(stores)
        }
    }

    /// A database of its own (its name comes to `body`) on a server of its own, with `count` stores.
    static func withDatabase<T: Sendable>(
        stores count: Int, _ body: @escaping @Sendable (PostgresServer, String, [PostgresStateStore]) async throws -> T
    ) async throws -> T {
        try await PostgresServer.with { server in
            let database = try await server.createDatabase()
            return try await withStores(count, url: server.url(database: database)) { try await body(server, database, $0) }
        }
    }

    static func acked(_ state: CursorState, epoch: Int = 0) -> Set<Int> {
        let progress = state.progress(epoch: epoch)
        return Set(0..<progress.lowWatermark).union(progress.finishedAbove)
    }

    @Test func daemonsStartingTogetherMigrateOnce() async throws {
        try await Self.withDatabase(stores: 4) { server, database, stores in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for store in stores { group.addTask { try await store.migrate() } }
                try await group.waitForAll()
            }
            let versions = try await server.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM mbdata.schema_migrations", database: database)
            #expect(versions.trimmingCharacters(in: .whitespacesAndNewlines) == (1...PostgresMigrations.versions.count).map(String.init).joined(separator: ","))
        }
    }

    @Test func acksFromTwoDaemonsAtOnceAreNeverLost() async throws {
        try await Self.withDatabase(stores: 2) { _, _, stores in
            let fresh = CursorTests.state(batches: 60, mode: .partition)
            #expect(try await stores[0].createCursor(fresh) == fresh)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for batch in 0..<60 {
                    group.addTask {
                        _ = try await stores[batch % 2].updateCursor(fresh.cursor) { $0.ack(epoch: 0, batches: [batch]) > 0 }
                    }
                }
                try await group.waitForAll()
            }
            let stored = try #require(try await stores[1].cursor(fresh.cursor))
            #expect(stored.progress(epoch: 0) == .init(epoch: 0, lowWatermark: 60, finishedAbove: []))
        }
    }

    @Test func aCursorIsCreatedOnceAndAChangeThatThrowsWritesNothing() async throws {
        try await Self.withDatabase(stores: 2) { _, _, stores in
            let fresh = CursorTests.state(batches: 10, mode: .partition)
            var other = fresh
            other.datasetVersion = 2
            #expect(try await stores[0].createCursor(fresh) == fresh)
            #expect(try await stores[1].createCursor(other) == fresh)
            #expect(try await stores[1].cursor("c-unknown") == nil)
            await #expect(throws: ServeError.self) { try await stores[0].updateCursor("c-unknown") { _ in true } }

            struct Refused: Error {}
            await #expect(throws: Refused.self) {
                try await stores[0].updateCursor(fresh.cursor) {
                    _ = $0.ack(epoch: 0, batches: [0, 1])
                    throw Refused()
                }
            }
            #expect(try await stores[1].cursor(fresh.cursor) == fresh)

            var restored = fresh
            restored.epochs = [.init(epoch: 0, lowWatermark: 7, finishedAbove: [8])]
            try await stores[1].replaceCursor(restored)
            #expect(try await stores[0].cursor(fresh.cursor) == restored)
        }
    }

    @Test func sixConsumersOnTwoDaemonsLeaseEveryBatchExactlyOnce() async throws {
        try await Self.withDatabase(stores: 2) { _, _, stores in
            let group = CursorTests.state(batches: 40, mode: .share)
            _ = try await stores[0].createCursor(group)
            // Each consumer returns the batches it was leased.
            let batches = try await withThrowingTaskGroup(of: [Int].self) { consumers in
                for consumer in 0..<6 {
                    let store = stores[consumer % 2]
                    consumers.addTask {
                        var leased: [Int] = []
                        while true {
                            let (outcome, _) = try await store.lease(cursor: group.cursor, epoch: 0, seconds: 60) { state, held in
                                state.firstUnacked(epoch: 0, skipping: held)
                            }
                            switch outcome {
                            case .leased(let batch, let lease):
                                leased.append(batch)
                                _ = try await store.ackLeases(cursor: group.cursor, leases: [lease])
                            case .complete:
                                return leased
                            case .wait:
                                // The last batches are leased to the other consumers: ask again, as a client would.
                                try await Task.sleep(for: .milliseconds(20))
                            }
                        }
                    }
                }
                return try await consumers.reduce(into: []) { $0 += $1 }
            }
            #expect(batches.count == 40)
            #expect(Set(batches) == Set(0..<40))
            let stored = try #require(try await stores[1].cursor(group.cursor))
            #expect(Self.acked(stored) == Set(0..<40))
        }
    }

    @Test func leasesExpireOnTheDatabaseClock() async throws {
        try await Self.withDatabase(stores: 2) { server, database, stores in
            let group = CursorTests.state(batches: 3, mode: .share)
            _ = try await stores[0].createCursor(group)
            let firstFree: @Sendable (CursorState, Set<Int>) -> Int? = { $0.firstUnacked(epoch: 0, skipping: $1) }

            let (short, _) = try await stores[0].lease(cursor: group.cursor, epoch: 0, seconds: 60, firstFree: firstFree)
            guard case .leased(batch: 0, let shortLease) = short else { Issue.record("expected batch 0, got \(short)"); return }
            let (held, expiredBefore) = try await stores[1].lease(cursor: group.cursor, epoch: 0, seconds: 60, firstFree: firstFree)
            guard case .leased(batch: 1, let heldLease) = held else { Issue.record("expected batch 1, got \(held)"); return }
            #expect(expiredBefore == 0)

            // The database's clock decides: the first lease is made to end 0.2 s from the
            // database's now, and time passes on the database, whatever the daemons' clocks say.
            try await server.psql(
                "UPDATE mbdata.leases SET expires_at = statement_timestamp() + interval '0.2 seconds' WHERE id = \(shortLease)", database: database)
            try await server.psql("SELECT pg_sleep(0.3)", database: database)
            let (again, expired) = try await stores[1].lease(cursor: group.cursor, epoch: 0, seconds: 60, firstFree: firstFree)
            guard case .leased(batch: 0, let againLease) = again else { Issue.record("expected batch 0 again, got \(again)"); return }
            #expect(expired == 1)

            let refusal = await #expect(throws: ServeError.self) { try await stores[0].ackLeases(cursor: group.cursor, leases: [shortLease]) }
            #expect(refusal?.code == "lease_expired")
            // All or nothing: a valid lease named beside an expired one is not acked either.
            await #expect(throws: ServeError.self) { try await stores[0].ackLeases(cursor: group.cursor, leases: [heldLease, shortLease]) }
            #expect(try await stores[0].cursor(group.cursor)?.epochs.isEmpty == true)

            // Batch 2 is kept out: every batch the function may pick is leased to another consumer.
            let (waiting, _) = try await stores[0].lease(cursor: group.cursor, epoch: 0, seconds: 60) { state, held in
                state.firstUnacked(epoch: 0, skipping: held.union([2]))
            }
            guard case .wait(let seconds) = waiting else { Issue.record("expected a wait, got \(waiting)"); return }
            #expect(seconds > 30 && seconds <= 60)

            let acked = try await stores[0].ackLeases(cursor: group.cursor, leases: [heldLease, againLease, againLease])
            #expect(Self.acked(acked) == [0, 1])
            try await stores[1].releaseLease(heldLease)
        }
    }

    @Test func aRestoredCursorEndsItsLeases() async throws {
        try await Self.withDatabase(stores: 2) { _, _, stores in
            let group = CursorTests.state(batches: 4, mode: .share)
            _ = try await stores[0].createCursor(group)
            let (outcome, _) = try await stores[0].lease(cursor: group.cursor, epoch: 0, seconds: 60) { $0.firstUnacked(epoch: 0, skipping: $1) }
            guard case .leased(_, let lease) = outcome else { Issue.record("expected a lease, got \(outcome)"); return }
            try await stores[1].replaceCursor(group)
            await #expect(throws: ServeError.self) { try await stores[0].ackLeases(cursor: group.cursor, leases: [lease]) }
            let (released, _) = try await stores[1].lease(cursor: group.cursor, epoch: 0, seconds: 60) { $0.firstUnacked(epoch: 0, skipping: $1) }
            guard case .leased(batch: 0, let second) = released else { Issue.record("expected batch 0, got \(released)"); return }
            try await stores[0].releaseLease(second)
            let (third, _) = try await stores[0].lease(cursor: group.cursor, epoch: 0, seconds: 60) { $0.firstUnacked(epoch: 0, skipping: $1) }
            guard case .leased(batch: 0, _) = third else { Issue.record("a released batch goes back to the group, got \(third)"); return }
        }
    }

    @Test func aCursorStreamedByTwoDaemonsIsRefusedUntilTheClaimEndsOrExpires() async throws {
        try await Self.withDatabase(stores: 2) { _, _, stores in
            #expect(try await stores[0].claimStream(cursor: "c-1", holder: "daemon-a", seconds: 30))
            #expect(try await stores[1].claimStream(cursor: "c-1", holder: "daemon-b", seconds: 30) == false)
            #expect(try await stores[0].claimStream(cursor: "c-1", holder: "daemon-a", seconds: 30))
            #expect(try await stores[1].claimStream(cursor: "c-2", holder: "daemon-b", seconds: 30))
            try await stores[1].releaseStream(cursor: "c-1", holder: "daemon-b")
            #expect(try await stores[1].claimStream(cursor: "c-1", holder: "daemon-b", seconds: 30) == false)
            try await stores[0].releaseStream(cursor: "c-1", holder: "daemon-a")
            #expect(try await stores[1].claimStream(cursor: "c-1", holder: "daemon-b", seconds: 0))
            // An expired claim (0 seconds on the database's clock) is taken over.
            #expect(try await stores[0].claimStream(cursor: "c-1", holder: "daemon-a", seconds: 30))
        }
    }

    @Test func aPlanIsPinnedOnceAcrossDaemons() async throws {
        try await Self.withDatabase(stores: 2) { _, _, stores in
            #expect(try await stores[0].pinnedVersion(key: "p") == nil)
            let pinned = try await withThrowingTaskGroup(of: Int.self) { group in
                for version in 1...8 { group.addTask { try await stores[version % 2].pin(key: "p", version: version) } }
                return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
            }
            #expect(pinned.count == 1)
            #expect(try await stores[1].pinnedVersion(key: "p") == pinned.first)
        }
    }

    @Test func aRestartedDatabaseFailsCallsAsUnavailableThenServesThemAndLosesNoAck() async throws {
        try await PostgresServer.with { server in
            let url = server.url(database: try await server.createDatabase())
            try await Self.withStores(1, url: url, timeout: .seconds(2)) { stores in
                let store = stores[0]
                let fresh = CursorTests.state(batches: 30, mode: .partition)
                _ = try await Self.retrying(store) { try await store.createCursor(fresh) }
                /// Acks `batch` as a client would: retrying while the daemon answers 503.
                @Sendable func ack(_ batch: Int) async throws {
                    _ = try await Self.retrying(store) { try await store.updateCursor(fresh.cursor) { $0.ack(epoch: 0, batches: [batch]) > 0 } }
                }
                for batch in 0..<10 { try await ack(batch) }
                // A shutdown the sessions are told of (57P01), then a crash (connections just drop).
                for (round, immediately) in [false, true].enumerated() {
                    try await server.stop(immediately: immediately)
                    let failed = await #expect(throws: MBDataError.self) {
                        try await store.updateCursor(fresh.cursor) { $0.ack(epoch: 0, batches: [29 - round]) > 0 }
                    }
                    #expect(failed.map(store.isUnavailable) == true, "\(String(describing: failed))")
                    await #expect(throws: MBDataError.self) { try await store.cursor(fresh.cursor) }
                    try await server.start()
                    let stored = try await Self.retrying(store) { try await store.cursor(fresh.cursor) }
                    #expect(stored.map { Self.acked($0) } == Set(0..<(10 + round * 10)), "a failed ack changed nothing, every answered one stayed")
                    for batch in (10 + round * 10)..<(20 + round * 10) { try await ack(batch) }
                }
                let stored = try #require(try await store.cursor(fresh.cursor))
                #expect(Self.acked(stored) == Set(0..<30))
            }
        }
    }

    /// `call`, retried while it fails as unavailable (a database coming back), 40 times at most.
    static func retrying<T: Sendable>(_ store: PostgresStateStore, _ call: @Sendable () async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await call()
            } catch where store.isUnavailable(error) && attempt < 40 {
                attempt += 1
            }
        }
    }

    @Test func aConnectionURLIsParsedAsLibpqReadsIt() throws {
        let url = try PostgresURL("postgresql://mbdata:s%40cret@db.example:6543/cluster?sslmode=require")
        #expect(url.host == "db.example" && url.port == 6543 && url.user == "mbdata" && url.password == "s@cret")
        #expect(url.database == "cluster" && url.sslMode == .require)
        #expect(url.location == "postgresql://mbdata@db.example:6543/cluster?sslmode=require")
        let defaults = try PostgresURL("postgres://db")
        #expect(defaults.user == "postgres" && defaults.port == 5432 && defaults.database == "postgres" && defaults.sslMode == .prefer)
        for bad in ["postgresql://", "http://db/x", "postgresql://db/x?sslmode=sometimes", "postgresql://db:0/x"] {
            #expect(throws: MBDataError.self) { try PostgresURL(bad) }
        }
        #expect(PostgresStateStoreTests.redactedError().contains("s3cret") == false)
    }

    static func redactedError() -> String {
        do {
            _ = try PostgresURL("postgresql://u:s3cret@db/x?sslmode=maybe")
            return ""
        } catch {
            return "\(error)"
        }
    }
}
