import Foundation
import Testing

@testable import MBData

/// A mixture written as shards (issue 14 §1, §3): the manifest records the sources, versions
/// and weights, reads back and verifies, an edited mixture member is refused on open, and a
/// reader asking for another mixture is refused with what differs.
@Suite struct MixtureShardTests {
    typealias Fixture = MixtureLoaderTests.Fixture

    static func written(
        _ fixture: Fixture, weights: [MixtureWeight] = [0.6, 0.25, 0.15], epochSize: Int? = 45, world: Int = 2, tail: TailPolicy = .drop
    ) async throws -> (MixtureBatchPlan, ShardManifest, String) {
        let parameters = PlanParameters(seed: 11, batchSize: 4, world: world, tail: tail)
        let plan = try await MixtureBatchPlan.resolve(fixture.components(weights), epochSize: epochSize, parameters: parameters)
        let out = fixture.directory.path("shards")
        let manifest = try await ShardWriter.writeMixture(plan: plan, datasets: fixture.datasets, epochs: 1..<3, to: out, targetShardBytes: 2048)
        return (plan, manifest, out)
    }

    @Test func mixtureShardsHoldTheLiveBatchesAndRecordTheMixture() async throws {
        let fixture = try await Fixture.make()
        let (plan, manifest, out) = try await Self.written(fixture)
        let mixture = try #require(manifest.mixture)
        #expect(mixture.sources.map(\.name) == Fixture.names)
        #expect(mixture.sources.map(\.draws) == [27, 11, 7] && mixture.epochSize == 45)
        #expect(mixture.sources.map(\.samples) == Fixture.sizes && mixture.sources.allSatisfy { $0.version == 1 })
        #expect(mixture.sources.map(\.weight) == [0.6, 0.25, 0.15])
        #expect(manifest.dataset.fingerprint == plan.fingerprint && manifest.dataset.samples == 45 && manifest.dataset.version == 1)
        #expect(manifest.plan.batchesPerEpoch == 11 && manifest.plan.droppedPerEpoch == 1)
        let encoded = String(decoding: try ShardManifest.encoder.encode(manifest), as: UTF8.self)
        #expect(encoded.contains(#""weight" : "0.6""#) && encoded.contains(#""epoch_size" : 45"#), "\(encoded)")

        let shards = try ShardSet(directory: out)
        #expect(shards.manifest == manifest)
        #expect(shards.manifest.shards.count > 1)
        let producer = try await MixtureBatchProducer(plan: plan, datasets: fixture.datasets)
        for (shard, entries) in shards.entries.enumerated() {
            for (index, entry) in entries.enumerated() {
                let item = PlanItem(epoch: Int(entry.epoch), batch: Int(entry.batch), rank: Int(entry.rank))
                let buffer = try shards.batch(shard: shard, entry: index)
                #expect(buffer == producer.collate(try producer.batchRows(item), as: item))
                let reader = try SafetensorsReader(buffer)
                #expect(reader.metadata["sources"] == #"["web","code","books"]"#)
            }
        }
        let report = try await shards.verify()
        #expect(report.isValid, "\(report.problems)")
        #expect(report.batchesChecked == 2 * 11 * 2 && report.samplesChecked == 2 * 44)
        #expect(ShardWriter.upToDate(out, mixture: plan, epochs: 1..<3, configuration: PrefetchConfiguration()) != nil)
        #expect(mixture.summaryLines.joined(separator: "\n").contains("_source 2  books  weight 0.15, 7 draws per epoch of 5 samples"))
    }

