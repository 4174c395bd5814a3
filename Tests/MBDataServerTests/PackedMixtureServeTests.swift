import Foundation
import MBDataTestSupport
import MBDataWire
import NIOHTTP1
import Testing

@testable import MBData
@testable import MBDataClient
@testable import MBDataServer

/// A packed mixture through `serve` and the Swift client (issue 14 §3): `mix=` with `pack=`
/// serves the local packed-mixture loader's batches byte for byte, live and from a spool of
/// `writePackedMixture`'s shards; the cursor records both; a checkpoint resumes exactly.
@Suite struct PackedMixtureServeTests {
    static let spec = try! PackingSpec(field: "tokens", rowLength: 8, window: 4)

    static func configuration(datasets: [Dataset]? = nil) -> MultiBatchLoader.Configuration {
        var configuration = MixtureServeTests.configuration([0.6, 0.25, 0.15], epochSize: 40, datasets: datasets)
        configuration.epochs = 0..<2
        return configuration
    }

    typealias Recorder = BatchRecorder

    static func remote(_ url: String, group: String, checkpoint: LoaderCheckpoint? = nil, stopAfter: Int? = nil) async throws -> (Recorder, LoaderCheckpoint) {
        let configuration = Self.configuration()
        let source = try ServeSource(url: url, mixture: configuration.mixture, epochSize: 40, group: group, packing: Self.spec)
        let recorder = Recorder(stopAfter: stopAfter)
        let loader = try await MultiBatchLoader(remote: source, configuration: configuration, resumingFrom: checkpoint)
        try await loader.run(trainer: recorder)
        try await source.shutdown()
        return (recorder, await loader.checkpoint())
    }

    @Test func aPackedMixtureOverServeIsTheLocalOneLiveFromTheSpoolAndResumed() async throws {
        let directory = try TemporaryDirectory()
        let paths = try await MixtureServeTests.datasets(in: directory)
        let datasets = try paths.map { try Dataset(path: $0) }
        let local = Recorder()
        try await MultiBatchLoader(packing: Self.spec, configuration: Self.configuration(datasets: datasets)).run(trainer: local)
        let expected = await local.bytes
        #expect(expected.count >= 4)

        let serve = MixtureServeTests.serve(paths, directory)
        let (served, checkpoint) = try await withServer(serve) { url in try await Self.remote(url, group: "whole") }
        #expect(await served.bytes == expected, "the daemon serves the local packed mixture's batches")
        #expect(await served.sourcesPerSegment, "_source is per segment like _id")
        #expect(checkpoint.mixture?.sources.map(\.name) == MixtureServeTests.names)

        let cut = Int.random(in: 1..<expected.count)
        let (first, saved) = try await withServer(serve) { url in try await Self.remote(url, group: "cut", stopAfter: cut) }
        let (rest, _) = try await withServer(serve) { url in try await Self.remote(url, group: "cut", checkpoint: saved) }
        let finished = await first.bytes.filter { saved.isFinished(epoch: $0.key.epoch, batch: $0.key.batch) }
        let after = await rest.bytes
        #expect(Set(finished.keys).isDisjoint(with: after.keys), "cut at \(cut): nothing repeated")
        #expect(finished.merging(after) { old, _ in old } == expected, "cut at \(cut): nothing lost, the same bytes")

        let plan = try await PackedMixturePlan.resolve(
            Self.configuration(datasets: datasets).mixture, epochSize: 40, parameters: Self.configuration().plan, packing: Self.spec)
        _ = try await ShardWriter.writePackedMixture(plan: plan, datasets: datasets, epochs: 0..<2, to: directory.path("spool/packed"))
        _ = try await ShardWriter.writeMixture(plan: plan.base, datasets: datasets, epochs: 0..<2, to: directory.path("spool/unpacked"))
        var spooled = serve
        spooled.spool = [directory.path("spool")]
        try await withServer(spooled) { url in
            let (fromSpool, _) = try await Self.remote(url, group: "spool")
            #expect(await fromSpool.bytes == expected, "the spool's packed mixture set serves the same batches")
            let daemon = Daemon(url: url)
            let query = "batch_size=4&seed=11&group=headers&mix=web:0.6,code:0.25,books:0.15&epoch_size=40&pack=tokens:8&pack_window=4"
            let answer = try await daemon.send(.GET, "/v1/mixture/batches?" + query)
            #expect(answer.status == 200 && answer.headers.first(name: "MBData-Source") == "spool", "\(answer.status) \(answer.headers)")
            #expect(answer.headers.first(name: "MBData-Packing") == "tokens:8")
            let cursor = try await daemon.send(.GET, "/v1/mixture/cursor?" + query)
            let state = try WireJSON.decode(CursorState.self, from: Data(cursor.body))
            #expect(state.packing == Self.spec && state.mixture?.sources.map(\.name) == MixtureServeTests.names && state.planFingerprint == plan.fingerprint)
        }
    }
}
