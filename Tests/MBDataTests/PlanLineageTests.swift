import Foundation
import MBDataTestSupport
import Testing

@testable import MBData

/// `PlanLineage`, the logic of `mbdata explain`: a step's entries are the samples its
/// batches hold (the collated `_id` tensors say so), and a sample's appearances are the
/// steps and rows that hold it — every token of it once when nothing is dropped.
@Suite struct PlanLineageTests {
    static func lineage(packing: PackingSpec? = nil, world: Int = 2, tail: TailPolicy = .drop) async throws -> (TemporaryDirectory, PlanLineage) {
        let directory = try TemporaryDirectory()
        let dataset = try Dataset(path: try await TokenDataset.make(in: directory))
        let parameters = PlanParameters(seed: 7, batchSize: 4, world: world, tail: tail)
        return (directory, try await PlanLineage.make(dataset: dataset, name: "tokens", parameters: parameters, packing: packing))
    }

    @Test func aStepsEntriesAreItsBatchesSamplesWithTheirKeys() async throws {
        let (directory, lineage) = try await Self.lineage()
        defer { withExtendedLifetime(directory) {} }
        #expect(try lineage.sourceIndex(named: nil) == 0)
        #expect { try lineage.sourceIndex(named: "tokens") } throws: { ($0 as? MBDataError)?.matches(.invalidArgument, "a mixture's plan only") == true }
        let plan = lineage.plan
        for step in [0, 17, plan.plan.batchesPerEpoch - 1] {
            let batch = try await lineage.batch(epoch: 3, step: step)
            let expected = (0..<2).flatMap { plan.sampleIDs(epoch: 3, batch: step, rank: $0).compactMap { $0 } }
            #expect(batch.entries.map(\.id) == expected)
            #expect(batch.entries.allSatisfy { $0.key == "s\($0.id - 1)" && $0.dataset == "tokens" && $0.segment == nil })
            #expect(batch.entries.map(\.rank) == [0, 0, 1, 1] && batch.entries.map(\.row) == [0, 1, 0, 1])
            for entry in batch.entries {
                #expect(try await lineage.appearances(epoch: 3, id: entry.id) == [entry], "the inverse finds the same place")
            }
        }
        let rankOne = try await lineage.batch(epoch: 3, step: 5, rank: 1)
        #expect(rankOne.ranks == [1] && rankOne.entries.map(\.id) == plan.sampleIDs(epoch: 3, batch: 5, rank: 1).compactMap { $0 })
        // 300 samples in batches of 4: nothing dropped; every sample appears exactly once.
        var steps: [Int] = []
        for id in plan.ids { steps += try await lineage.appearances(epoch: 3, id: id).map(\.step) }
        #expect(steps.count == 300 && Set(steps).count == 75)
        #expect(try await lineage.id(key: "s41") == 42)
        #expect(try await lineage.id(key: "nobody") == nil)
        await #expect(throws: MBDataError.self) { try await lineage.batch(epoch: 3, step: 75) }
        await #expect(throws: MBDataError.self) { try await lineage.batch(epoch: 3, step: 0, rank: 2) }
    }

    @Test func aPackedStepsEntriesAreItsRowsSegmentsAsTheBatchCollatesThem() async throws {
        let spec = try PackingSpec(field: "tokens", rowLength: 64, window: 16)
        let (directory, lineage) = try await Self.lineage(packing: spec, tail: .pad)
        defer { withExtendedLifetime(directory) {} }
        let packed = try #require(lineage.packed)
        let producer = try await PackedBatchProducer(dataset: lineage.dataset, plan: packed)
        let batches = try await lineage.batchesPerEpoch(epoch: 1)
        #expect(batches == producer.batchesPerEpoch(epoch: 1))
        var tokensSeen: [Int64: Int] = [:]
        for step in 0..<batches {
            let batch = try await lineage.batch(epoch: 1, step: step)
            #expect(batch.rowLength == 64 && batch.rowsPerRank == 2)
            for rank in 0..<2 {
                let buffer = try producer.collated(PlanItem(epoch: 1, batch: step, rank: rank)).buffer
                let collated = try #require(try Batch(epoch: 1, index: step, rank: rank, safetensors: buffer)["_id"])
                let width = collated.shape[1]
                let values = collated.int64s()
                for entry in batch.entries where entry.rank == rank {
                    let segment = try #require(entry.segment)
                    #expect(values[entry.row * width + segment - 1] == entry.id, "step \(step) rank \(rank) row \(entry.row)")
                    #expect(entry.key == "s\(entry.id - 1)")
                }
                let collatedSegments = values.filter { $0 >= 0 }.count
                #expect(collatedSegments == batch.entries.filter { $0.rank == rank }.count)
            }
            for entry in batch.entries { tokensSeen[entry.id, default: 0] += entry.length ?? 0 }
        }
        // Under tail=pad and split, every token of every sample is in one row of the epoch.
        for (index, id) in lineage.plan.ids.enumerated() {
            let appearances = try await lineage.appearances(epoch: 1, id: id)
            let length = TokenDataset.tokens(index).count
            #expect(appearances.reduce(0) { $0 + ($1.length ?? 0) } == length, "sample \(id)")
            #expect((tokensSeen[id] ?? 0) == length)
            #expect(appearances.compactMap(\.offset).sorted() == Array(stride(from: 0, to: length, by: 64)), "each piece once")
            for appearance in appearances {
                let batch = try await lineage.batch(epoch: 1, step: appearance.step, rank: appearance.rank)
                #expect(batch.entries.contains(appearance))
            }
        }
        let efficiency = try #require(try await lineage.batch(epoch: 1, step: 0).efficiency)
        #expect(efficiency > 0 && efficiency <= 1)
    }

