import Foundation
import MBDataTestSupport
import Testing

@testable import MBData

/// Mixtures with packing (issue 14 §1–§3 together): the packer's input is the mixture
/// epoch's draw order, so an epoch's packed rows hold exactly the tokens of its draws — none
/// lost, none repeated, the same per source — each segment with its `_source` and `_id`; the
/// stream is the same for every world; resume is exact live and from shards; lineage names
/// each segment's source.
@Suite struct PackedMixtureTests {
    /// Datasets whose sample i of source s holds tokens `s·1_000_000 + i·1000 + place`, so a
    /// token names its source, sample and place.
    struct Fixture {
        let directory: TemporaryDirectory
        let datasets: [Dataset]
        let lengths: [[Int]]

        static let schemaJSON = """
            {"name": "p", "key": "name", "fields": [
              {"name": "name", "dtype": "string"},
              {"name": "value", "dtype": "int64"},
              {"name": "tokens", "dtype": "int32", "shape": [null]}]}
            """

        static func token(source: Int, index: Int, place: Int) -> Int64 { Int64(source * 1_000_000 + index * 1000 + place) }

        /// Sources named `s0`, `s1`, … whose samples have `lengths[s]` tokens.
        static func make(lengths: [[Int]]) async throws -> Fixture {
            let directory = try TemporaryDirectory()
            var datasets: [Dataset] = []
            for (source, sourceLengths) in lengths.enumerated() {
                let lines = sourceLengths.enumerated().map { index, length in
                    let tokens = (0..<length).map { String(token(source: source, index: index, place: $0)) }.joined(separator: ",")
                    return #"{"name": "k\#(source)-\#(index)", "value": \#(source * 1000 + index), "tokens": [\#(tokens)]}"#
                }
                let path = try directory.write("s\(source).jsonl", lines.joined(separator: "\n") + "\n")
                let dataset = try Dataset(path: directory.path("s\(source).mbdb"), create: true)
                try await ingest(dataset, [path], schema: try schema(schemaJSON))
                datasets.append(dataset)
            }
            return Fixture(directory: directory, datasets: datasets, lengths: lengths)
        }

        func components(_ weights: [MixtureWeight]) -> [MixtureComponent] {
            zip(datasets, weights).map { MixtureComponent(dataset: $0, weight: $1) }
        }
    }

    /// One segment of a packed row as a batch shows it.
    struct Segment: Hashable {
        var source: Int
        var id: Int64
        var tokens: [Int64]
    }

    /// Each row's segments, read from `segment_ids`, `positions`, `_id` and `_source`; checks
    /// that positions count 0… within each segment and `value` is the segment's sample's.
    static func rows(_ batch: Batch) throws -> [[Segment]] {
        let tokens = try #require(batch["tokens"])
        let (count, length) = (tokens.shape[0], tokens.shape[1])
        let values = tokens.int64s()
        let segmentIDs = try #require(batch["segment_ids"]).int64s()
        let positions = try #require(batch["positions"]).int64s()
        let idTensor = try #require(batch["_id"])
        let ids = idTensor.int64s()
        let sources = try #require(batch["_source"]).int64s()
        let carried = try #require(batch["value"]).int64s()
        let width = idTensor.shape[1]
        return (0..<count).map { row in
            var segments: [Segment] = []
            for column in 0..<length where segmentIDs[row * length + column] > 0 {
                let j = Int(segmentIDs[row * length + column]) - 1
                if j == segments.count {
                    segments.append(Segment(source: Int(sources[row * width + j]), id: ids[row * width + j], tokens: []))
                    #expect(carried[row * width + j] == Int64(segments[j].source * 1000) + ids[row * width + j] - 1, "value is carried per segment")
                }
                #expect(positions[row * length + column] == Int64(segments[j].tokens.count))
                segments[j].tokens.append(values[row * length + column])
            }
            #expect(ids[(row * width + segments.count)..<(row * width + width)].allSatisfy { $0 == -1 })
            #expect(sources[(row * width + segments.count)..<(row * width + width)].allSatisfy { $0 == -1 })
            return segments
        }
    }

