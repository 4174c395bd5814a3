import Foundation
import MBDataTestSupport
import Testing

@testable import MBData

/// A loader over a mixture of datasets (issue 14 §1): each epoch holds every source's exact
/// share, `_source` names each row's dataset, the global stream is the same for every world,
/// a checkpoint resumes it exactly, and a checkpoint of another mixture is refused.
@Suite struct MixtureLoaderTests {
    /// Three datasets of the same fields — `books` lists them in another order — whose
    /// `value` is `1000 × source + (id − 1)`, so a row shows which dataset and sample it is.
    struct Fixture {
        let directory: TemporaryDirectory
        let datasets: [Dataset]
        static let names = ["web", "code", "books"]
        static let sizes = [50, 17, 5]

        static func make(sizes: [Int] = sizes) async throws -> Fixture {
            let directory = try TemporaryDirectory()
            var datasets: [Dataset] = []
            for (source, size) in sizes.enumerated() {
                let lines = (0..<size).map { index in
                    #"{"value": \#(1000 * source + index), "vec": [\#(index).5, \#(source)], "tokens": [\#((0...(index % 4)).map { String($0 + source) }.joined(separator: ","))]}"#
                }
                let path = try directory.write("\(names[source]).jsonl", lines.joined(separator: "\n") + "\n")
                let dataset = try Dataset(path: directory.path("\(names[source]).mbdb"), create: true)
                try await ingest(dataset, [path], schema: try schema(source == 2 ? reorderedSchemaJSON : schemaJSON))
                datasets.append(dataset)
            }
            return Fixture(directory: directory, datasets: datasets)
        }

        func components(_ weights: [MixtureWeight]) -> [MixtureComponent] {
            zip(datasets, weights).map { MixtureComponent(dataset: $0, weight: $1) }
        }
    }

    static let schemaJSON = """
        {"name": "m", "fields": [
          {"name": "value", "dtype": "int64"},
          {"name": "vec", "dtype": "float32", "shape": [2]},
          {"name": "tokens", "dtype": "int32", "shape": [null]}]}
        """
    static let reorderedSchemaJSON = """
        {"name": "other", "fields": [
          {"name": "tokens", "dtype": "int32", "shape": [null]},
          {"name": "value", "dtype": "int64"},
          {"name": "vec", "dtype": "float32", "shape": [2]}]}
        """

    typealias Row = MixtureRow
    typealias Recorder = BatchRecorder

    static func configuration(
        _ fixture: Fixture, _ weights: [MixtureWeight], epochSize: Int? = nil, batchSize: Int = 4, world: Int = 1, rank: Int = 0,
        tail: TailPolicy = .pad, epochs: Range<Int> = 0..<3
    ) -> MultiBatchLoader.Configuration {
        var configuration = MultiBatchLoader.Configuration(plan: PlanParameters(seed: 11, batchSize: batchSize, world: world, tail: tail), epochs: epochs)
        configuration.mixture = fixture.components(weights)
        configuration.epochSize = epochSize
        configuration.rank = rank
        configuration.concurrency = 2
        return configuration
    }

    static func run(_ configuration: MultiBatchLoader.Configuration, resumingFrom checkpoint: LoaderCheckpoint? = nil) async throws -> Recorder {
        let recorder = Recorder()
        try await MultiBatchLoader(configuration: configuration, resumingFrom: checkpoint).run(trainer: recorder)
        #expect(await recorder.sourcesAreInt32, "_source is int32")
        return recorder
    }

    /// Hand-computed draws per epoch for sources of 50, 17 and 5 samples.
    static let weightSets: [(weights: [MixtureWeight], epochSize: Int?, counts: [Int])] = [
        ([0.6, 0.25, 0.15], 40, [24, 10, 6]),
        ([0.6, 0.25, 0.15], 97, [58, 24, 15]),  // 58.2, 24.25, 14.55: the one left over to the largest remainder
        ([0.6, 0.25, 0.15], nil, [43, 18, 11]),  // the sizes' sum, 72: 43.2, 18, 10.8
        ([1, 1, 1], 10, [4, 3, 3]),  // ties to the lower source
        ([.repeat(2), .repeat(1), .repeat(0.5)], nil, [100, 17, 3]),  // 2.5 rounds away from zero
        ([.choose(3), .choose(40), .choose(12)], nil, [3, 40, 12]),  // below web's size, above code's and books'
        ([.repeat(0.1), .choose(30), .repeat(3)], nil, [5, 30, 15]),
    ]

