import Foundation
import Synchronization
import Testing

@testable import MBData

@Suite struct LoaderTests {
    static func digits() async throws -> (TemporaryDirectory, Dataset) {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        try await ingest(dataset, [samplePath("digits/digits.jsonl")], schema: try Schema(contentsOf: samplePath("digits/digits.schema.json")))
        return (dir, dataset)
    }

    static func config(seed: UInt64 = 7, epochs: Range<Int> = 0..<2, k: Int = 3, mode: MultiBatchLoader.Mode = .asynchronous) -> MultiBatchLoader.Configuration {
        var config = MultiBatchLoader.Configuration(batchSize: 100, seed: seed, epochs: epochs)
        config.concurrency = k
        config.mode = mode
        config.prefetchDepth = 4
        return config
    }

    @Test func everyEpochDeliversEachSampleOnceUnderRandomDelays() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        for seed in [1, 2, 3, 4, 5] as [UInt64] {
            let loader = try await MultiBatchLoader(dataset: dataset, configuration: Self.config(seed: seed, k: Int(seed % 4) + 1))
            let trainer = RecordingTrainer(seed: seed)
            try await loader.run(trainer: trainer)
            for epoch in 0..<2 {
                let ids = await trainer.ids[epoch] ?? []
                #expect(ids.count == 1700, "seed \(seed) epoch \(epoch): 17 batches of 100, 97 dropped")
                #expect(Set(ids).count == ids.count, "nothing twice")
            }
            #expect(await trainer.maxRunning <= Int(seed % 4) + 1)
            let checkpoint = await loader.checkpoint()
            #expect(checkpoint.completedEpochs == 2 && checkpoint.inProgress.isEmpty)
        }
    }

    @Test(arguments: [MultiBatchLoader.Mode.asynchronous, .synchronous])
    func noTwoCallsRunningAtOnceShareASlot(mode: MultiBatchLoader.Mode) async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: Self.config(k: 3, mode: mode))
        let trainer = RecordingTrainer(maxDelayMilliseconds: 4, seed: 11)
        try await loader.run(trainer: trainer)
        #expect(await trainer.slotClashes == [])
        #expect(await trainer.slotsUsed == [0, 1, 2])
    }

    @Test func aCheckpointAtAnyMomentResumesWithExactlyTheUnfinishedBatches() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let all = Set((0..<2).flatMap { e in (0..<17).map { RecordingTrainer.Call(epoch: e, batch: $0) } })
        for cut in [1, 5, 16, 23, 33] {
            let loader = try await MultiBatchLoader(dataset: dataset, configuration: Self.config(seed: UInt64(cut)))
            let trainer = RecordingTrainer(seed: UInt64(cut))
            // The snapshot, and what the trainer had recorded once it was taken.
            let saved = Mutex<(LoaderCheckpoint, [RecordingTrainer.Call])?>(nil)
            await trainer.setOnFinish { count in
                if count == cut, saved.withLock({ $0 == nil }) {
                    let snapshot = await loader.checkpoint()
                    let recorded = await trainer.finished
                    saved.withLock { $0 = (snapshot, recorded) }
                }
            }
            try await loader.run(trainer: trainer)
            let (checkpoint, recordedAfterSnapshot) = try #require(saved.withLock { $0 })
            let finishedAtCut = all.filter { checkpoint.isFinished(epoch: $0.epoch, batch: $0.batch) }
            #expect(finishedAtCut.count == checkpoint.finishedBatchCount)
            // A call is in the checkpoint only after the trainer recorded it and returned, so
            // the snapshot is a subset of what the trainer had recorded once it was taken
            // (calls keep finishing while it is taken: no count bounds it from above). When
            // the trainer counted `cut`, at most k = 3 of its recorded calls (this one among
            // them) had not yet returned to the loader.
            #expect(finishedAtCut.isSubset(of: Set(recordedAfterSnapshot)), "cut \(cut): the snapshot claims only finished batches")
            #expect(finishedAtCut.count >= cut - 3, "cut \(cut): the snapshot holds the batches finished so far")

            let resumed = try await MultiBatchLoader(dataset: dataset, configuration: Self.config(seed: UInt64(cut)), resumingFrom: checkpoint)
            let second = RecordingTrainer(seed: 99)
            try await resumed.run(trainer: second)
            let delivered = await second.finished
            #expect(Set(delivered).count == delivered.count)
            #expect(Set(delivered) == all.subtracting(finishedAtCut), "cut \(cut): exactly the unfinished batches")
        }
    }

    @Test func synchronousStepsHaveABarrier() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: Self.config(epochs: 0..<1, k: 4, mode: .synchronous))
        let trainer = RecordingTrainer()
        try await loader.run(trainer: trainer)
        let events = await trainer.events
        // Steps of 4 batches: every start of step s comes after all ends of step s-1 and its "step s-1".
        var lastStepMark = -1
        for (index, event) in events.enumerated() {
            let parts = event.split(separator: " ")
            let step = Int(parts[1])!
            if parts[0] == "start" {
                #expect(step == lastStepMark + 1, "event \(index): \(event) after step mark \(lastStepMark)")
            } else if parts[0] == "step" {
                #expect(step == lastStepMark + 1)
                let ends = events[..<index].filter { $0 == "end \(step)" }.count
                #expect(ends == (step < 4 ? 4 : 1), "step \(step) finished all its batches before finishStep")
                lastStepMark = step
            }
        }
        #expect(lastStepMark == 4, "17 batches = 4 full steps and a last one of 1")
    }

    @Test func aTrainerFailureStopsTheLoaderAndNamesTheBatch() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: Self.config())
        let trainer = RecordingTrainer(failAt: .init(epoch: 0, batch: 6))
        let error = try #require(await #expect(throws: MBDataError.self) { try await loader.run(trainer: trainer) })
        #expect(error.code == .trainerFailed)
        #expect(error.description.contains("epoch 0 batch 6"))
        // The cause is the trainer's own error, as it threw it.
        #expect(error.cause as? RecordingTrainer.Failure == RecordingTrainer.Failure(call: .init(epoch: 0, batch: 6)), "\(error)")
        let checkpoint = await loader.checkpoint()
        #expect(!checkpoint.isFinished(epoch: 0, batch: 6))
        let finished = await trainer.finished
        #expect(checkpoint.finishedBatchCount == finished.count, "the checkpoint holds exactly the finished batches")
        #expect(finished.count < 34)
    }

    @Test func cancellationLeavesAValidCheckpoint() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let config = Self.config(epochs: 0..<3)
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: config)
        let trainer = RecordingTrainer()
        let (eighth, reached) = AsyncStream.makeStream(of: Void.self)
        await trainer.setOnFinish { count in
            if count == 8 { reached.finish() }
        }
        let task = Task { try await loader.run(trainer: trainer) }
        for await _ in eighth {}
        task.cancel()
        _ = await task.result
        let checkpoint = await loader.checkpoint()
        let first = await trainer.finished
        #expect(checkpoint.finishedBatchCount == first.count)
        let resumed = try await MultiBatchLoader(dataset: dataset, configuration: config, resumingFrom: checkpoint)
        let second = RecordingTrainer()
        try await resumed.run(trainer: second)
        let rest = await second.finished
        #expect(Set(first).isDisjoint(with: Set(rest)))
        #expect(first.count + rest.count == 3 * 17)
    }

    @Test func mismatchedCheckpointsAreRefused() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: Self.config())
        let checkpoint = await loader.checkpoint()
        await #expect(throws: MBDataError.self) { try await MultiBatchLoader(dataset: dataset, configuration: Self.config(seed: 8), resumingFrom: checkpoint) }
        var otherWorld = Self.config()
        otherWorld.world = 2
        let error = await #expect(throws: MBDataError.self) { try await MultiBatchLoader(dataset: dataset, configuration: otherWorld, resumingFrom: checkpoint) }
        #expect(error?.description.contains("world") == true)
        var fromOtherData = checkpoint
        fromOtherData.planFingerprint = "xxh64:0000000000000000"
        let data = await #expect(throws: MBDataError.self) { try await MultiBatchLoader(dataset: dataset, configuration: Self.config(), resumingFrom: fromOtherData) }
        #expect(data?.description.contains("another dataset version or plan") == true)
    }

    @Test func shardsGiveTheSameBatchesAsTheLiveDataset() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let config = Self.config(epochs: 0..<2, k: 2)
        let plan = try await dataset.plan(config.plan)
        let prefetcher = try await Prefetcher(dataset: dataset, plan: plan, epochs: 0..<2)
        _ = try await ShardWriter.write(prefetcher, schema: try #require(try await dataset.schema()), to: dir.path("shards"))
        let live = RecordingTrainer(delays: false)
        try await MultiBatchLoader(dataset: dataset, configuration: config).run(trainer: live)
        let fromShards = RecordingTrainer(delays: false)
        try await MultiBatchLoader(shards: dir.path("shards"), configuration: config).run(trainer: fromShards)
        // Calls finish in any order with k = 2: compare each epoch's samples.
        #expect(await live.ids.mapValues { $0.sorted() } == fromShards.ids.mapValues { $0.sorted() })
        #expect(await live.ids[0]?.count == 1700)
    }

    @Test func transformsAreReproducibleAcrossRunsAndResumes() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        var config = Self.config(epochs: 0..<1, k: 2)
        config.sampleTransform = { values, random in
            var values = values
            values[2] = .integer(Int64(random.next() % 1000))  // label := a seeded random number
            return values
        }
        let a = RecordingTrainer(delays: false, recordField: "label")
        let b = RecordingTrainer(delays: false, recordField: "label")
        try await MultiBatchLoader(dataset: dataset, configuration: config).run(trainer: a)
        try await MultiBatchLoader(dataset: dataset, configuration: config).run(trainer: b)
        let first = await a.fieldValues
        #expect(first == (await b.fieldValues))
        #expect(Set(first.values).count > 100, "labels were replaced by random numbers")
    }
}