    @Test func aShardSetsLineageIsItsPlansAndAChangedDatasetIsRefused() async throws {
        let spec = try PackingSpec(field: "tokens", rowLength: 64, window: 16)
        let (directory, lineage) = try await Self.lineage(packing: spec)
        let packed = try #require(lineage.packed)
        let out = directory.path("shards")
        _ = try await ShardWriter.writePacked(dataset: lineage.dataset, plan: packed, epochs: 0..<2, to: out)
        let fromShards = try await PlanLineage.make(shards: ShardSet(directory: out), dataset: lineage.dataset, name: "tokens")
        #expect(fromShards.packed?.fingerprint == packed.fingerprint)
        #expect(try await fromShards.batch(epoch: 1, step: 2) == lineage.batch(epoch: 1, step: 2))

        let other = try TemporaryDirectory()
        let otherDataset = try Dataset(path: try await TokenDataset.make(in: other, count: 200))
        await #expect(throws: MBDataError.self, "shards of other content") {
            _ = try await PlanLineage.make(shards: ShardSet(directory: out), dataset: otherDataset, name: "tokens")
        }
    }

    /// A mixture's step: each row's source, `_id`, and the pass over its source its draw
    /// belongs to, as the plan draws them; the inverse finds every place a sample of a
    /// source repeated within the epoch appears.
    @Test func aMixturesStepNamesEachRowsSourceIdAndPass() async throws {
        let fixture = try await MixtureLoaderTests.Fixture.make()
        // 50 + 17 + 13 draws: books' 5 samples are drawn 2.6 times an epoch.
        let weights: [MixtureWeight] = [.repeat(1), .repeat(1), .repeat(2.6)]
        let lineage = try await PlanLineage.make(
            mixture: fixture.components(weights), epochSize: nil, parameters: PlanParameters(seed: 3, batchSize: 8, world: 2, tail: .pad))
        let plan = try #require(lineage.mixture)
        #expect(lineage.sources.map(\.name) == MixtureLoaderTests.Fixture.names && lineage.packed == nil)
        var booksPasses = Set<Int>()
        for step in 0..<plan.plan.batchesPerEpoch {
            let batch = try await lineage.batch(epoch: 2, step: step)
            let expected = (0..<2).flatMap { plan.sampleIDs(epoch: 2, batch: step, rank: $0).compactMap { $0 } }
            #expect(batch.entries.map { "\($0.source ?? -1):\($0.id)" } == expected.map { "\($0.source):\($0.id)" })
            for entry in batch.entries {
                let draw = plan.mixture.draw(epoch: 2, position: entry.position)
                #expect(entry.pass == draw.pass && entry.dataset == MixtureLoaderTests.Fixture.names[draw.source])
                #expect(try await lineage.appearances(epoch: 2, id: entry.id, source: draw.source).contains(entry), "the inverse finds it")
                if draw.source == 2 { booksPasses.insert(draw.pass) }
            }
        }
        // Epoch 2 of books' stream is entries 26…38 of passes of 5: passes 5, 6 and 7.
        #expect(booksPasses == [5, 6, 7])
        var booksDraws = 0
        for id in lineage.sources[2].plan.ids {
            let places = try await lineage.appearances(epoch: 2, id: id, source: 2)
            #expect((1...3).contains(places.count) && places.map(\.position) == places.map(\.position).sorted())
            booksDraws += places.count
        }
        #expect(booksDraws == 13)
        await #expect(throws: MBDataError.self) { try await lineage.appearances(epoch: 2, id: 1, source: 3) }
    }

    /// A mixture's shard set explains as the mixture its manifest records, its sources
    /// matched to datasets by name; a source without a dataset is refused.
    @Test func aMixtureShardSetsLineageIsItsPlans() async throws {
        let fixture = try await MixtureLoaderTests.Fixture.make()
        let (plan, _, out) = try await MixtureShardTests.written(fixture)
        let shards = try ShardSet(directory: out)
        let fromShards = try await PlanLineage.make(shards: shards, datasets: fixture.datasets.reversed())
        let fromPlan = try await PlanLineage(mixture: plan, datasets: fixture.datasets)
        for step in [0, 5, 10] {
            #expect(try await fromShards.batch(epoch: 1, step: step) == (try await fromPlan.batch(epoch: 1, step: step)))
        }
        await #expect(throws: MBDataError.self) { try await PlanLineage.make(shards: shards, datasets: Array(fixture.datasets.prefix(2))) }
    }
}