    @Test(arguments: weightSets.indices)
    func everyEpochHoldsEachSourcesExactShareAndSourceNamesTheDataset(set: Int) async throws {
        let fixture = try await Fixture.make()
        let (weights, epochSize, counts) = Self.weightSets[set]
        let epochs = try await Self.run(Self.configuration(fixture, weights, epochSize: epochSize)).epochs()
        #expect(epochs.keys.sorted() == [0, 1, 2])
        var seen = [[Int64: Int]](repeating: [:], count: 3)
        for (epoch, rows) in epochs {
            let found = (0..<3).map { source in rows.filter { $0.source == source }.count }
            #expect(found == counts, "epoch \(epoch) of weight set \(set)")
            for row in rows {
                #expect(row.value == 1000 * Int64(row.source) + row.id - 1, "_source and _id name the row's dataset and sample")
                seen[Int(row.source)][row.id, default: 0] += 1
            }
        }
        for (source, shown) in seen.enumerated() where counts[source] > 0 {
            // Three epochs walk one stream of passes: no sample is shown again before all were.
            let total = 3 * counts[source]
            let size = Fixture.sizes[source]
            #expect(shown.values.allSatisfy { $0 == total / size || $0 == total / size + 1 }, "source \(source): \(shown.values.sorted())")
            #expect(shown.count == min(size, total))
        }
    }

