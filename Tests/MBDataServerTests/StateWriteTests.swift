import Foundation
import GRDB
import HTTPTypes
import MBData
import MBDataTestSupport
import MBDataWire
import Synchronization
import Testing

@testable import MBDataServer

/// A clock the tests move by hand: leases expire without sleeping.
final class ManualClock: Sendable {
    private let instant = Mutex(ContinuousClock.now)
    var serveClock: ServeClock { ServeClock { self.instant.withLock { $0 } } }
    func advance(by duration: Duration) { instant.withLock { $0 += duration } }
}

/// DESIGN decision 11: the cursor book writes every change before it believes it. These
/// tests make the state database refuse writes and check that memory did not move, that the
/// client sees 503 `state_unavailable`, and that a retry really writes.
@Suite struct StateWriteTests {
    static func book(_ path: String, clock: ManualClock = ManualClock()) throws -> CursorBook {
        CursorBook(store: try SQLiteStateStore(path: path, clock: clock.serveClock), metrics: ServeMetrics())
    }

    /// Makes every write of the cursors table fail until `drop` runs.
    static func failWrites(_ path: String) throws -> @Sendable () throws -> Void {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: "CREATE TRIGGER refuse_update BEFORE UPDATE ON cursors BEGIN SELECT RAISE(FAIL, 'injected fault'); END")
            try db.execute(sql: "CREATE TRIGGER refuse_insert BEFORE INSERT ON cursors BEGIN SELECT RAISE(FAIL, 'injected fault'); END")
        }
        return {
            try queue.write { db in
                try db.execute(sql: "DROP TRIGGER refuse_update")
                try db.execute(sql: "DROP TRIGGER refuse_insert")
            }
        }
    }

    @Test func aFailedAckWriteLeavesTheCursorAsItWasAndTheRetryWrites() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("state.sqlite")
        let book = try Self.book(path)
        let id = try await book.cursor(CursorTests.state(batches: 10, mode: .partition)).cursor
        _ = try await book.ack(id, epoch: 0, batches: [0])
        let restore = try Self.failWrites(path)

        await #expect(throws: MBDataError.self) { try await book.ack(id, epoch: 0, batches: [1, 2]) }
        #expect(try await book.state(id).progress(epoch: 0).lowWatermark == 1)
        await #expect(throws: MBDataError.self) { try await book.reset(id) }
        #expect(try await book.state(id).progress(epoch: 0).lowWatermark == 1)
        var restored = CursorTests.state(batches: 10, mode: .partition)
        restored.epochs = [.init(epoch: 0, lowWatermark: 9, finishedAbove: [])]
        await #expect(throws: MBDataError.self) { try await book.restore(restored) }
        #expect(try await book.state(id).progress(epoch: 0).lowWatermark == 1)
        let other = CursorTests.state(batches: 10, mode: .replicate)
        await #expect(throws: MBDataError.self) { try await book.cursor(other) }
        await #expect(throws: ServeError.self) { try await book.state(other.cursor) }

        try restore()
        #expect(try await book.ack(id, epoch: 0, batches: [1, 2]).progress(epoch: 0).lowWatermark == 3)
        #expect(try await Self.book(path).state(id).progress(epoch: 0).lowWatermark == 3)
    }

    @Test func aFailedLeaseAckKeepsTheLeaseSoTheRetryAcksIt() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("state.sqlite")
        let book = try Self.book(path)
        let id = try await book.cursor(CursorTests.state(batches: 3)).cursor
        guard case .leased(_, let lease) = try await book.lease(book.state(id), epoch: 0, seconds: 30) else { Issue.record("no lease"); return }
        let restore = try Self.failWrites(path)
        await #expect(throws: MBDataError.self) { try await book.ack(id, leases: [lease]) }
        #expect(try await book.state(id).epochs.isEmpty)
        try restore()
        #expect(try await book.ack(id, leases: [lease]).progress(epoch: 0).lowWatermark == 1)
        #expect(try await Self.book(path).state(id).progress(epoch: 0).lowWatermark == 1)
    }

    /// A state file SQLite may only read (a file system remounted read-only): the write
    /// fails with SQLITE_READONLY, which the client sees as 503 `state_unavailable`.
    @Test func aReadOnlyStateDatabaseAnswers503AndChangesNothing() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("state.sqlite")
        let id = try await Self.book(path).cursor(CursorTests.state(batches: 4, mode: .partition)).cursor
        let book = CursorBook(store: try SQLiteStateStore(path: path, readOnly: true), metrics: ServeMetrics())
        let error = await #expect(throws: MBDataError.self) { try await book.ack(id, epoch: 0, batches: [0]) }
        let answer = ServeError.from(try #require(error), store: book.store)
        #expect(answer.status == .serviceUnavailable)
        #expect(answer.code == "state_unavailable")
        #expect(answer.message.contains("SQLITE_READONLY") || answer.message.contains("8"))
        #expect(try await book.state(id).epochs.isEmpty)
    }

    @Test func aFullDiskIsAStateUnavailableErrorAndAConstraintIsInternal() throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.path("state.sqlite"))
        let full = MBDataError(.storage, "cannot write", cause: DatabaseError(resultCode: .SQLITE_FULL))
        #expect(ServeError.from(full, store: store).status == .serviceUnavailable)
        #expect(ServeError.from(full, store: store).headers[.retryAfter] == "1")
        let other = MBDataError(.storage, "cannot write", cause: DatabaseError(resultCode: .SQLITE_CONSTRAINT))
        #expect(ServeError.from(other, store: store).status == .internalServerError)
    }

    /// The probe's `{"leases": [L, L]}` killed the daemon (a force unwrap of the second).
    @Test func aLeaseNamedTwiceInOneAckIsAckedOnce() async throws {
        let directory = try TemporaryDirectory()
        let book = try Self.book(directory.path("state.sqlite"))
        let id = try await book.cursor(CursorTests.state(batches: 3)).cursor
        guard case .leased(let batch, let lease) = try await book.lease(book.state(id), epoch: 0, seconds: 30) else { Issue.record("no lease"); return }
        let state = try await book.ack(id, leases: [lease, lease, lease])
        #expect(batch == 0)
        #expect(state.epochs == [.init(epoch: 0, lowWatermark: 1, finishedAbove: [])])
        await #expect(throws: ServeError.self) { try await book.ack(id, leases: [lease]) }
    }

    @Test func leasesExpireOnTheInjectedClock() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualClock()
        let book = try Self.book(directory.path("state.sqlite"), clock: clock)
        let id = try await book.cursor(CursorTests.state(batches: 2)).cursor
        guard case .leased(0, let short) = try await book.lease(book.state(id), epoch: 0, seconds: 5),
            case .leased(1, let long) = try await book.lease(book.state(id), epoch: 0, seconds: 30)
        else { Issue.record("no leases"); return }
        #expect(try await book.lease(book.state(id), epoch: 0, seconds: 30) == .wait(seconds: 5))
        clock.advance(by: .seconds(4))
        #expect(try await book.lease(book.state(id), epoch: 0, seconds: 30) == .wait(seconds: 1))
        clock.advance(by: .seconds(1))
        guard case .leased(0, let again) = try await book.lease(book.state(id), epoch: 0, seconds: 30) else { Issue.record("no redelivery"); return }
        await #expect(throws: ServeError.self) { try await book.ack(id, leases: [short]) }
        _ = try await book.ack(id, leases: [long, again])
        #expect(try await book.lease(book.state(id), epoch: 0, seconds: 30) == .complete)
    }

    /// Concurrent acks of one cursor: each waits for the other's write, so none overwrites
    /// another's batches on disk.
    @Test func concurrentAcksAllReachTheDisk() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("state.sqlite")
        let book = try Self.book(path)
        let id = try await book.cursor(CursorTests.state(batches: 200, mode: .partition)).cursor
        try await withThrowingTaskGroup(of: Void.self) { group in
            for batch in 0..<200 { group.addTask { _ = try await book.ack(id, epoch: 0, batches: [batch]) } }
            try await group.waitForAll()
        }
        #expect(try await Self.book(path).state(id).progress(epoch: 0).lowWatermark == 200)
    }

    @Test func acksOutsideThePlanAreRefusedAndStoreNothing() async throws {
        let directory = try TemporaryDirectory()
        let book = try Self.book(directory.path("state.sqlite"))
        let id = try await book.cursor(CursorTests.state(batches: 10, mode: .partition)).cursor
        for (epoch, batches) in [(1 << 62, [0]), (-1, [0]), (Int(Int32.max) + 1, [0]), (0, [10]), (0, [-1]), (0, [Int.min])] {
            let error = await #expect(throws: ServeError.self) { try await book.ack(id, epoch: epoch, batches: batches) }
            #expect(error?.status == .badRequest)
        }
        #expect(try await book.state(id).epochs.isEmpty)
    }

    @Test func ackBodiesParseOnlyTheDocumentedShapes() throws {
        #expect(try AckRequest(json: Data(#"{"epoch": 2, "batches": [1, 5]}"#.utf8)) == .batches(epoch: 2, batches: [1, 5]))
        #expect(try AckRequest(json: Data(#"{"leases": [7, 7]}"#.utf8)) == .leases([7, 7]))
        for body in [
            #"{"epoch": 2}"#, #"{"leases": [-1]}"#, #"{"epoch": 1e30, "batches": []}"#, #"{"epoch": 0, "batches": [1], "leases": [2]}"#,
            #"{"leases": [18446744073709551616]}"#, "[", "",
        ] {
            #expect(throws: ServeError.self) { try AckRequest(json: Data(body.utf8)) }
        }
    }

    @Test func aRestoredStateForAnotherDatasetVersionOrEpochRangeIsRefused() throws {
        var state = CursorTests.state(batches: 10, mode: .partition)
        state.epochs = [.init(epoch: 1 << 40, lowWatermark: 0, finishedAbove: [])]
        #expect(throws: ServeError.self) { try state.validate() }
        state.epochs = []
        state.batchesPerEpoch = 0
        #expect(throws: ServeError.self) { try state.validate() }
        let json = try WireJSON.encode(CursorTests.state(batches: 10, mode: .partition))
        let id = CursorTests.state(batches: 10, mode: .partition).cursor
        #expect(try CursorState(restoring: json, id: id) == CursorTests.state(batches: 10, mode: .partition))
        #expect(throws: ServeError.self) { try CursorState(restoring: json, id: "c-0000000000000000") }
    }
}
