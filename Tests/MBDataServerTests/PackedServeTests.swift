import Foundation
@testable import MBData
import MBDataTestSupport
import MBDataWire
import NIOHTTP1
import Testing

@testable import MBDataClient
@testable import MBDataServer

/// Packed plans through `serve` and the Swift client (issue 14 §2–3): a loader over a serve
/// source with packing gets exactly the local packed loader's batches and resumes exactly.
@Suite struct PackedServeTests {
    static func configuration() -> MultiBatchLoader.Configuration {
        var configuration = MultiBatchLoader.Configuration(plan: PlanParameters(seed: 7, batchSize: 4, tail: .drop), epochs: 0..<3)
        configuration.concurrency = 2
        return configuration
    }

    static func spec() throws -> PackingSpec { try PackingSpec(field: "tokens", rowLength: 64, window: 16) }

    @Test func aPackedLoaderOverServeGetsTheLocalPackedLoadersBatches() async throws {
        let directory = try TemporaryDirectory()
        let path = try await TokenDataset.make(in: directory)
        let local = RecordingTrainer(maxDelayMilliseconds: 1)
        try await MultiBatchLoader(dataset: Dataset(path: path), packing: Self.spec(), configuration: Self.configuration()).run(trainer: local)
        let expected = await local.batches
        #expect(!expected.isEmpty)
        let remote = try await withServer(ServeConfiguration(datasets: [("tokens", path)], state: directory.path("state.sqlite"))) { url in
            let trainer = RecordingTrainer(maxDelayMilliseconds: 1)
            let source = try ServeSource(url: url, dataset: "tokens", packing: Self.spec())
            var configured = Self.configuration()
            configured.packing = try Self.spec()
            try await MultiBatchLoader(remote: source, configuration: configured).run(trainer: trainer)
            configured.packing = try PackingSpec(field: "tokens", rowLength: 32, window: 16)
            await #expect(performing: { try await MultiBatchLoader(remote: source, configuration: configured) }, throws: { error in
                (error as? MBDataError)?.parameter == "MultiBatchLoader.Configuration.packing"
            })
            try await source.shutdown()
            return await trainer.batches
        }
        #expect(remote == expected, "the shortest epoch's batches of every epoch, each the same rows")
    }

    @Test func aPackedCheckpointResumesThroughServeWithExactlyTheUnfinishedBatches() async throws {
        let directory = try TemporaryDirectory()
        let path = try await TokenDataset.make(in: directory)
        let configuration = ServeConfiguration(datasets: [("tokens", path)], state: directory.path("state.sqlite"))
        let whole = RecordingTrainer(maxDelayMilliseconds: 1)
        try await MultiBatchLoader(dataset: Dataset(path: path), packing: Self.spec(), configuration: Self.configuration()).run(trainer: whole)
        let expected = await whole.batches
        let (first, checkpoint) = try await withServer(configuration) { url in
            let trainer = RecordingTrainer(maxDelayMilliseconds: 1, failAfter: 7)
            let source = try ServeSource(url: url, dataset: "tokens", packing: Self.spec())
            let loader = try await MultiBatchLoader(remote: source, configuration: Self.configuration())
            await #expect(throws: MBDataError.self) { try await loader.run(trainer: trainer) }
            try await source.shutdown()
            return (await trainer.batches, await loader.checkpoint())
        }
        #expect(checkpoint.finishedBatchCount == first.count && first.count >= 1)
        let rest = try await withServer(configuration) { url in
            let trainer = RecordingTrainer(maxDelayMilliseconds: 1)
            let source = try ServeSource(url: url, dataset: "tokens", packing: Self.spec())
            try await MultiBatchLoader(remote: source, configuration: Self.configuration(), resumingFrom: checkpoint).run(trainer: trainer)
            try await source.shutdown()
            return await trainer.batches
        }
        #expect(Set(first.keys).isDisjoint(with: rest.keys), "nothing repeated")
        #expect(first.merging(rest) { old, _ in old } == expected, "nothing lost, the same rows")

        try await withServer(configuration) { url in
            let unpacked = try ServeSource(url: url, dataset: "tokens")
            await #expect(throws: MBDataError.self, "a packed checkpoint does not resume an unpacked plan") {
                _ = try await MultiBatchLoader(remote: unpacked, configuration: Self.configuration(), resumingFrom: checkpoint)
            }
            try await unpacked.shutdown()
        }
    }

    @Test func aPackedCursorNamesItsPackingAndAnUnpackedRequestGetsAnotherCursor() async throws {
        let directory = try TemporaryDirectory()
        let path = try await TokenDataset.make(in: directory)
        try await withServer(ServeConfiguration(datasets: [("tokens", path)], state: directory.path("state.sqlite"))) { url in
            let transport = try HTTPTransport(url: url, token: nil)
            let plan = PlanParameters(seed: 7, batchSize: 4)
            let packedQuery = PlanQuery(plan: plan, rank: 0, group: "g", packing: try Self.spec()).items
            let query = packedQuery.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
            let (packed, headers) = try await transport.callWithHeaders(.GET, "/v1/datasets/tokens/cursor?\(query)&epoch=1", as: CursorState.self)
            #expect(packed.packing == (try Self.spec()))
            let dataset = try Dataset(path: path)
            let packedPlan = try await dataset.packedPlan(plan, packing: Self.spec())
            #expect(packed.planFingerprint == packedPlan.fingerprint)
            #expect(packed.batchesPerEpoch == packedPlan.mostBatchesPerEpoch)
            #expect(headers.first(name: "MBData-Batches-Per-Epoch") == String(packedPlan.batchesPerEpoch(packedPlan.layout(epoch: 1))))
            let unpacked = try await transport.call(.GET, "/v1/datasets/tokens/cursor?batch_size=4&seed=7&group=g", as: CursorState.self)
            #expect(unpacked.cursor != packed.cursor && unpacked.packing == nil)
            let restored = try await transport.call(.PUT, "/v1/cursors/\(packed.cursor)", json: Array(try WireJSON.encode(packed)))
            #expect(restored.status == 200)
            try await transport.shutdown()
        }
    }
}
