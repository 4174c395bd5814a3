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
}
