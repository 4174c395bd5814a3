import Foundation
import Testing

@testable import MBData

/// The live read path's shortcuts give the bytes of the general one.
@Suite struct LiveReadTests {
    static let fixedSchema = #"""
        {"name": "f", "fields": [{"name": "image", "dtype": "uint8", "shape": [2, 3]}, {"name": "label", "dtype": "int64"}, {"name": "score", "dtype": "float32"}]}
        """#

    /// A batch read straight from SQLite's pages equals the batch `SampleReader` and
    /// `BatchCollator` make, padding rows and `_valid` included.
    @Test func aFixedShapeBatchIsTheCollatedBatch() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let rows = (0..<23).map { i in
            "{\"image\": [[\(i % 256), 1, 2], [3, 4, \(255 - i)]], \"label\": \(i * 7 - 40), \"score\": \(Double(i) / 4)}"
        }
        try await ingest(dataset, [try dir.write("a.jsonl", rows.joined(separator: "\n"))], schema: try schema(Self.fixedSchema))
        let stored = try #require(try await dataset.schema())
        for tail in [TailPolicy.drop, .pad] {
            let plan = try await dataset.plan(PlanParameters(seed: 5, batchSize: 8, tail: tail))
            let collator = try BatchCollator(schema: stored, flagsValidity: tail == .pad)
            let reader = try #require(FixedShapeBatchReader(schema: stored, flagsValidity: tail == .pad))
            for batch in 0..<plan.plan.batchesPerEpoch {
                let ids = plan.sampleIDs(epoch: 1, batch: batch)
                let metadata = ["batch": String(batch)]
                let (direct, general) = try await dataset.read { db in
                    (try reader.batch(db, ids: ids, metadata: metadata), collator.collate(try SampleReader(schema: stored).rows(db, ids: ids), metadata: metadata))
                }
                #expect(direct == general, "tail \(tail) batch \(batch)")
            }
        }
    }

    @Test func aBatchNamingASampleTwiceTakesTheGeneralPath() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        try await ingest(dataset, [try dir.write("a.jsonl", "{\"image\": [[1, 2, 3], [4, 5, 6]], \"label\": 1, \"score\": 0.5}")], schema: try schema(Self.fixedSchema))
        let stored = try #require(try await dataset.schema())
        let reader = try #require(FixedShapeBatchReader(schema: stored, flagsValidity: false))
        #expect(try await dataset.read { db in try reader.batch(db, ids: [1, 1], metadata: [:]) } == nil)
        #expect(FixedShapeBatchReader(schema: try schema(#"{"name": "v", "fields": [{"name": "t", "dtype": "int32", "shape": [null]}]}"#), flagsValidity: false) == nil)
    }

    /// Dense ids are read with one range scan that skips the rows between them; sparse ones
    /// with `IN`: either way each wanted row comes once, and only wanted rows come.
    @Test func denseAndSparseIDsReadExactlyTheWantedRows() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let rows = (0..<200).map { i in "{\"image\": [[1, 2, 3], [4, 5, 6]], \"label\": \(i * 7 - 40), \"score\": 0.5}" }
        try await ingest(dataset, [try dir.write("a.jsonl", rows.joined(separator: "\n"))], schema: try schema(Self.fixedSchema))
        let stored = try #require(try await dataset.schema())
        let cases: [[Int64]] = [
            Array(20...60),  // contiguous: a range scan
            Array(stride(from: 10, through: 90, by: 2)) + [91, 91, 92],  // half the range, a repeat: a range scan
            [3, 50, 97, 150, 199],  // sparse: IN
            [1], [200], [199, 200, 201, 202],  // edges, and ids past the table's end
        ]
        for wanted in cases {
            let (seen, read) = try await dataset.read { db in
                var seen: [Int64] = []
                try SampleReader.forEachRow(db, ids: wanted, fieldCount: stored.fields.count) { _, id in seen.append(id) }
                return (seen, try SampleReader(schema: stored).rows(db, ids: wanted.filter { $0 <= 200 }.reversed()))
            }
            #expect(seen == Array(Set(wanted.filter { $0 <= 200 })).sorted(), "\(wanted)")
            for (id, row) in zip(wanted.filter { $0 <= 200 }.reversed(), read) {
                #expect(row?.id == id)
                #expect(row?.values[1] == .integer((id - 1) * 7 - 40), "sample \(id)")
            }
        }
    }
}