    @Test func anEditedMixtureMemberIsRefusedOnOpen() async throws {
        let fixture = try await Fixture.make()
        let (_, manifest, _) = try await Self.written(fixture)
        let edits: [(String, (inout ShardManifest) -> Void)] = [
            ("draws", { $0.mixture!.sources[0].pinned.weight = 0.5 }),
            ("draws", { $0.mixture!.sources[1].draws += 1 }),
            ("draws", { $0.mixture!.sources[2].samples = 4 }),
            ("mixture plan's fingerprint", { $0.plan.parameters.world = 4 }),
            ("not ≥ 1", { $0.mixture!.epochSize = 0 }),
            ("overflow", { $0.plan.firstEpoch = 1 << 31; $0.mixture!.epochSize = 1 << 40 }),
            // A packed mixture's plan fingerprint folds in its packing: a packing member added to
            // an unpacked mixture's manifest contradicts its dataset fingerprint.
            ("mixture plan's fingerprint", { $0.packing = .init(spec: try! PackingSpec(field: "tokens", rowLength: 8), batchesPerEpoch: [1, 1], statistics: PackingStatistics(rowLength: 8)) }),
        ]
        for (message, edit) in edits {
            var edited = manifest
            edit(&edited)
            #expect { try edited.validate() } throws: { error in
                (error as? MBDataError)?.code == .corruptData && "\(error)".contains(message)
            }
        }
    }

    @Test func aReaderAskingForAnotherMixtureIsRefused() async throws {
        let fixture = try await Fixture.make()
        let (plan, _, out) = try await Self.written(fixture)
        var configuration = MixtureLoaderTests.configuration(fixture, [0.6, 0.25, 0.15], epochSize: 45, world: 2, tail: .drop, epochs: 1..<3)
        _ = try await MultiBatchLoader(shards: out, configuration: configuration)

        var reweighted = configuration
        reweighted.mixture[2].weight = 0.2
        await #expect { try await MultiBatchLoader(shards: out, configuration: reweighted) } throws: { error in
            (error as? MBDataError)?.matches(.invalidDataset, "another mixture", "'books' the weight 0.15", "asked for 0.2") == true
        }
        var byName = configuration
        byName.mixture = Fixture.names.map { MixtureComponent(name: $0, weight: 1) }
        byName.epochSize = nil
        await #expect { try await MultiBatchLoader(shards: out, configuration: byName) } throws: { error in
            (error as? MBDataError)?.matches(.invalidDataset, "'web' the weight 0.6", "asked for 1.0") == true
        }
        byName.mixture = zip(Fixture.names, [0.6, 0.25, 0.15] as [MixtureWeight]).map { MixtureComponent(name: $0, weight: $1) }
        _ = try await MultiBatchLoader(shards: out, configuration: byName)
        byName.epochSize = 46
        await #expect { try await MultiBatchLoader(shards: out, configuration: byName) } throws: { error in
            (error as? MBDataError)?.matches(.invalidDataset, "epochs of 45 draws", "46") == true
        }
        var plain = configuration
        plain.mixture = []
        plain.epochSize = nil
        let loader = try await MultiBatchLoader(shards: out, configuration: plain)
        #expect(await loader.checkpoint().mixture == plan.pinned, "a set read as it is still records its mixture")

        let more = try fixture.directory.write("more.jsonl", #"{"value": 1999, "vec": [0, 1], "tokens": [1]}"# + "\n")
        try await ingest(fixture.datasets[1], [more])
        await #expect { try await MultiBatchLoader(shards: out, configuration: configuration) } throws: { error in
            (error as? MBDataError)?.matches(.invalidDataset, "pinned to version 1 of source 'code'", "to version 2") == true
        }
        #expect(ShardWriter.upToDate(out, mixture: try await MixtureBatchPlan.resolve(configuration.mixture, epochSize: 45, parameters: configuration.plan), epochs: 1..<3, configuration: PrefetchConfiguration()) == nil)

        let single = try await fixture.datasets[0].plan(configuration.plan)
        #expect { try ShardSet(directory: out).manifest.check(serves: ShardRequirement(plan: single), source: out) } throws: { error in
            (error as? MBDataError)?.parameter == "mixture" && "\(error)".contains("hold a mixture of web, code, books")
        }
        configuration.mixture = []
        configuration.epochSize = nil
        var unmixed = ShardRequirement(parameters: configuration.plan)
        unmixed.mixture = .weighted(names: ["web"], weights: [1], epochSize: nil)
        let singleOut = fixture.directory.path("single")
        let prefetcher = try await Prefetcher(dataset: fixture.datasets[0], plan: single, epochs: 0..<1)
        _ = try await ShardWriter.write(prefetcher, schema: try #require(try await fixture.datasets[0].schema()), to: singleOut)
        #expect { try ShardSet(directory: singleOut).manifest.check(serves: unmixed, source: singleOut) } throws: { error in
            "\(error)".contains("hold batches of one dataset; a mixture of web was asked for")
        }
    }

    /// A source's facts are held once (`PinnedMixture.Source` inside the manifest's source),
    /// and the manifest's JSON keeps its members: a source as sets written before read, and
    /// written again, the same.
    @Test func aManifestSourceKeepsItsJSONMembers() throws {
        let written = #"""
            {
              "draws" : 27,
              "fingerprint" : "0123456789abcdef",
              "max_id" : 50,
              "name" : "web",
              "samples" : 50,
              "version" : 3,
              "weight" : "0.6"
            }
            """#
        let source = try ShardManifest.decoder.decode(ShardManifest.MixtureInfo.Source.self, from: Data(written.utf8))
        #expect(source.pinned == PinnedMixture.Source(name: "web", datasetVersion: 3, fingerprint: "0123456789abcdef", weight: .proportion(0.6)))
        #expect(source.maxId == 50 && source.samples == 50 && source.draws == 27 && source.version == 3)
        let encoded = try ShardManifest.encoder.encode(source)
        let members = { (data: Data) in try JSONSerialization.jsonObject(with: data) as? NSDictionary }
        #expect(try members(encoded) == (try members(Data(written.utf8))), "\(String(decoding: encoded, as: UTF8.self))")
    }
}

