import Foundation
import GRDB
import Testing

@testable import MBData

/// A dataset's WAL is checkpointed beside its writer (``WALCheckpointer``): commits past
/// the background threshold leave the copy to another connection, the WAL stays bounded by
/// the blocking threshold however fast the writer goes, and readers running meanwhile and
/// the file afterwards see every committed row.
@Suite struct WALCheckpointerTests {
    private static let pageSize = 16384

    @Test func theWALIsCheckpointedBesideTheWriterAndStaysBounded() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("t.mbdb")
        let thresholds = WALCheckpointer.Thresholds(backgroundFrames: 8, blockingFrames: 64)
        let dataset = try Dataset(path: path, create: true, checkpoints: thresholds)
        try await dataset.pool.write { db in try db.execute(sql: "CREATE TABLE filler (_id INTEGER PRIMARY KEY, payload BLOB)") }

        let rowsPerCommit = 3
        // One page a row (12 KiB of a 16 KiB page), so each commit adds a few frames.
        let payload = Data(repeating: 7, count: 12 * 1024)
        var written = 0
        func commit() async throws {
            let first = written
            written += rowsPerCommit
            try await dataset.pool.write { db in
                for id in first..<(first + rowsPerCommit) {
                    try db.execute(sql: "INSERT INTO filler VALUES (?, ?)", arguments: [id, payload])
                }
            }
        }

        // Alone, the writer never finds the WAL longer than the blocking threshold and one
        // commit: a frame is a 24-byte header and a page, after the WAL's 32-byte header.
        let bound = (Int(thresholds.blockingFrames) + 4 * rowsPerCommit) * (Self.pageSize + 24) + 32
        var largestWAL = 0
        for _ in 0..<400 {
            try await commit()
            let size = ((try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int) ?? 0
            largestWAL = max(largestWAL, size)
        }

        // Readers running beside the writer and the checkpoints see whole commits, in order.
        async let reads: [Int] = {
            var counts: [Int] = []
            for _ in 0..<100 {
                counts.append(try await dataset.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM filler") ?? -1 })
            }
            return counts
        }()
        for _ in 0..<200 { try await commit() }
        let counts = try await reads
        #expect(counts == counts.sorted() && counts.allSatisfy { $0 % rowsPerCommit == 0 && $0 >= 400 * rowsPerCommit })

        #expect(largestWAL <= bound, "the WAL reached \(largestWAL) bytes, above \(bound)")
        let deadline = ContinuousClock.now + .seconds(30)
        while dataset.walCheckpointer.backgroundCheckpoints == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(dataset.walCheckpointer.backgroundCheckpoints > 0)

        // The file holds every row, intact, for a connection opened afresh.
        let reopened = try DatabaseQueue(path: path)
        let (check, count) = try await reopened.read { db in
            (try String.fetchOne(db, sql: "PRAGMA integrity_check"), try Int.fetchOne(db, sql: "SELECT count(*) FROM filler"))
        }
        #expect(check == "ok" && count == written)
    }

    /// The checkpointer's connection is open only while it checkpoints: afterwards an ingest
    /// can still switch the file to its rollback journal, which needs the file to itself.
    @Test func theCheckpointerHoldsNoConnectionBetweenCheckpoints() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("t.mbdb")
        let dataset = try Dataset(path: path, create: true, checkpoints: WALCheckpointer.Thresholds(backgroundFrames: 1, blockingFrames: 1000))
        try await dataset.pool.write { db in try db.execute(sql: "CREATE TABLE filler (_id INTEGER PRIMARY KEY, payload BLOB)") }
        try await dataset.pool.write { db in try db.execute(sql: "INSERT INTO filler VALUES (1, zeroblob(40000))") }
        let deadline = ContinuousClock.now + .seconds(30)
        while dataset.walCheckpointer.backgroundCheckpoints == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(dataset.walCheckpointer.backgroundCheckpoints > 0)
        // The run closes its connection as it ends: give a loaded machine up to 10 s for that.
        var entered = false
        let closing = ContinuousClock.now + .seconds(10)
        while !entered && ContinuousClock.now < closing {
            dataset.pool.releaseMemory()  // closes the pool's idle readers, as an ingest does first
            entered = try await dataset.pool.writeWithoutTransaction { db in
                let entered = try BulkLoadMode.enter(db)
                BulkLoadMode.leave(db, entered: entered)
                return entered
            }
            if !entered { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(entered, "another connection kept the file open")
    }

    /// A dataset file removed while it is open is not made again, empty, by its checkpointer.
    @Test func aRemovedDatasetFileIsNotCreatedAgain() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("t.mbdb")
        let dataset = try Dataset(path: path, create: true, checkpoints: WALCheckpointer.Thresholds(backgroundFrames: 1, blockingFrames: 1000))
        try await dataset.pool.write { db in try db.execute(sql: "CREATE TABLE filler (_id INTEGER PRIMARY KEY, payload BLOB)") }
        // The table's commit asked for a checkpoint: wait for it, so that none is left to run
        // on the file before it is removed.
        let deadline = ContinuousClock.now + .seconds(30)
        while dataset.walCheckpointer.backgroundCheckpoints == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .milliseconds(100))
        let before = dataset.walCheckpointer.backgroundCheckpoints
        #expect(before > 0)
        try FileManager.default.removeItem(atPath: path)
        for id in 0..<5 {
            try await dataset.pool.write { db in try db.execute(sql: "INSERT INTO filler VALUES (?, zeroblob(40000))", arguments: [id]) }
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(dataset.walCheckpointer.backgroundCheckpoints == before)
    }
}
