import Foundation
import GRDB
import Testing

@testable import MBData

/// Transactions, error policies, idempotency, splits and versions.
@Suite struct IngestSemanticsTests {
    static func lines(_ ids: Range<Int>, bad: Set<Int> = []) -> String {
        ids.map { id in
            bad.contains(id)
                ? "{\"id\": \(id), \"features\": [1, 2], \"label\": 0}"
                : "{\"id\": \(id), \"features\": [\(id), 0.5, -1, 2], \"label\": \(id % 4)}"
        }.joined(separator: "\n") + "\n"
    }

    func options(batchRows: Int = 10, _ change: (inout IngestOptions) -> Void = { _ in }) -> IngestOptions {
        var options = IngestOptions()
        options.rowsPerTransaction = batchRows
        change(&options)
        return options
    }

    @Test func failKeepsEarlierTransactionsAndDropsTheOneWithTheError() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("d.jsonl", Self.lines(0..<25, bad: [22]))
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let error = await ingestError(dataset, [path], schema: try schema(tabularSchemaJSON), options: options())
        #expect(error?.matches(.schemaMismatch, "d.jsonl:line 23", "field 'features'") == true, "\(String(describing: error))")
        let stored = try await dataset.samples()
        #expect(stored.map(\.values[0]) == (0..<20).map { .integer(Int64($0)) })
        #expect(try await dataset.version() == 2)
        let info = try await dataset.info()
        #expect(info.ingests.last?.status == "failed")
        #expect(info.ingests.last?.message?.contains("line 23") == true)
        #expect(try await dataset.verify().isValid)
    }

    @Test func skipPassesOverBadRecordsUpToTheLimit() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("d.jsonl", Self.lines(0..<30, bad: [3, 17]))
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let summary = try await ingest(dataset, [path], schema: try schema(tabularSchemaJSON), options: options { $0.onError = .skip; $0.maxErrors = 2 })
        #expect(summary.rowsAdded == 28)
        #expect(summary.rowsFailed == 2)
        #expect(summary.errors.count == 2)
        #expect(summary.errors[0].contains("line 4"))
        #expect(summary.errors[1].contains("line 18"))

        let tooMany = try dir.write("e.jsonl", Self.lines(0..<30, bad: [3, 17, 25]))
        let other = try Dataset(path: dir.path("e.mbdb"), create: true)
        let error = await ingestError(other, [tooMany], schema: try schema(tabularSchemaJSON), options: options { $0.onError = .skip; $0.maxErrors = 2 })
        #expect(error?.matches(.tooManyErrors, "more than 2 bad records", "line 26") == true, "\(String(describing: error))")
        #expect(try await other.samples().count == 18, "two whole transactions of 10 records, less their 2 bad ones")
    }

    @Test func aKeyMakesReingestAddNothing() async throws {
        let dir = try TemporaryDirectory()
        let first = try dir.write("a.jsonl", Self.lines(0..<40))
        let overlapping = try dir.write("b.jsonl", Self.lines(30..<60))
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let tabular = try schema(tabularSchemaJSON)
        #expect(try await ingest(dataset, [first], schema: tabular, options: options()).rowsAdded == 40)
        let versionAfterFirst = try await dataset.version()

        let again = try await ingest(dataset, [first], options: options { $0.force = true })
        #expect(again.rowsAdded == 0)
        #expect(again.rowsSkipped == 40)
        #expect(try await dataset.version() == versionAfterFirst, "a run that adds nothing leaves the version")

        let more = try await ingest(dataset, [overlapping], options: options())
        #expect(more.rowsAdded == 20)
        #expect(more.rowsSkipped == 10)
        let ids = try await dataset.samples().map(\.values[0])
        #expect(ids == (0..<60).map { .integer(Int64($0)) })
    }

    @Test func aFullyIngestedFileIsNotReadTwice() async throws {
        let dir = try TemporaryDirectory()
        let keyless = try schema(#"{"name": "k", "fields": [{"name": "x", "dtype": "int64"}]}"#)
        let path = try dir.write("x.jsonl", (0..<15).map { "{\"x\": \($0 % 4)}" }.joined(separator: "\n"))
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        #expect(try await ingest(dataset, [path], schema: keyless, options: options()).rowsAdded == 15)
        let second = try await ingest(dataset, [path], options: options())
        #expect(second.alreadyIngested)
        #expect(second.rowsAdded == 0)
        #expect(try await dataset.samples().count == 15)
        let forced = try await ingest(dataset, [path], options: options { $0.force = true })
        #expect(forced.rowsAdded == 15, "--force reads again; without a key that duplicates, as asked")
    }

    @Test func anInterruptedKeylessIngestContinuesAfterTheLastCommit() async throws {
        let dir = try TemporaryDirectory()
        let keyless = try schema(#"{"name": "k", "fields": [{"name": "x", "dtype": "int64"}]}"#)
        let path = try dir.write("x.jsonl", (0..<35).map { "{\"x\": \($0)}" }.joined(separator: "\n"))
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        try await ingest(dataset, [path], schema: keyless, options: options())
        // Make the log look like a run killed after its second commit: 20 records committed.
        try await dataset.pool.write { db in
            try db.execute(sql: "DELETE FROM samples WHERE _id > 20")
            try db.execute(sql: "UPDATE mbdata_ingest_log SET status = 'running', records_read = 20")
        }
        let resumed = try await ingest(dataset, [path], options: options())
        #expect(resumed.resumedFrom == 1)
        #expect(resumed.rowsAdded == 15)
        #expect(try await dataset.samples().map(\.values[0]) == (0..<35).map { .integer(Int64($0)) })
        let info = try await dataset.info()
        #expect(info.ingests.map(\.status) == ["interrupted", "complete"])
    }

    @Test func splitsAreFixedOrDecidedByKeyHash() async throws {
        let dir = try TemporaryDirectory()
        let tabular = try schema(tabularSchemaJSON)
        let path = try dir.write("d.jsonl", Self.lines(0..<2000))
        let fixed = try Dataset(path: dir.path("f.mbdb"), create: true)
        try await ingest(fixed, [path], schema: tabular, options: options(batchRows: 500) { $0.split = "test" })
        #expect(try await fixed.info().splits == ["test": 2000])

        var assignments: [[String]] = []
        for name in ["a", "b"] {
            let dataset = try Dataset(path: dir.path("\(name).mbdb"), create: true)
            try await ingest(dataset, [path], schema: tabular, options: options(batchRows: 300) { $0.validationFraction = 0.2 })
            assignments.append(try await dataset.samples().map(\.split))
        }
        #expect(assignments[0] == assignments[1], "the split is a function of the key")
        let validation = assignments[0].filter { $0 == "val" }.count
        #expect((300...500).contains(validation), "about 20% of 2000 in val, got \(validation)")
        let bad = await ingestError(try Dataset(path: dir.path("x.mbdb"), create: true), [path], schema: tabular, options: options { $0.validationFraction = 1.5 })
        #expect(bad?.code == .invalidArgument)
    }

    @Test func everyCommitGrowsTheVersionAndLogsTheIngest() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("d.jsonl", Self.lines(0..<25))
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let summary = try await ingest(dataset, [path], schema: try schema(tabularSchemaJSON), options: options())
        #expect(summary.datasetVersion == 3)
        #expect(try await dataset.version() == 3)
        let info = try await dataset.info()
        let entry = try #require(info.ingests.first)
        #expect(entry.status == "complete")
        #expect(entry.rowsAdded == 25)
        #expect(entry.bytes == (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int))
        #expect(entry.contentHash?.hasPrefix("xxh64:") == true)
        let maxIDs = try await dataset.read { db in try Int64.fetchAll(db, sql: "SELECT max_id FROM mbdata_versions ORDER BY version") }
        #expect(maxIDs == [10, 20, 25])
    }

    @Test func verifyFindsValuesThatBreakTheSchema() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("d.jsonl", Self.lines(0..<5))
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        try await ingest(dataset, [path], schema: try schema(tabularSchemaJSON))
        try await dataset.pool.write { db in
            try db.execute(sql: "UPDATE samples SET features = x'0000' WHERE _id = 2")
            try db.execute(sql: "UPDATE samples SET label = 'seven' WHERE _id = 4")
        }
        let report = try await dataset.verify()
        #expect(report.problems.count == 2)
        #expect(report.problems[0].contains("sample 2: field 'features': expected 16 bytes"))
        #expect(report.problems[1].contains("sample 4: field 'label': expected INTEGER"))
    }

    @Test func bulkIngestReturnsToWALAndAnOpenReaderKeepsWAL() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("d.jsonl", Self.lines(0..<25))
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        try await ingest(dataset, [path], schema: try schema(tabularSchemaJSON), options: options())
        #expect(try await dataset.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") } == "wal")

        // Another process-like reader holds the file open: the ingest must not need exclusive access.
        let reader = try Dataset(path: dir.path("d.mbdb"))
        #expect(try await reader.samples().count == 25)
        let more = try dir.write("e.jsonl", Self.lines(25..<40))
        #expect(try await ingest(dataset, [more], options: options()).rowsAdded == 15)
        #expect(try await reader.samples().count == 40)
        #expect(try await reader.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") } == "wal")
    }

    @Test func stdinNeedsNoExtensionAndReadsJSONL() throws {
        #expect(SourceFormat.infer(from: "x.ndjson", isDirectory: false) == .jsonl)
        #expect(SourceFormat.infer(from: "x.npz", isDirectory: false) == .npz)
        #expect(try SourceSpec(paths: ["-"]).resolvedFormat() == .jsonl)
        #expect(try SourceSpec(paths: ["-"], format: .csv).resolvedFormat() == .csv)
    }
}
