import Foundation
import Synchronization
import Testing

@testable import MBData

/// Records every batch a trainer finished, with optional random delays and a failure.
actor RecordingTrainer: Trainer {
    struct Call: Hashable { var epoch: Int; var batch: Int }
    private(set) var finished: [Call] = []
    private(set) var ids: [Int: [Int64]] = [:]
    private(set) var events: [String] = []
    private var running = 0
    private(set) var maxRunning = 0
    let delays: Bool
    let failAt: Call?
    var seed: UInt64
    var onFinish: (@Sendable (Int) async -> Void)?

    init(delays: Bool = true, failAt: Call? = nil, seed: UInt64 = 1) {
        self.delays = delays
        self.failAt = failAt
        self.seed = seed
    }

    func setOnFinish(_ body: @escaping @Sendable (Int) async -> Void) { onFinish = body }

    func train(_ batch: Batch, context: TrainingContext) async throws {
        running += 1
        maxRunning = max(maxRunning, running)
        events.append("start \(context.step)")
        defer { running -= 1 }
        if delays {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            try? await Task.sleep(nanoseconds: (seed >> 33) % 3_000_000)
        }
        if let failAt, failAt == Call(epoch: batch.epoch, batch: batch.index) {
            throw MBDataError(.invalidArgument, "boom")
        }
        finished.append(Call(epoch: batch.epoch, batch: batch.index))
        ids[batch.epoch, default: []] += batch.ids.filter { $0 >= 0 }
        events.append("end \(context.step)")
        if let onFinish { await onFinish(finished.count) }
    }

    func finishStep(_ step: Int) async throws { events.append("step \(step)") }
}

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
        actor SlotTrainer: Trainer {
            var busy: Set<Int> = []
            var clashes: [String] = []
            var used: Set<Int> = []
            var seed: UInt64 = 11

            func train(_ batch: Batch, context: TrainingContext) async throws {
                if !busy.insert(context.slot).inserted { clashes.append("batch \(batch.index) in busy slot \(context.slot)") }
                used.insert(context.slot)
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                try? await Task.sleep(nanoseconds: (seed >> 33) % 4_000_000)
                busy.remove(context.slot)
            }

            func finishStep(_ step: Int) async throws {}
        }
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: Self.config(k: 3, mode: mode))
        let trainer = SlotTrainer()
        try await loader.run(trainer: trainer)
        #expect(await trainer.clashes == [])
        #expect(await trainer.used == [0, 1, 2])
    }

    @Test func aCheckpointAtAnyMomentResumesWithExactlyTheUnfinishedBatches() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let all = Set((0..<2).flatMap { e in (0..<17).map { RecordingTrainer.Call(epoch: e, batch: $0) } })
        for cut in [1, 5, 16, 23, 33] {
            let loader = try await MultiBatchLoader(dataset: dataset, configuration: Self.config(seed: UInt64(cut)))
            let trainer = RecordingTrainer(seed: UInt64(cut))
            let saved = Mutex<LoaderCheckpoint?>(nil)
            await trainer.setOnFinish { count in
                if count == cut, saved.withLock({ $0 == nil }) {
                    let snapshot = await loader.checkpoint()
                    saved.withLock { $0 = snapshot }
                }
            }
            try await loader.run(trainer: trainer)
            let checkpoint = try #require(saved.withLock { $0 })
            let finishedAtCut = all.filter { checkpoint.isFinished(epoch: $0.epoch, batch: $0.batch) }
            #expect(finishedAtCut.count == checkpoint.finishedBatchCount)
            // Up to k calls may have returned without being recorded yet when the trainer counts `cut`.
            #expect(finishedAtCut.count >= cut - 3 && finishedAtCut.count <= cut, "the snapshot holds the batches finished so far")

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
        do {
            try await loader.run(trainer: trainer)
            Issue.record("expected the run to fail")
        } catch let error as MBDataError {
            #expect(error.code == .trainerFailed)
            #expect(error.description.contains("epoch 0 batch 6"))
        }
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
        let task = Task { try await loader.run(trainer: trainer) }
        while await trainer.finished.count < 8 { try await Task.sleep(nanoseconds: 1_000_000) }
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
        let plan = try await dataset.plan(config.planParameters)
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
        actor Labels: Trainer {
            var byID: [Int64: Int64] = [:]
            func train(_ batch: Batch, context: TrainingContext) async throws {
                for (id, label) in zip(batch.ids, batch["label"]!.int64s()) { byID[id] = label }
            }
        }
        let a = Labels()
        let b = Labels()
        try await MultiBatchLoader(dataset: dataset, configuration: config).run(trainer: a)
        try await MultiBatchLoader(dataset: dataset, configuration: config).run(trainer: b)
        let first = await a.byID
        #expect(first == (await b.byID))
        #expect(Set(first.values).count > 100, "labels were replaced by random numbers")
    }
}
