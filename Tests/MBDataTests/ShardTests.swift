import Foundation
import Testing

@testable import MBData

@Suite struct ShardTests {
    /// A digits dataset sharded into a temporary directory.
    struct Fixture {
        let dir: TemporaryDirectory
        let dataset: Dataset
        let plan: DatasetPlan
        let shards: String
        let manifest: ShardManifest
    }

    static func fixture(parameters: PlanParameters = PlanParameters(seed: 7, batchSize: 64, world: 2), epochs: Range<Int> = 0..<2, shardBytes: Int = 40_000) async throws -> Fixture {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        try await ingest(dataset, [samplePath("digits/digits.jsonl")], schema: try Schema(contentsOf: samplePath("digits/digits.schema.json")))
        let plan = try await dataset.plan(parameters)
        var configuration = PrefetchConfiguration()
        configuration.depth = 3
        let prefetcher = try await Prefetcher(dataset: dataset, plan: plan, epochs: epochs, configuration: configuration)
        let shards = dir.path("shards")
        let manifest = try await ShardWriter.write(
            prefetcher, schema: try #require(try await dataset.schema()), to: shards, targetShardBytes: shardBytes)
        return Fixture(dir: dir, dataset: dataset, plan: plan, shards: shards, manifest: manifest)
    }

    @Test func writesAVerifiableShardSetMatchingSQLite() async throws {
        let f = try await Self.fixture()
        #expect(f.manifest.shards.count > 1, "small target size splits the set")
        #expect(f.manifest.totals.batches == 2 * (1797 / 64) * 2)
        #expect(f.manifest.plan.droppedPerEpoch == 1797 % 64)
        let set = try ShardSet(directory: f.shards)
        try set.check(matches: f.plan, schema: try await f.dataset.schema(), epochs: 0..<2)
        let report = try await set.verify()
        #expect(report.isValid, "\(report.problems)")
        #expect(report.fingerprintChecked, "two shuffled epochs show every sample")
        #expect(report.samplesChecked == 2 * (1797 - 1797 % 64))
        // A batch holds exactly the rows of its ids, in plan order.
        let buffer = try set.batch(shard: 0, entry: 1)
        let reader = try SafetensorsReader(buffer)
        let ids = try reader.int64Values("_id", in: buffer)
        let entry = set.entries[0][1]
        #expect(ids == f.plan.sampleIDs(epoch: Int(entry.epoch), batch: Int(entry.batch), rank: Int(entry.rank)).map { $0! })
        let stored = Dictionary(uniqueKeysWithValues: try await f.dataset.samples().map { ($0.id, $0.values) })
        let images = Array(buffer[reader.tensors["image"]!.range])
        for (row, id) in ids.enumerated() {
            #expect(stored[id]?[1] == .blob(Array(images[(row * 64)..<((row + 1) * 64)])))
        }
    }

    @Test func shardsFromAnotherVersionOrPlanAreRefused() async throws {
        let f = try await Self.fixture()
        let set = try ShardSet(directory: f.shards)
        let otherSeed = try await f.dataset.plan(PlanParameters(seed: 8, batchSize: 64, world: 2))
        #expect(throws: MBDataError.self) { try set.check(matches: otherSeed) }
        let extra = try f.dir.write("more.jsonl", "{\"id\": 5000, \"image\": [[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0]], \"label\": 1}\n")
        try await ingest(f.dataset, [extra])
        let newer = try await f.dataset.plan(PlanParameters(seed: 7, batchSize: 64, world: 2))
        let error = #expect(throws: MBDataError.self) { try set.check(matches: newer) }
        #expect(error?.description.contains("stale shards") == true)
        #expect(throws: MBDataError.self) { try set.check(matches: f.plan, epochs: 0..<3) }
    }

    func firstShard(_ f: Fixture) -> String { f.dir.path("shards/" + f.manifest.shards[0].file) }

    func mutate(_ path: String, _ change: (inout [UInt8]) -> Void) throws {
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        change(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func aFlippedBitInAFrameIsFound() async throws {
        let f = try await Self.fixture()
        try mutate(firstShard(f)) { $0[100] ^= 0x04 }
        let set = try ShardSet(directory: f.shards)
        let error = #expect(throws: MBDataError.self) { try set.batch(shard: 0, entry: 0) }
        #expect(error?.description.contains("checksum mismatch") == true)
        // The loader's path checks the footer's xxh64 in place of liblz4's content checksum.
        let first = set.entries[0][0]
        let item = PlanItem(epoch: Int(first.epoch), batch: Int(first.batch), rank: Int(first.rank))
        let loading = #expect(throws: MBDataError.self) { try SpoolBatchProducer(shards: set).decoded(item) }
        #expect(loading?.description.contains("checksum mismatch") == true)
        let report = try await set.verify()
        #expect(!report.isValid)
        #expect(report.problems.contains { $0.contains("content hash") })
    }

    @Test func truncationAndBadTrailersAreRefused() async throws {
        let f = try await Self.fixture()
        try mutate(firstShard(f)) { $0.removeLast(7) }
        let truncated = #expect(throws: MBDataError.self) { try ShardSet(directory: f.shards) }
        #expect(truncated?.description.contains("truncated or replaced") == true)

        let g = try await Self.fixture()
        try mutate(firstShard(g)) { $0[$0.count - 1] = UInt8(ascii: "X") }
        let magic = #expect(throws: MBDataError.self) { try ShardSet(directory: g.shards) }
        #expect(magic?.description.contains("magic number") == true)

        let h = try await Self.fixture()
        try mutate(firstShard(h)) { bytes in bytes[bytes.count - 24] ^= 0x01 }
        let length = #expect(throws: MBDataError.self) { try ShardSet(directory: h.shards) }
        #expect(length?.description.contains("footer") == true)
    }

    @Test func aSplicedFrameIsFound() async throws {
        let f = try await Self.fixture()
        let set = try ShardSet(directory: f.shards)
        let a = set.entries[0][0]
        let b = set.entries[0][1]
        // Put frame 1's bytes where frame 0 was (same length prefix), as a bad copy would.
        try mutate(firstShard(f)) { bytes in
            let other = Array(bytes[Int(b.offset)..<Int(b.offset + min(a.length, b.length))])
            bytes.replaceSubrange(Int(a.offset)..<Int(a.offset) + other.count, with: other)
        }
        let reopened = try ShardSet(directory: f.shards)
        #expect(throws: MBDataError.self) { try reopened.batch(shard: 0, entry: 0) }
        #expect(!(try await reopened.verify()).isValid)
    }

    @Test func rewritingReplacesTheOldSetWhole() async throws {
        let f = try await Self.fixture()
        let plan = try await f.dataset.plan(PlanParameters(seed: 1, batchSize: 128))
        let prefetcher = try await Prefetcher(dataset: f.dataset, plan: plan, epochs: 0..<1)
        let manifest = try await ShardWriter.write(prefetcher, schema: try #require(try await f.dataset.schema()), to: f.shards)
        let files = try FileManager.default.contentsOfDirectory(atPath: f.shards).filter { $0.hasSuffix(".mbshard") }
        #expect(Set(files) == Set(manifest.shards.map(\.file)), "old shards not in the new manifest are removed")
        #expect(try await ShardSet(directory: f.shards).verify().isValid)
        #expect(!FileManager.default.fileExists(atPath: f.dir.path("shards/.manifest.json.tmp")))
    }

    @Test func paddedPlansKeepEverySampleAndFlagPadding() async throws {
        let f = try await Self.fixture(parameters: PlanParameters(seed: 3, batchSize: 100, tail: .pad), epochs: 0..<1)
        let set = try ShardSet(directory: f.shards)
        let report = try await set.verify()
        #expect(report.isValid, "\(report.problems)")
        #expect(report.samplesChecked == 1797)
        let last = set.entries.last!.last!
        #expect(last.samples == 97)
        let buffer = try set.batch(shard: set.entries.count - 1, entry: set.entries.last!.count - 1)
        let reader = try SafetensorsReader(buffer)
        #expect(Array(buffer[reader.tensors["_valid"]!.range]).filter { $0 == 1 }.count == 97)
    }

    @Test func prefetcherStopsEarlyWhenCancelled() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        try await ingest(dataset, [samplePath("digits/digits.jsonl")], schema: try Schema(contentsOf: samplePath("digits/digits.schema.json")))
        let plan = try await dataset.plan(PlanParameters(seed: 7, batchSize: 8))
        var configuration = PrefetchConfiguration()
        configuration.depth = 2
        let prefetcher = try await Prefetcher(dataset: dataset, plan: plan, epochs: 0..<5, configuration: configuration)
        var seen: [Int] = []
        for try await batch in prefetcher.batches() {
            seen.append(batch.batch)
            if seen.count == 10 { break }
        }
        #expect(seen == Array(0..<10), "batches arrive in plan order")
        prefetcher.cancel()
        #expect(try prefetcher.next() == nil)
    }
}
