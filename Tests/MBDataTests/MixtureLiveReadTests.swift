import Foundation
import Testing

@testable import MBData

/// A mixture's live read path gives the bytes of the general one, and its queries are few.
@Suite struct MixtureLiveReadTests {
    /// A mixture's batch read straight from its sources' pages — each source's rows into
    /// their slots, `books`'s fields in another order, `_source` after them — equals the
    /// batch its rows collate to, padding rows included; a batch that draws a sample of a
    /// source twice takes the general path, with the same bytes.
    @Test func aMixturesFixedShapeBatchIsTheCollatedBatch() async throws {
        let dir = try TemporaryDirectory()
        let reordered = #"""
            {"name": "g", "fields": [{"name": "score", "dtype": "float32"}, {"name": "image", "dtype": "uint8", "shape": [2, 3]}, {"name": "label", "dtype": "int64"}]}
            """#
        var datasets: [Dataset] = []
        for (source, (name, size)) in [("web", 23), ("code", 9), ("books", 3)].enumerated() {
            let dataset = try Dataset(path: dir.path("\(name).mbdb"), create: true)
            let rows = (0..<size).map { i in
                "{\"image\": [[\(i % 256), \(source), 2], [3, 4, \(255 - i)]], \"label\": \(1000 * source + i), \"score\": \(Double(i) / 4)}"
            }
            try await ingest(dataset, [try dir.write("\(name).jsonl", rows.joined(separator: "\n"))], schema: try schema(source == 2 ? reordered : LiveReadTests.fixedSchema))
            datasets.append(dataset)
        }
        // books: 3 samples drawn 8 times an epoch, so a batch of 8 may hold one of them twice.
        let weights: [MixtureWeight] = [.choose(20), .choose(9), .choose(8)]
        let components = zip(datasets, weights).map { MixtureComponent(dataset: $0, weight: $1) }
        var direct = 0
        for tail in [TailPolicy.drop, .pad] {
            let plan = try await MixtureBatchPlan.resolve(components, epochSize: nil, parameters: PlanParameters(seed: 5, batchSize: 8, world: 2, tail: tail))
            let producer = try await MixtureBatchProducer(plan: plan, datasets: datasets)
            let reader = try #require(producer.fixedShape)
            for epoch in 0..<3 {
                for batch in 0..<plan.plan.batchesPerEpoch {
                    for rank in 0..<2 {
                        let item = PlanItem(epoch: epoch, batch: batch, rank: rank)
                        let collated = producer.collate(try producer.batchRows(item), as: item)
                        #expect(try producer.safetensors(item) == collated, "tail \(tail) \(item)")
                        let draws = plan.batchDraws(epoch: epoch, batch: batch, rank: rank)
                        let read = try reader.batch(
                            ids: draws.ids, sources: draws.sources, metadata: ["batch": "x"], orders: producer.orders,
                            read: { source, count, body in try datasets[source].batchReaders.read(idCount: count, body) })
                        if read != nil { direct += 1 }
                    }
                }
            }
        }
        #expect(direct > 0, "some batches take the direct path")
        let plan = try await MixtureBatchPlan.resolve(components, epochSize: nil, parameters: PlanParameters(batchSize: 8))
        #expect(try await MixtureBatchProducer(plan: plan, datasets: datasets).orders == [nil, nil, [1, 2, 0]], "books's fields are mapped")
    }

    /// An `IN` list is padded to a power of two (at most 30,000 ids) or, from 8 to 64 ids, a
    /// multiple of 8, so a connection prepares a few dozen queries and reuses them.
    @Test func inListsArePaddedToFewLengths() {
        #expect(
            [1, 2, 3, 4, 5, 8, 9, 38, 40, 63, 64, 65, 16_385, 30_000].map(SampleReader.listLength)
                == [1, 2, 4, 4, 8, 8, 16, 40, 40, 64, 64, 128, 30_000, 30_000])
        let lengths = Set((1...30_000).map(SampleReader.listLength))
        #expect(lengths.count <= 24 && (1...30_000).allSatisfy { SampleReader.listLength($0) >= $0 })
    }
}
