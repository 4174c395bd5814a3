import Foundation
import Testing

@testable import MBData

/// A plan keeps its ids as runs, so its memory does not grow with the dataset, and its
/// fingerprint is the one every earlier version computed from the array of ids.
@Suite struct SampleIDsTests {
    @Test func consecutiveIdsAreOneRunAndReadBackInOrder() {
        let ids = SampleIDs(Array(1...1_000_000) as [Int64])
        #expect(ids.runCount == 1)
        #expect(ids.count == 1_000_000)
        #expect(ids[0] == 1 && ids[999_999] == 1_000_000 && ids[123_456] == 123_457)
    }

    @Test func gapsStartRunsAndShortRunsBecomeAList() {
        let gappy: [Int64] = [1, 2, 3, 10, 11, 20, 30, 31, 32, 33]
        let ids = SampleIDs(gappy)
        #expect(ids.runCount == 4)
        #expect(Array(ids) == gappy)
        let interleaved = (0..<100).map { Int64($0 * 2 + 1) }
        let list = SampleIDs(interleaved)
        #expect(list.runCount == 100, "runs of one id each take more memory than the ids: kept as a list")
        #expect(Array(list) == interleaved)
    }

    @Test func chunksCoverEveryIdOnce() {
        let source = Array(1...5000).map(Int64.init) + Array(9000...9100).map(Int64.init)
        let ids = SampleIDs(source)
        var seen: [Int64] = []
        ids.forEachChunk { seen += $0 }
        #expect(seen == source)
    }

    /// Shard sets and saved cursors name plans by fingerprint: the runs must hash to the
    /// bytes of the ascending ids, as `verify` recomputes them.
    @Test func aPlanFingerprintIsThatOfItsIdArray() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        let keyless = try schema(#"{"name": "k", "fields": [{"name": "x", "dtype": "int64"}]}"#)
        var train = IngestOptions()
        train.split = "train"
        var val = IngestOptions()
        val.split = "val"
        _ = try await ingest(dataset, [try dir.write("a.jsonl", (0..<30).map { "{\"x\": \($0)}" }.joined(separator: "\n"))], schema: keyless, options: train)
        _ = try await ingest(dataset, [try dir.write("b.jsonl", (0..<10).map { "{\"x\": \($0)}" }.joined(separator: "\n"))], options: val)
        _ = try await ingest(dataset, [try dir.write("c.jsonl", (30..<45).map { "{\"x\": \($0)}" }.joined(separator: "\n"))], options: train)
        for split in [nil, "train", "val"] as [String?] {
            let parameters = PlanParameters(seed: 3, batchSize: 4, split: split)
            let plan = try await dataset.plan(parameters)
            let expected = DatasetPlan.fingerprint(
                schema: keyless, ids: Array(plan.ids), version: plan.datasetVersion, maxID: plan.maxID, parameters: parameters)
            #expect(plan.fingerprint == expected, "split \(split ?? "(all)")")
        }
        #expect(try await dataset.plan(PlanParameters(batchSize: 4)).ids.runCount == 1, "every sample: the splits' runs join")
        #expect(try await dataset.plan(PlanParameters(batchSize: 4, split: "train")).ids.runCount == 2)
    }
}
