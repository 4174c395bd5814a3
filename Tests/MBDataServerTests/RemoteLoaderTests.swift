import Foundation
@testable import MBData
import MBDataTestSupport
import MBDataWire
import NIOHTTP1
import Synchronization
import Testing

@testable import MBDataClient
@testable import MBDataServer

@Suite struct RemoteLoaderTests {
    static func configuration(rank: Int = 0, world: Int = 1) -> MultiBatchLoader.Configuration {
        var config = MultiBatchLoader.Configuration(batchSize: 64, seed: 7, epochs: 0..<1)
        config.split = "train"
        config.concurrency = 4
        config.world = world
        config.rank = rank
        return config
    }

    @Test func loaderOverServeMatchesTheLocalLoaderBatchForBatch() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        let local = RecordingTrainer(maxDelayMilliseconds: 1)
        try await MultiBatchLoader(dataset: Dataset(path: path), configuration: Self.configuration()).run(trainer: local)

        let remote = try await withServer(ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))) { url in
            let trainer = RecordingTrainer(maxDelayMilliseconds: 1)
            let loader = try await MultiBatchLoader(
                remote: ServeSource(url: url, dataset: "digits"), configuration: Self.configuration())
            try await loader.run(trainer: trainer)
            let checkpoint = await loader.checkpoint()
            #expect(checkpoint.completedEpochs == 1)
            // Acks go several to a request under load; all of them reached the daemon.
            let id = CursorState.id(
                dataset: "digits", group: "default", mode: .partition, parameters: Self.configuration().plan, rank: 0, replica: 0)
            let transport = try HTTPTransport(url: url, token: nil)
            let state = try await transport.call(.GET, "/v1/cursors/\(id)", as: CursorState.self)
            try await transport.shutdown()
            #expect(state.progress(epoch: 0).lowWatermark == 1449 / 64)
            return await trainer.batches
        }
        let expected = await local.batches
        #expect(remote.count == 1449 / 64)
        #expect(remote == expected)
    }

    @Test func ranksOverServeAreDisjointAndCoverTheEpoch() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        let perRank = try await withServer(ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))) { url in
            try await withThrowingTaskGroup(of: [Int64].self) { group in
                for rank in 0..<4 {
                    group.addTask {
                        let trainer = RecordingTrainer(maxDelayMilliseconds: 1)
                        try await MultiBatchLoader(
                            remote: ServeSource(url: url, dataset: "digits"), configuration: Self.configuration(rank: rank, world: 4)
                        ).run(trainer: trainer)
                        let batches = await trainer.batches
                        #expect(batches.count == 1449 / 64)
                        return batches.values.flatMap { $0 }
                    }
                }
                return try await group.reduce(into: [[Int64]]()) { $0.append($1) }
            }
        }
        let all = perRank.flatMap { $0 }
        #expect(all.count == 1449 / 64 * 64)
        #expect(Set(all).count == all.count)
    }

    @Test func aCheckpointResumesThroughServeWithExactlyTheUnfinishedBatches() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        let configuration = ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))
        let (first, checkpoint) = try await withServer(configuration) { url in
            let trainer = RecordingTrainer(maxDelayMilliseconds: 1, failAfter: 9)
            let loader = try await MultiBatchLoader(remote: ServeSource(url: url, dataset: "digits"), configuration: Self.configuration())
            let failure = await #expect(throws: MBDataError.self) { try await loader.run(trainer: trainer) }
            #expect(failure?.code == .trainerFailed && failure?.cause is RecordingTrainer.Failure, "\(String(describing: failure))")
            return (await trainer.batches, await loader.checkpoint())
        }
        #expect(checkpoint.finishedBatchCount == first.count)
        #expect(first.count >= 1 && first.count <= 9)
        // A new daemon on the same state database: the loader's checkpoint decides.
        let rest = try await withServer(configuration) { url in
            let trainer = RecordingTrainer(maxDelayMilliseconds: 1)
            let loader = try await MultiBatchLoader(
                remote: ServeSource(url: url, dataset: "digits"), configuration: Self.configuration(), resumingFrom: checkpoint)
            try await loader.run(trainer: trainer)
            return await trainer.batches
        }
        #expect(Set(first.keys).isDisjoint(with: rest.keys))
        #expect(first.count + rest.count == 1449 / 64)
    }

    @Test func aCheckpointFromAnotherPlanIsRefused() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        try await withServer(ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))) { url in
            let loader = try await MultiBatchLoader(remote: ServeSource(url: url, dataset: "digits"), configuration: Self.configuration())
            var checkpoint = await loader.checkpoint()
            checkpoint.planFingerprint = "xxh64:0000000000000000"
            await #expect(throws: MBDataError.self) {
                _ = try await MultiBatchLoader(
                    remote: ServeSource(url: url, dataset: "digits"), configuration: Self.configuration(), resumingFrom: checkpoint)
            }
        }
    }

    @Test func aCheckpointResumesThroughServeIntoMoreEpochs() async throws {
        let directory = try TemporaryDirectory()
        let path = try await digitsDataset(directory)
        let batchesPerEpoch = 1449 / 64
        try await withServer(ServeConfiguration(datasets: [("digits", path)], state: directory.path("state.sqlite"))) { url in
            let short = try await MultiBatchLoader(remote: ServeSource(url: url, dataset: "digits"), configuration: Self.configuration())
            let first = RecordingTrainer(maxDelayMilliseconds: 1)
            try await short.run(trainer: first)
            let checkpoint = await short.checkpoint()
            #expect(checkpoint.completedEpochs == 1)

            var longer = Self.configuration()
            longer.epochs = 0..<3
            let resumed = try await MultiBatchLoader(remote: ServeSource(url: url, dataset: "digits"), configuration: longer, resumingFrom: checkpoint)
            let second = RecordingTrainer(maxDelayMilliseconds: 1)
            try await resumed.run(trainer: second)
            let delivered = await second.finished
            #expect(delivered.count == 2 * batchesPerEpoch)
            #expect(Set(delivered.map(\.epoch)) == [1, 2], "only the new epochs")
            #expect(await resumed.checkpoint().completedEpochs == 3)

            // Another seed is refused by name before the daemon is asked anything.
            var reseeded = Self.configuration()
            reseeded.seed = 8
            let refused = await #expect(throws: MBDataError.self) {
                _ = try await MultiBatchLoader(remote: ServeSource(url: url, dataset: "digits"), configuration: reseeded, resumingFrom: checkpoint)
            }
            #expect(refused?.message.contains("with seed 7, the loader has seed 8") == true, "\(String(describing: refused))")
        }
    }

    @Test func noDaemonAtTheURLIsUnavailableNotMissingInput() async throws {
        // Nothing listens on port 1: the connection is refused.
        let error = await #expect(throws: MBDataError.self) {
            _ = try await MultiBatchLoader(remote: ServeSource(url: "http://127.0.0.1:1", dataset: "digits"), configuration: Self.configuration())
        }
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        #expect(error?.cause != nil, "the network error stays as the cause")
    }
}
