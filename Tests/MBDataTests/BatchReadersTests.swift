import Foundation
import GRDB
import Testing

@testable import MBData

/// Batch reads keep their connections across batches, outside the pool (issue 14): a mixture's
/// producer opens each source once however many batches it reads, and the kept connections
/// keep the pool's semantics — the plan's pinned samples read the same after another ingest,
/// no read holds a snapshot past its batch, and a pinned sample that is gone is refused at once.
@Suite struct BatchReadersTests {
    private static let tokens = #"""
        {"name": "t", "fields": [{"name": "tokens", "dtype": "int32", "shape": [null]}, {"name": "label", "dtype": "int64"}]}
        """#

    private static func rows(_ range: Range<Int>, source: Int) -> String {
        range.map { i in "{\"tokens\": [\((0..<(1 + i % 5)).map { String(1000 * source + i + $0) }.joined(separator: ", "))], \"label\": \(i)}" }
            .joined(separator: "\n")
    }

    @Test(arguments: [false, true])
    func aMixturesKeptConnectionsReadPinnedSamplesAndHoldNoSnapshot(fixedShape: Bool) async throws {
        let dir = try TemporaryDirectory()
        let schemaText = fixedShape ? LiveReadTests.fixedSchema : Self.tokens
        func lines(_ range: Range<Int>, source: Int) -> String {
            guard fixedShape else { return Self.rows(range, source: source) }
            return range.map { i in "{\"image\": [[\(i % 256), \(source), 2], [3, 4, 5]], \"label\": \(i), \"score\": 0.5}" }.joined(separator: "\n")
        }
        var datasets: [Dataset] = []
        for (source, (name, size)) in [("web", 23), ("code", 9)].enumerated() {
            let dataset = try Dataset(path: dir.path("\(name).mbdb"), create: true)
            try await ingest(dataset, [try dir.write("\(name).jsonl", lines(0..<size, source: source))], schema: try schema(schemaText))
            datasets.append(dataset)
        }
        let components = zip(datasets, [MixtureWeight.proportion(0.6), 0.4]).map { MixtureComponent(dataset: $0, weight: $1) }
        let plan = try await MixtureBatchPlan.resolve(components, epochSize: 30, parameters: PlanParameters(seed: 3, batchSize: 4))
        let producer = try await MixtureBatchProducer(plan: plan, datasets: datasets)
        #expect((producer.fixedShape != nil) == fixedShape)
        let items = (0..<plan.plan.batchesPerEpoch).map { PlanItem(epoch: 0, batch: $0, rank: 0) }
        let before = try items.map { try producer.safetensors($0) }
        #expect(datasets.map(\.batchReaders.openedCount) == [1, 1], "each source opened once for \(items.count) batches")

        // Version 2 adds samples; the plan's pinned samples read as they were.
        try await ingest(datasets[0], [try dir.write("more.jsonl", lines(23..<40, source: 0))])
        #expect(try await datasets[0].version() == 2)
        #expect(try items.map { try producer.safetensors($0) } == before)
        #expect(try items.map { producer.collate(try producer.batchRows($0), as: $0) } == before)
        #expect(datasets.map(\.batchReaders.openedCount) == [1, 1])

        // No kept connection holds a read transaction: a full checkpoint of the WAL completes.
        let busy = try await datasets[0].pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        #expect(busy == 0)

        // A pinned sample removed under the kept connections is refused on the next read.
        let drawn = try #require(plan.sampleIDs(epoch: 0, batch: 0).compactMap { $0 }.first { $0.source == 0 })
        try await datasets[0].pool.write { db in try db.execute(sql: "DELETE FROM samples WHERE _id = ?", arguments: [drawn.id]) }
        #expect {
            try producer.safetensors(items[0])
        } throws: { error in
            (error as? MBDataError)?.code == .invalidDataset && "\(error)".contains("sample \(drawn.id) of the plan is missing")
        }
    }

    /// One dataset's live batches share the dataset's kept connections with every other
    /// producer over it: two loaders' producers, one after the other, open one connection.
    @Test func producersOfOneDatasetShareItsKeptConnections() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("t.mbdb"), create: true)
        try await ingest(dataset, [try dir.write("t.jsonl", Self.rows(0..<20, source: 0))], schema: try schema(Self.tokens))
        let plan = try await dataset.plan(PlanParameters(seed: 1, batchSize: 4))
        var read: [[UInt8]] = []
        for _ in 0..<2 {
            let producer = try await LiveBatchProducer(dataset: dataset, plan: plan)
            read.append(contentsOf: try (0..<5).map { try producer.safetensors(PlanItem(epoch: 0, batch: $0, rank: 0)) })
        }
        #expect(read[0..<5] == read[5...] && dataset.batchReaders.openedCount == 1)
        // Releasing the caches keeps the connections: the next reads are the same, on the same one.
        dataset.releaseMemory()
        let producer = try await LiveBatchProducer(dataset: dataset, plan: plan)
        #expect(try (0..<5).map { try producer.safetensors(PlanItem(epoch: 0, batch: $0, rank: 0)) } == Array(read[0..<5]))
        #expect(dataset.batchReaders.openedCount == 1)
    }

    /// A batch reader's page cache is sized to the file: its table's interior pages (which every
    /// lookup walks) twice over and a little more, within 256 KiB…4 MiB, not the pool's 4 MiB
    /// whatever the file: shuffled reads hit leaves at random, and a larger cache only recycled
    /// colder buffers (Benchmarks/results/packing.md).
    @Test func aBatchReadersPageCacheIsSizedToTheFilesInteriorPages() async throws {
        #expect(BatchReaders.cacheKiB(pageCount: 0) == 256)
        #expect(BatchReaders.cacheKiB(pageCount: 37_815) == 37_815 * 24 / 1024 + 128)
        #expect(BatchReaders.cacheKiB(pageCount: 10_000_000) == Dataset.poolCacheKiB)
        let sizes = [1_000, 20_000, 40_000, 80_000, 160_000, 320_000].map { BatchReaders.cacheKiB(pageCount: $0) }
        #expect(sizes == sizes.sorted() && sizes.first! < sizes.last!)

        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("t.mbdb"), create: true)
        try await ingest(dataset, [try dir.write("t.jsonl", Self.rows(0..<20, source: 0))], schema: try schema(Self.tokens))
        let (pages, cache) = try dataset.batchReaders.read(idCount: 1) { db in
            (try Int.fetchOne(db, sql: "PRAGMA page_count") ?? -1, try Int.fetchOne(db, sql: "PRAGMA cache_size") ?? 0)
        }
        #expect(cache == -BatchReaders.cacheKiB(pageCount: pages), "a small file's reader keeps \(-cache) KiB")
        let poolCache = try await dataset.pool.read { db in try Int.fetchOne(db, sql: "PRAGMA cache_size") }
        #expect(poolCache == -Dataset.poolCacheKiB, "the pool's connections keep theirs")
    }
}