    @Test func theGlobalStreamIsTheSameForWorlds1248() async throws {
        let fixture = try await Fixture.make()
        let weights: [MixtureWeight] = [0.5, 0.3, 0.2]
        var streams: [Int: [Row]] = [:]
        for world in [1, 2, 4, 8] {
            var byItem: [PlanItem: [Row]] = [:]
            for rank in 0..<world {
                let recorder = try await Self.run(Self.configuration(fixture, weights, epochSize: 61, batchSize: 8, world: world, rank: rank, epochs: 0..<2))
                byItem.merge(await recorder.rows) { old, _ in old }
            }
            streams[world] = byItem.keys.sorted { ($0.epoch, $0.batch, $0.rank) < ($1.epoch, $1.batch, $1.rank) }.flatMap { byItem[$0]! }
        }
        #expect(streams[1]!.count == 2 * 64, "61 draws padded to 8 batches of 8, twice")
        for world in [2, 4, 8] { #expect(streams[world] == streams[1], "world \(world)") }
    }

    @Test func aResumedRunEqualsTheUninterruptedOneLiveAndFromShards() async throws {
        let fixture = try await Fixture.make()
        let configuration = Self.configuration(fixture, [0.6, 0.25, 0.15], epochSize: 45, tail: .drop)
        let expected = try await Self.run(configuration).bytes
        #expect(expected.count == 3 * 11)

        let out = fixture.directory.path("shards")
        let plan = try await MixtureBatchPlan.resolve(configuration.mixture, epochSize: 45, parameters: configuration.plan)
        _ = try await ShardWriter.writeMixture(plan: plan, datasets: fixture.datasets, epochs: 0..<3, to: out)
        let fromShards = Recorder()
        try await MultiBatchLoader(shards: out, configuration: configuration).run(trainer: fromShards)
        #expect(await fromShards.bytes == expected, "shards hold the live stream")

        var generator = SystemRandomNumberGenerator()
        for fromShardsToo in [false, true, false, true] {
            let cut = Int.random(in: 1..<expected.count, using: &generator)
            let first = Recorder(stopAfter: cut)
            let loader =
                fromShardsToo
                ? try await MultiBatchLoader(shards: out, configuration: configuration) : try await MultiBatchLoader(configuration: configuration)
            try await loader.run(trainer: first)
            let checkpoint = await loader.checkpoint()
            #expect(checkpoint.mixture?.sources.map(\.name) == Fixture.names)
            let rest = Recorder()
            let resumed =
                fromShardsToo
                ? try await MultiBatchLoader(shards: out, configuration: configuration, resumingFrom: checkpoint)
                : try await MultiBatchLoader(configuration: configuration, resumingFrom: checkpoint)
            try await resumed.run(trainer: rest)
            let finished = await first.bytes.filter { checkpoint.isFinished(epoch: $0.key.epoch, batch: $0.key.batch) }
            let after = await rest.bytes
            #expect(Set(finished.keys).isDisjoint(with: Set(after.keys)), "cut at \(cut): nothing repeated")
            #expect(finished.merging(after) { old, _ in old } == expected, "cut at \(cut) (shards: \(fromShardsToo)): nothing lost, the same bytes")
        }
    }

    @Test func aResumedRunStaysPinnedToItsSourcesVersions() async throws {
        let fixture = try await Fixture.make()
        let configuration = Self.configuration(fixture, [0.6, 0.25, 0.15], epochSize: 40)
        let expected = try await Self.run(configuration).bytes
        let first = Recorder(stopAfter: 7)
        let loader = try await MultiBatchLoader(configuration: configuration)
        try await loader.run(trainer: first)
        let checkpoint = await loader.checkpoint()

        let more = try fixture.directory.write("more.jsonl", #"{"value": 1999, "vec": [0, 1], "tokens": [1]}"# + "\n")
        try await ingest(fixture.datasets[1], [more])
        let rest = Recorder()
        try await MultiBatchLoader(configuration: configuration, resumingFrom: checkpoint).run(trainer: rest)
        let finished = await first.bytes.filter { checkpoint.isFinished(epoch: $0.key.epoch, batch: $0.key.batch) }
        #expect(finished.merging(await rest.bytes) { old, _ in old } == expected, "code stays at the checkpoint's version")

        let fresh = try await MultiBatchLoader(configuration: configuration)
        #expect(await fresh.checkpoint().mixture?.sources[1].datasetVersion == 2, "a new run pins code's new version")
        #expect(await fresh.checkpoint().planFingerprint != checkpoint.planFingerprint)
    }

    @Test func aCheckpointOfAnotherMixtureIsRefusedNamingWhatDiffers() async throws {
        let fixture = try await Fixture.make()
        let configuration = Self.configuration(fixture, [0.6, 0.25, 0.15], epochSize: 40)
        let loader = try await MultiBatchLoader(configuration: configuration)
        try await loader.run(trainer: Recorder(stopAfter: 3))
        let checkpoint = await loader.checkpoint()

        var reweighted = configuration
        reweighted.mixture[0].weight = 0.5
        await #expect { try await MultiBatchLoader(configuration: reweighted, resumingFrom: checkpoint) } throws: { error in
            (error as? MBDataError)?.matches(.invalidArgument, "another mixture", "'web' the weight 0.6", "asked for 0.5") == true
        }
        var fewer = configuration
        fewer.mixture.removeLast()
        await #expect { try await MultiBatchLoader(configuration: fewer, resumingFrom: checkpoint) } throws: { error in
            (error as? MBDataError)?.matches(.invalidArgument, "draws from web, code, books", "from web, code") == true
        }
        var longer = configuration
        longer.epochSize = 41
        await #expect { try await MultiBatchLoader(configuration: longer, resumingFrom: checkpoint) } throws: { error in
            (error as? MBDataError)?.matches(.invalidArgument, "epochs of 40 draws", "41") == true
        }
        var single = configuration
        single.mixture = []
        single.epochSize = nil
        await #expect { try await MultiBatchLoader(dataset: fixture.datasets[0], configuration: single, resumingFrom: checkpoint) } throws: { error in
            (error as? MBDataError)?.matches(.invalidArgument, "over a mixture of web, code, books", "reads one dataset") == true
        }
        let singleCheckpoint = try await MultiBatchLoader(dataset: fixture.datasets[0], configuration: single).checkpoint()
        await #expect { try await MultiBatchLoader(configuration: configuration, resumingFrom: singleCheckpoint) } throws: { error in
            (error as? MBDataError)?.matches(.invalidArgument, "over one dataset", "a mixture of web, code, books") == true
        }
    }

    @Test func sourcesWithOtherFieldsAreRefusedNamingTheSourceAndField() async throws {
        let fixture = try await Fixture.make()
        let other = try Dataset(path: fixture.directory.path("odd.mbdb"), create: true)
        let source = try fixture.directory.write("odd.jsonl", #"{"value": 1.5, "vec": [0, 1], "tokens": [1]}"# + "\n")
        try await ingest(other, [source], schema: try schema(Self.schemaJSON.replacingOccurrences(of: #""value", "dtype": "int64""#, with: #""value", "dtype": "float64""#)))
        let components = [MixtureComponent(dataset: fixture.datasets[0], weight: 1), MixtureComponent(dataset: other, weight: 1)]
        await #expect {
            try await MixtureBatchPlan.resolve(components, epochSize: nil, parameters: PlanParameters(batchSize: 2))
        } throws: { error in
            (error as? MBDataError)?.matches(.invalidArgument, "source 'odd'", "value", "float64") == true
        }
        await #expect {
            try await MultiBatchLoader(configuration: Self.configuration(fixture, [0.5, 0.5, 0], epochSize: 8))
        } throws: { error in
            (error as? MBDataError)?.matches(.invalidArgument, "weight 0.0 must be positive") == true
        }
    }
}
