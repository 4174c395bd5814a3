import Foundation
import GRDB
import Testing

@testable import MBData

/// A dataset file edited behind mbdata's back (with `sqlite3`, a bad disk, another program)
/// is outside input: reading a batch from it refuses the sample and names it, never traps
/// in collation and never hands a trainer a batch whose bytes disagree with its shapes.
@Suite struct CorruptDatasetTests {
    static let schemaJSON = """
        {"name": "c", "fields": [
          {"name": "label", "dtype": "uint8"},
          {"name": "score", "dtype": "float32"},
          {"name": "image", "dtype": "uint8", "shape": [4]},
          {"name": "tokens", "dtype": "int32", "shape": [null]}
        ]}
        """

    /// A four-sample dataset with one stored value replaced by `sql`.
    static func dataset(editedWith sql: String) async throws -> (TemporaryDirectory, Dataset) {
        let dir = try TemporaryDirectory()
        let lines = (0..<4).map { #"{"label": \#($0), "score": 0.5, "image": [1, 2, 3, 4], "tokens": [1, 2]}"# }
        let source = try dir.write("c.jsonl", lines.joined(separator: "\n") + "\n")
        let dataset = try Dataset(path: dir.path("c.mbdb"), create: true)
        try await ingest(dataset, [source], schema: try schema(schemaJSON))
        try await dataset.pool.write { db in try db.execute(sql: sql) }
        return (dir, dataset)
    }

    static func firstBatchError(_ dataset: Dataset) async throws -> MBDataError? {
        let plan = try await dataset.plan(PlanParameters(batchSize: 4, shuffle: false))
        let producer = try await LiveBatchProducer(dataset: dataset, plan: plan)
        do {
            _ = try producer.produce(PlanItem(epoch: 0, batch: 0, rank: 0))
            return nil
        } catch let error as MBDataError {
            return error
        }
    }

    @Test(
        "a stored value the schema does not allow is refused with its sample and field",
        arguments: [
            ("UPDATE samples SET image = x'0001' WHERE _id = 2", "image", "expected 4 bytes"),
            ("UPDATE samples SET tokens = x'000102' WHERE _id = 3", "tokens", "not a whole number"),
            ("UPDATE samples SET label = 300 WHERE _id = 1", "label", "outside uint8"),
            ("UPDATE samples SET score = 1e300 WHERE _id = 1", "score", "outside float32"),
            ("UPDATE samples SET label = 'seven' WHERE _id = 1", "label", "expected INTEGER"),
            ("UPDATE samples SET image = 7 WHERE _id = 4", "image", "expected BLOB"),
        ])
    func editedValueIsRefused(sql: String, field: String, expectation: String) async throws {
        let (dir, dataset) = try await Self.dataset(editedWith: sql)
        let error = try #require(try await Self.firstBatchError(dataset))
        #expect(error.code == .corruptData)
        #expect(error.field == field)
        #expect(error.description.contains(expectation), "\(error)")
        #expect(error.location?.hasPrefix("sample ") == true)
        let report = try await dataset.verify()
        #expect(report.problems.count == 1 && report.problems[0].contains("field '\(field)'"), "\(report.problems)")
        _ = dir
    }

    @Test func aSamplesTableMissingAColumnIsRefused() async throws {
        let (dir, dataset) = try await Self.dataset(editedWith: "ALTER TABLE samples DROP COLUMN score")
        let error = try #require(try await Self.firstBatchError(dataset))
        #expect(error.code == .corruptData)
        #expect(error.description.contains("columns"), "\(error)")
        _ = dir
    }

    @Test func anUneditedDatasetStillCollates() async throws {
        let (dir, dataset) = try await Self.dataset(editedWith: "SELECT 1")
        #expect(try await Self.firstBatchError(dataset) == nil)
        #expect(try await dataset.verify().isValid)
        _ = dir
    }
}
