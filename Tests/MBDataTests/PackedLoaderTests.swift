import Foundation
import Testing

@testable import MBData

/// A loader over packed batches, live and from packed shards: the same stream, and a
/// checkpoint taken mid-epoch resumes it exactly.
@Suite struct PackedLoaderTests {
    /// Keeps each delivered batch's packed tensors; asks the loader to stop after `stopAfter`
    /// calls (calls already running still finish, and are kept).
    actor PackedRecorder: Trainer {
        var batches: [PlanItem: [UInt8]] = [:]
        let stopAfter: Int?

        init(stopAfter: Int? = nil) { self.stopAfter = stopAfter }

        func train(_ batch: Batch, context: TrainingContext) async throws {
            let tensors = ["tokens", "segment_ids", "positions", "_id", "label"].map { batch[$0]?.bytes ?? [] }
            batches[PlanItem(epoch: batch.epoch, batch: batch.index, rank: batch.rank)] = tensors.flatMap { $0 }
            if let stopAfter, batches.count == stopAfter { context.stop() }
        }
    }

    static func configuration() -> MultiBatchLoader.Configuration {
        var configuration = MultiBatchLoader.Configuration(plan: PackedPlanTests.parameters(tail: .drop), epochs: 0..<3)
        configuration.concurrency = 2
        return configuration
    }

    @Test func aResumedPackedRunEqualsTheUninterruptedOneLiveAndFromShards() async throws {
        let (dir, dataset) = try await PackedPlanTests.dataset()
        let spec = try PackedPlanTests.spec()
        let configuration = Self.configuration()
        let whole = PackedRecorder()
        try await MultiBatchLoader(dataset: dataset, packing: spec, configuration: configuration).run(trainer: whole)
        let expected = await whole.batches
        let plan = try await dataset.packedPlan(configuration.plan, packing: spec)
        let producer = try await PackedBatchProducer(dataset: dataset, plan: plan)
        let perEpoch = (0..<3).map { producer.batchesPerEpoch(epoch: $0) }
        #expect(expected.count == 3 * perEpoch.min()!, "every epoch serves the shortest epoch's batches")
        #expect(perEpoch.min()! > 0)

        var generator = SystemRandomNumberGenerator()
        let cut = Int.random(in: 1..<expected.count, using: &generator)
        let first = PackedRecorder(stopAfter: cut)
        let loader = try await MultiBatchLoader(dataset: dataset, packing: spec, configuration: configuration)
        try await loader.run(trainer: first)
        let checkpoint = await loader.checkpoint()
        let rest = PackedRecorder()
        try await MultiBatchLoader(dataset: dataset, packing: spec, configuration: configuration, resumingFrom: checkpoint).run(trainer: rest)
        let before = await first.batches
        let after = await rest.batches
        let finished = before.filter { checkpoint.isFinished(epoch: $0.key.epoch, batch: $0.key.batch) }
        #expect(Set(finished.keys).isDisjoint(with: Set(after.keys)), "cut at \(cut): nothing repeated")
        #expect(finished.merging(after) { old, _ in old } == expected, "cut at \(cut): nothing lost, the same bytes")

        let out = dir.path("shards")
        _ = try await ShardWriter.writePacked(dataset: dataset, plan: plan, epochs: 0..<3, to: out)
        let fromShards = PackedRecorder()
        try await MultiBatchLoader(shards: out, configuration: configuration).run(trainer: fromShards)
        #expect(await fromShards.batches == expected)

        let again = try await MultiBatchLoader(dataset: dataset, packing: spec, configuration: configuration)
        #expect(await again.checkpoint().planFingerprint == checkpoint.planFingerprint)
        await #expect(throws: MBDataError.self, "a checkpoint of a packed run does not resume an unpacked one") {
            try await MultiBatchLoader(dataset: dataset, configuration: configuration, resumingFrom: checkpoint)
        }
    }

    @Test func aConfigurationsPackingReadsWhatThePackingArgumentReadsAndShardsMustMatchIt() async throws {
        let (dir, dataset) = try await PackedPlanTests.dataset()
        let spec = try PackedPlanTests.spec()
        var configuration = Self.configuration()
        let byArgument = PackedRecorder()
        try await MultiBatchLoader(dataset: dataset, packing: spec, configuration: configuration).run(trainer: byArgument)
        let expected = await byArgument.batches
        #expect(!expected.isEmpty)

        configuration.packing = spec
        let byConfiguration = PackedRecorder()
        try await MultiBatchLoader(dataset: dataset, configuration: configuration).run(trainer: byConfiguration)
        #expect(await byConfiguration.batches == expected)
        let literal: PackingSpec = ["tokens": 2048]
        #expect(literal == (try PackingSpec(field: "tokens", rowLength: 2048)))

        func refusesThePacking(_ error: any Error) -> Bool {
            (error as? MBDataError)?.parameter == "MultiBatchLoader.Configuration.packing" || (error as? MBDataError)?.parameter == "packing"
        }
        let other = try PackingSpec(field: "tokens", rowLength: 32, window: 16)
        await #expect(performing: { try await MultiBatchLoader(dataset: dataset, packing: other, configuration: configuration) }, throws: refusesThePacking)

        let plan = try await dataset.packedPlan(configuration.plan, packing: spec)
        let packedOut = dir.path("packed")
        _ = try await ShardWriter.writePacked(dataset: dataset, plan: plan, epochs: 0..<3, to: packedOut)
        let fromShards = PackedRecorder()
        try await MultiBatchLoader(shards: packedOut, configuration: configuration).run(trainer: fromShards)
        #expect(await fromShards.batches == expected)
        var otherPacking = configuration
        otherPacking.packing = other
        await #expect(performing: { try await MultiBatchLoader(shards: packedOut, configuration: otherPacking) }, throws: refusesThePacking)

        let unpackedOut = dir.path("unpacked")
        let prefetcher = try await Prefetcher(dataset: dataset, plan: try await dataset.plan(configuration.plan), epochs: 0..<3)
        _ = try await ShardWriter.write(prefetcher, schema: try #require(try await dataset.schema()), to: unpackedOut)
        await #expect(performing: { try await MultiBatchLoader(shards: unpackedOut, configuration: configuration) }, throws: refusesThePacking)
        configuration.packing = nil
        _ = try await MultiBatchLoader(shards: unpackedOut, configuration: configuration)
        _ = try await MultiBatchLoader(shards: packedOut, configuration: configuration)
    }
}