    /// Every token of `epoch`'s packed rows as (source, id, place), checking each segment's
    /// tokens are consecutive places of the sample its `_source` and `_id` name.
    static func packedTokens(_ producer: PackedMixtureBatchProducer, epoch: Int) throws -> [[Int64]] {
        var found: [[Int64]] = []
        let batches = producer.batchesPerEpoch(epoch: epoch)
        for batch in 0..<batches {
            for rank in 0..<producer.plan.parameters.world {
                let item = PlanItem(epoch: epoch, batch: batch, rank: rank)
                for row in try rows(Batch(epoch: epoch, index: batch, rank: rank, safetensors: producer.collated(item).buffer)) {
                    for segment in row {
                        let base = Fixture.token(source: segment.source, index: Int(segment.id) - 1, place: 0)
                        let first = Int(segment.tokens[0] - base)
                        #expect(segment.tokens == (0..<segment.tokens.count).map { base + Int64(first + $0) })
                        found += (0..<segment.tokens.count).map { [Int64(segment.source), segment.id, Int64(first + $0)] }
                    }
                }
            }
        }
        return found
    }

    @Test("an epoch of a packed mixture holds every token of its draws once, per source as unpacked (random lengths and weights)")
    func noTokenLostOrRepeated() async throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var random = SeededGenerator(seed: seed)
        for trial in 0..<6 {
            let rowLength = 16
            let sources = Int.random(in: 1...3, using: &random)
            let shape = Int.random(in: 0..<3, using: &random)
            let lengths = (0..<sources).map { _ in
                (0..<Int.random(in: 1...20, using: &random)).map { _ -> Int in
                    switch shape {
                    case 0: Int.random(in: 0...(2 * rowLength + 3), using: &random)
                    case 1: Int.random(in: 1...5, using: &random)
                    default: Int.random(in: 0...100, using: &random) < 80 ? Int.random(in: 1...8, using: &random) : Int.random(in: 17...40, using: &random)
                    }
                }
            }
            let fixture = try await Fixture.make(lengths: lengths)
            let (weights, epochSize): ([MixtureWeight], Int?) =
                switch Int.random(in: 0..<3, using: &random) {
                case 0: (lengths.map { _ in MixtureWeight.proportion(Double.random(in: 0.1...1, using: &random)) }, Int.random(in: 8...60, using: &random))
                case 1: (lengths.map { _ in MixtureWeight.repeat(Double.random(in: 0.5...2.5, using: &random)) }, nil)
                default: (lengths.map { MixtureWeight.choose(Int.random(in: 1...($0.count * 2 + 3), using: &random)) }, nil)
                }
            let spec = try PackingSpec(
                field: "tokens", rowLength: rowLength, window: Int.random(in: 1...8, using: &random), overlong: Bool.random(using: &random) ? .split : .drop)
            let parameters = PlanParameters(seed: UInt64(trial), batchSize: 4, tail: .pad)
            let context = "seed \(seed) trial \(trial): lengths \(lengths), weights \(weights), epoch size \(epochSize.map(String.init) ?? "-"), \(spec.packer)"
            let plan: PackedMixturePlan
            do {
                plan = try await PackedMixturePlan.resolve(fixture.components(weights), epochSize: epochSize, parameters: parameters, packing: spec)
            } catch let error as MBDataError where error.message.contains("no draw") {
                continue
            }
            let producer = try await PackedMixtureBatchProducer(plan: plan, datasets: fixture.datasets)
            let unpacked = plan.base
            for epoch in 0..<2 {
                var expected: [[Int64]] = []
                for batch in 0..<unpacked.plan.batchesPerEpoch {
                    for case let (source, id)? in unpacked.sampleIDs(epoch: epoch, batch: batch) {
                        let length = lengths[source][Int(id) - 1]
                        guard spec.packer.overlong == .split || length <= rowLength else { continue }
                        expected += (0..<length).map { [Int64(source), id, Int64($0)] }
                    }
                }
                let found = try Self.packedTokens(producer, epoch: epoch)
                #expect(found.sorted { $0.lexicographicallyPrecedes($1) } == expected.sorted { $0.lexicographicallyPrecedes($1) }, "\(context), epoch \(epoch)")
                let perSource = (0..<sources).map { source in found.count(where: { $0[0] == Int64(source) }) }
                #expect(perSource == (0..<sources).map { source in expected.count(where: { $0[0] == Int64(source) }) }, "\(context)")
                let layout = producer.layout(epoch: epoch)
                #expect(layout.statistics.tokens == expected.count && layout.statistics.samples == unpacked.mixture.epochSize, "\(context)")
                #expect(plan.batchesPerEpoch(layout) <= plan.mostBatchesPerEpoch, "\(context)")
            }
        }
    }

    static let lengths = [[3, 9, 0, 14, 5, 20, 7, 2, 11, 6, 1, 15], [4, 4, 12, 8, 30, 1, 9], [2, 6, 10]]
    static let weights: [MixtureWeight] = [0.5, 0.3, 0.2]

    static func spec() throws -> PackingSpec { try PackingSpec(field: "tokens", rowLength: 16, window: 4) }

    static func configuration(_ fixture: Fixture, world: Int = 1, rank: Int = 0, tail: TailPolicy = .drop) -> MultiBatchLoader.Configuration {
        var configuration = MultiBatchLoader.Configuration(plan: PlanParameters(seed: 5, batchSize: 8, world: world, tail: tail), epochs: 0..<3)
        configuration.mixture = fixture.components(weights)
        configuration.epochSize = 60
        configuration.rank = rank
        configuration.concurrency = 2
        return configuration
    }

    @Test("worlds of 1, 2, 4 and 8 ranks give the same global stream of packed mixture rows")
    func worldIndependence() async throws {
        let fixture = try await Fixture.make(lengths: Self.lengths)
        for tail in [TailPolicy.drop, .pad] {
            var streams: [[[Segment]]] = []
            for world in [1, 2, 4, 8] {
                let configuration = Self.configuration(fixture, world: world, tail: tail)
                let plan = try await PackedMixturePlan.resolve(
                    configuration.mixture, epochSize: configuration.epochSize, parameters: configuration.plan, packing: Self.spec())
                let producer = try await PackedMixtureBatchProducer(plan: plan, datasets: fixture.datasets)
                var stream: [[Segment]] = []
                for epoch in 0..<2 {
                    for batch in 0..<producer.batchesPerEpoch(epoch: epoch) {
                        for rank in 0..<world {
                            let buffer = try producer.collated(PlanItem(epoch: epoch, batch: batch, rank: rank)).buffer
                            stream += try Self.rows(Batch(epoch: epoch, index: batch, rank: rank, safetensors: buffer))
                        }
                    }
                }
                streams.append(stream)
            }
            #expect(streams[0].count > 8)
            #expect(streams.allSatisfy { $0 == streams[0] }, "tail \(tail)")
        }
    }

    typealias Recorder = BatchRecorder

    @Test("a resumed packed mixture run equals the uninterrupted one, live and from shards, at random cuts")
    func resumeLiveAndFromShards() async throws {
        let fixture = try await Fixture.make(lengths: Self.lengths)
        let spec = try Self.spec()
        let configuration = Self.configuration(fixture)
        let whole = Recorder()
        try await MultiBatchLoader(packing: spec, configuration: configuration).run(trainer: whole)
        let expected = await whole.bytes
        #expect(expected.count >= 6)

        let out = fixture.directory.path("shards")
        let plan = try await PackedMixturePlan.resolve(configuration.mixture, epochSize: 60, parameters: configuration.plan, packing: spec)
        let manifest = try await ShardWriter.writePackedMixture(plan: plan, datasets: fixture.datasets, epochs: 0..<3, to: out)
        #expect(manifest.mixture?.sources.map(\.name) == ["s0", "s1", "s2"] && manifest.packing?.field == "tokens")
        #expect(manifest.dataset.fingerprint == plan.fingerprint && plan.fingerprint != plan.base.fingerprint)
        #expect(try ShardSet(directory: out).manifest == manifest, "the packed mixture manifest validates on open")
        let report = try await ShardSet(directory: out).verify()
        #expect(report.isValid && report.samplesChecked > 0, "verify checks the packed mixture's rows: \(report.problems)")

        var configured = configuration
        configured.packing = spec
        for fromShards in [false, true] {
            let recorder = Recorder()
            let loader = fromShards
                ? try await MultiBatchLoader(shards: out, configuration: configured) : try await MultiBatchLoader(configuration: configured)
            try await loader.run(trainer: recorder)
            #expect(await recorder.bytes == expected, "the configuration's packing reads the same rows, shards \(fromShards)")
        }

        var generator = SystemRandomNumberGenerator()
        for fromShards in [false, true] {
            let cut = Int.random(in: 1..<expected.count, using: &generator)
            func loader(_ checkpoint: LoaderCheckpoint?) async throws -> MultiBatchLoader {
                fromShards
                    ? try await MultiBatchLoader(shards: out, configuration: configuration, resumingFrom: checkpoint)
                    : try await MultiBatchLoader(packing: spec, configuration: configuration, resumingFrom: checkpoint)
            }
            let first = Recorder(stopAfter: cut)
            let interrupted = try await loader(nil)
            try await interrupted.run(trainer: first)
            let checkpoint = await interrupted.checkpoint()
            #expect(checkpoint.mixture?.sources.map(\.name) == ["s0", "s1", "s2"])
            let rest = Recorder()
            try await loader(checkpoint).run(trainer: rest)
            let finished = await first.bytes.filter { checkpoint.isFinished(epoch: $0.key.epoch, batch: $0.key.batch) }
            let after = await rest.bytes
            #expect(Set(finished.keys).isDisjoint(with: Set(after.keys)), "cut at \(cut), shards \(fromShards): nothing repeated")
            #expect(finished.merging(after) { old, _ in old } == expected, "cut at \(cut), shards \(fromShards): nothing lost, the same bytes")
        }

        let live = try await MultiBatchLoader(packing: spec, configuration: configuration)
        let checkpoint = await live.checkpoint()
        await #expect(throws: MBDataError.self, "a packed mixture's checkpoint does not resume the unpacked mixture") {
            try await MultiBatchLoader(configuration: configuration, resumingFrom: checkpoint)
        }
        var repacked = configuration
        repacked.epochs = 0..<1
        await #expect(throws: MBDataError.self, "nor one packed otherwise") {
            try await MultiBatchLoader(packing: PackingSpec(field: "tokens", rowLength: 32, window: 4), configuration: repacked, resumingFrom: checkpoint)
        }
        await #expect(throws: MBDataError.self, "a packed mixture needs its datasets, not one of them") {
            try await MultiBatchLoader(dataset: fixture.datasets[0], packing: spec, configuration: configuration)
        }
    }

    @Test("an unpacked mixture set is not served to a packed mixture plan, nor the reverse")
    func packingOfAMixtureSetIsChecked() async throws {
        let fixture = try await Fixture.make(lengths: Self.lengths)
        let configuration = Self.configuration(fixture)
        let packed = try await PackedMixturePlan.resolve(configuration.mixture, epochSize: 60, parameters: configuration.plan, packing: Self.spec())
        let out = fixture.directory.path("mix")
        _ = try await ShardWriter.writeMixture(plan: packed.base, datasets: fixture.datasets, epochs: 0..<1, to: out)
        let unpackedManifest = try ShardSet(directory: out).manifest
        #expect(unpackedManifest.packing == nil, "an unpacked mixture set reads as before")
        #expect(unpackedManifest.dataset.fingerprint == packed.base.fingerprint, "and keeps the fingerprint a 1.2 set has")
        #expect(!unpackedManifest.serves(ShardRequirement(plan: packed, epochs: 0..<1)))
        let packedOut = fixture.directory.path("packed")
        let packedManifest = try await ShardWriter.writePackedMixture(plan: packed, datasets: fixture.datasets, epochs: 0..<1, to: packedOut)
        #expect(packedManifest.serves(ShardRequirement(plan: packed, epochs: 0..<1)))
        var unpacked = ShardRequirement(parameters: configuration.plan, epochs: 0..<1)
        unpacked.mixture = .pinned(packed.base.pinned)
        unpacked.requirePacking(nil)
        #expect(!packedManifest.serves(unpacked) && unpackedManifest.serves(unpacked))
        let other = try PackingSpec(field: "tokens", rowLength: 32, window: 4)
        unpacked.requirePacking(other)
        #expect(!packedManifest.serves(unpacked))
        unpacked.requirePacking(try Self.spec())
        #expect(packedManifest.serves(unpacked))

        var edited = packedManifest
        edited.packing?.rowLength = 32
        #expect { try edited.validate() } throws: { error in
            (error as? MBDataError)?.code == .corruptData && "\(error)".contains("mixture plan's fingerprint")
        }
    }

    @Test("lineage of a packed mixture step names each segment's source, _id and place, and finds a sample's rows")
    func lineage() async throws {
        let fixture = try await Fixture.make(lengths: Self.lengths)
        let configuration = Self.configuration(fixture, world: 2)
        let spec = try Self.spec()
        let plan = try await PackedMixturePlan.resolve(configuration.mixture, epochSize: 60, parameters: configuration.plan, packing: spec)
        let out = fixture.directory.path("shards")
        _ = try await ShardWriter.writePackedMixture(plan: plan, datasets: fixture.datasets, epochs: 0..<2, to: out)
        let live = try await PlanLineage.make(mixture: configuration.mixture, epochSize: 60, parameters: configuration.plan, packing: spec)
        let fromShards = try await PlanLineage.make(shards: try ShardSet(directory: out), datasets: fixture.datasets)
        #expect(try live.sourceIndex(named: "s2") == 2)
        #expect { try live.sourceIndex(named: nil) } throws: { ($0 as? MBDataError)?.matches(.invalidArgument, "one of s0, s1, s2") == true }
        #expect { try live.sourceIndex(named: "s9") } throws: { ($0 as? MBDataError)?.matches(.invalidArgument, "no source 's9'") == true }
        let producer = try await PackedMixtureBatchProducer(plan: plan, datasets: fixture.datasets)
        let step = 1
        for lineage in [live, fromShards] {
            let explained = try await lineage.batch(epoch: 1, step: step)
            #expect(explained.rowLength == 16)
            var segments: [(rank: Int, row: Int, segment: Segment)] = []
            for rank in 0..<2 {
                let buffer = try producer.collated(PlanItem(epoch: 1, batch: step, rank: rank)).buffer
                for (row, rowSegments) in try Self.rows(Batch(epoch: 1, index: step, rank: rank, safetensors: buffer)).enumerated() {
                    segments += rowSegments.map { (rank, row, $0) }
                }
            }
            #expect(explained.entries.count == segments.count)
            for (entry, found) in zip(explained.entries, segments) {
                #expect(entry.dataset == "s\(found.segment.source)" && entry.source == found.segment.source && entry.id == found.segment.id)
                #expect(entry.rank == found.rank && entry.row == found.row && entry.length == found.segment.tokens.count)
                #expect(entry.key == "k\(found.segment.source)-\(found.segment.id - 1)")
                let appearances = try await lineage.appearances(epoch: 1, id: entry.id, source: found.segment.source)
                #expect(appearances.contains { $0.step == step && $0.rank == entry.rank && $0.row == entry.row && $0.segment == entry.segment })
            }
        }
    }
}
