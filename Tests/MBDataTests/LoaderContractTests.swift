import Foundation
import Synchronization
import Testing

@testable import MBData

/// The loader's contract as a trainer meets it: stopping early, a checkpoint from inside the
/// trainer, the global step, resuming into more epochs, refusals that name the setting, the
/// string accessor, and shard sets that must serve the plan.
@Suite struct LoaderContractTests {
    /// Records each call's context and, on a chosen call, asks the loader to stop or takes a
    /// checkpoint through the context.
    actor ContextTrainer: Trainer {
        struct Seen: Hashable {
            var epoch: Int
            var batch: Int
            var step: Int
            var stepInRun: Int
        }
        private(set) var seen: [Seen] = []
        private(set) var steps: [Int] = []
        private(set) var started = 0
        /// The checkpoint taken through the context, and what had finished by then.
        private(set) var inside: (checkpoint: LoaderCheckpoint, finishedBefore: Set<RecordingTrainer.Call>, own: RecordingTrainer.Call)?
        let stopAtCall: Int?
        let checkpointAtCall: Int?

        init(stopAtCall: Int? = nil, checkpointAtCall: Int? = nil) {
            self.stopAtCall = stopAtCall
            self.checkpointAtCall = checkpointAtCall
        }

        var finished: Set<RecordingTrainer.Call> { Set(seen.map { RecordingTrainer.Call(epoch: $0.epoch, batch: $0.batch) }) }

        func train(_ batch: Batch, context: TrainingContext) async throws {
            started += 1
            let call = started
            let own = RecordingTrainer.Call(epoch: batch.epoch, batch: batch.index)
            if call == checkpointAtCall, let checkpoint = await context.checkpoint() {
                inside = (checkpoint, finished, own)
            }
            if call == stopAtCall { context.stop() }
            seen.append(Seen(epoch: batch.epoch, batch: batch.index, step: context.step, stepInRun: context.stepInRun))
        }

        func finishStep(_ step: Int) async throws { steps.append(step) }
    }

    static func all(_ epochs: Range<Int>) -> Set<RecordingTrainer.Call> {
        Set(epochs.flatMap { e in (0..<17).map { RecordingTrainer.Call(epoch: e, batch: $0) } })
    }

    @Test func stopEndsTheRunNormallyAfterTheCallsInFlight() async throws {
        let (dir, dataset) = try await LoaderTests.digits()
        defer { withExtendedLifetime(dir) {} }
        let config = LoaderTests.config()
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: config)
        let trainer = RecordingTrainer(seed: 3)
        await trainer.setOnFinish { count in
            if count == 5 { loader.stop() }
        }
        try await loader.run(trainer: trainer)
        let finished = await trainer.finished
        let checkpoint = await loader.checkpoint()
        #expect(await trainer.deliveries == finished.count, "every call that started finished; none started after the stop")
        #expect(finished.count >= 5 && finished.count <= 5 + config.concurrency, "at most the calls in flight finished after the stop")
        #expect(checkpoint.finishedBatchCount == finished.count)
        // The request was honoured: the next run goes on, and delivers exactly the rest.
        let rest = RecordingTrainer(delays: false)
        try await loader.run(trainer: rest)
        #expect(Set(await rest.finished) == Self.all(0..<2).subtracting(finished))
    }

    @Test func stopFromTheContextCompletesTheSynchronousStep() async throws {
        let (dir, dataset) = try await LoaderTests.digits()
        defer { withExtendedLifetime(dir) {} }
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: LoaderTests.config(k: 4, mode: .synchronous))
        let trainer = ContextTrainer(stopAtCall: 6)
        try await loader.run(trainer: trainer)
        #expect(await trainer.seen.count == 8, "the stop came in step 1: its 4 batches finish, step 2 never starts")
        #expect(await trainer.steps == [0, 1])
        #expect(await loader.checkpoint().finishedBatchCount == 8)
    }

    @Test func aCheckpointFromInsideTheTrainerHoldsOnlyReturnedCalls() async throws {
        let (dir, dataset) = try await LoaderTests.digits()
        defer { withExtendedLifetime(dir) {} }
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: LoaderTests.config(k: 1))
        let trainer = ContextTrainer(checkpointAtCall: 10)
        try await loader.run(trainer: trainer)
        let (checkpoint, finishedBefore, own) = try #require(await trainer.inside)
        #expect(!checkpoint.isFinished(epoch: own.epoch, batch: own.batch), "the calling batch is not finished yet")
        #expect(checkpoint.finishedBatchCount == 9)
        #expect(Self.all(0..<2).filter { checkpoint.isFinished(epoch: $0.epoch, batch: $0.batch) } == finishedBefore)
    }

    @Test(arguments: [MultiBatchLoader.Mode.asynchronous, .synchronous])
    func theStepIsGlobalAcrossAResume(mode: MultiBatchLoader.Mode) async throws {
        let (dir, dataset) = try await LoaderTests.digits()
        defer { withExtendedLifetime(dir) {} }
        let config = LoaderTests.config(k: 2, mode: mode)
        let first = try await MultiBatchLoader(dataset: dataset, configuration: config)
        let before = ContextTrainer(stopAtCall: 7)
        try await first.run(trainer: before)
        let checkpoint = await first.checkpoint()
        let finishedBefore = checkpoint.finishedBatchCount
        #expect(finishedBefore == 8 || mode == .asynchronous)

        let resumed = try await MultiBatchLoader(dataset: dataset, configuration: config, resumingFrom: checkpoint)
        let after = ContextTrainer()
        try await resumed.run(trainer: after)
        let seen = await after.seen
        let steps = seen.map(\.step)
        let local = seen.map(\.stepInRun)
        let firstStep = mode == .synchronous ? finishedBefore / 2 : finishedBefore
        #expect(steps.min() == firstStep, "the first step of the resumed run continues the count")
        #expect(local.min() == 0)
        #expect(zip(steps, local).allSatisfy { $0 - $1 == firstStep })
        let lastStep = mode == .synchronous ? (34 - 1) / 2 : 33
        #expect(steps.max() == lastStep, "34 batches in all")
        if mode == .synchronous {
            #expect(await before.steps == Array(0..<firstStep))
            #expect(await after.steps == Array(firstStep...lastStep))
        }
    }

    @Test func aCheckpointResumesIntoMoreEpochs() async throws {
        let (dir, dataset) = try await LoaderTests.digits()
        defer { withExtendedLifetime(dir) {} }
        let short = try await MultiBatchLoader(dataset: dataset, configuration: LoaderTests.config(epochs: 0..<2))
        let first = RecordingTrainer(delays: false)
        await first.setOnFinish { count in
            if count == 20 { short.stop() }
        }
        try await short.run(trainer: first)
        let checkpoint = await short.checkpoint()

        let longer = try await MultiBatchLoader(dataset: dataset, configuration: LoaderTests.config(epochs: 0..<4), resumingFrom: checkpoint)
        let second = RecordingTrainer(delays: false)
        try await longer.run(trainer: second)
        let done = Set(await first.finished)
        #expect(Set(await second.finished) == Self.all(0..<4).subtracting(done), "epochs 0..<4 less what the short run finished")
        let end = await longer.checkpoint()
        #expect(end.completedEpochs == 4 && end.epochCount == 4)

        // The first epoch is part of the run's identity: moving it is refused, with the reason.
        let moved = await #expect(throws: MBDataError.self) {
            try await MultiBatchLoader(dataset: dataset, configuration: LoaderTests.config(epochs: 1..<4), resumingFrom: checkpoint)
        }
        #expect(moved?.message.contains("starts at epoch 0") == true, "\(String(describing: moved))")
    }

    @Test func aRefusedCheckpointNamesTheSettingThatDiffers() async throws {
        let (dir, dataset) = try await LoaderTests.digits()
        defer { withExtendedLifetime(dir) {} }
        let base = LoaderTests.config()
        let checkpoint = await (try await MultiBatchLoader(dataset: dataset, configuration: base)).checkpoint()
        #expect(checkpoint.parameters == base.plan)
        let changes: [(String, (inout MultiBatchLoader.Configuration) -> Void)] = [
            ("seed", { $0.seed = 8 }), ("batchSize", { $0.batchSize = 50 }), ("split", { $0.split = "train" }),
            ("tail", { $0.tail = .pad }), ("shuffle", { $0.shuffle = false }), ("world", { $0.world = 2 }),
            ("rank", { $0.world = 2; $0.rank = 1 }),
        ]
        for (setting, change) in changes {
            var config = base
            change(&config)
            if setting == "rank" {
                var ranked = checkpoint
                ranked.world = 2
                ranked.parameters?.world = 2
                let error = await #expect(throws: MBDataError.self) {
                    try await MultiBatchLoader(dataset: dataset, configuration: config, resumingFrom: ranked)
                }
                #expect(error?.message.contains("rank 0") == true && error?.message.contains("rank 1") == true, "\(String(describing: error))")
                continue
            }
            let error = await #expect(throws: MBDataError.self) {
                try await MultiBatchLoader(dataset: dataset, configuration: config, resumingFrom: checkpoint)
            }
            #expect(error?.message.contains("with \(setting) ") == true, "\(setting): \(String(describing: error))")
            #expect(error?.parameter == "MultiBatchLoader.Configuration.\(setting)")
        }
        let version = #expect(throws: MBDataError.self) { try checkpoint.check(fingerprint: checkpoint.planFingerprint, version: 2) }
        #expect(version?.message.contains("dataset version 1") == true, "\(String(describing: version))")
    }

    @Test func aCheckpointOfTheEarlierFormatStillDecodesAndResumes() async throws {
        let (dir, dataset) = try await LoaderTests.digits()
        defer { withExtendedLifetime(dir) {} }
        let current = await (try await MultiBatchLoader(dataset: dataset, configuration: LoaderTests.config())).checkpoint()
        // A checkpoint as written before the plan parameters were recorded.
        let json = """
            {"planFingerprint":"\(current.planFingerprint)","datasetVersion":\(current.datasetVersion),"world":1,"rank":0,
             "firstEpoch":0,"epochCount":2,"batchesPerEpoch":17,"completedEpochs":1,
             "inProgress":[{"epoch":1,"lowWatermark":3,"finishedAbove":[5]}]}
            """
        let old = try JSONDecoder().decode(LoaderCheckpoint.self, from: Data(json.utf8))
        #expect(old.parameters == nil)
        #expect(old.finishedBatchCount == 21)
        let loader = try await MultiBatchLoader(dataset: dataset, configuration: LoaderTests.config(), resumingFrom: old)
        let trainer = RecordingTrainer(delays: false)
        try await loader.run(trainer: trainer)
        #expect(await trainer.finished.count == 34 - 21)
        #expect(await loader.checkpoint().parameters == LoaderTests.config().plan, "the resumed run records them")
        // Without recorded parameters, another seed is refused by the plan fingerprint.
        let refused = await #expect(throws: MBDataError.self) {
            try await MultiBatchLoader(dataset: dataset, configuration: LoaderTests.config(seed: 8), resumingFrom: old)
        }
        #expect(refused?.message.contains("another dataset version or plan") == true)
    }

    @Test func stringAndBytesFieldsReadPerRowWithPaddingRowsNil() async throws {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("s.mbdb"), create: true)
        let lines = (0..<5).map { #"{"name": "n\#($0)é", "blob": "\#(Data([UInt8($0), 1]).base64EncodedString())"}"# }
        let source = dir.path("s.jsonl")
        try lines.joined(separator: "\n").write(toFile: source, atomically: true, encoding: .utf8)
        let fields = #"{"name": "s", "fields": [{"name": "name", "dtype": "string"}, {"name": "blob", "dtype": "bytes"}]}"#
        try await ingest(dataset, [source], schema: try schema(fields))
        var config = MultiBatchLoader.Configuration(batchSize: 3, epochs: 0..<1)
        config.shuffle = false
        config.tail = .pad
        let trainer = BatchKeeper()
        try await MultiBatchLoader(dataset: dataset, configuration: config).run(trainer: trainer)
        let batches = await trainer.batches.sorted { $0.index < $1.index }
        #expect(try batches.flatMap { try $0.strings("name") } == ["n0é", "n1é", "n2é", "n3é", "n4é", nil])
        #expect(try batches.flatMap { try $0.bytes("blob") } == (0..<5).map { [UInt8($0), 1] } + [nil])
        #expect(throws: MBDataError.self) { try batches[0].strings("missing") }
        #expect(throws: MBDataError.self) { try batches[0].strings("_id") }
    }

    actor BatchKeeper: Trainer {
        private(set) var batches: [Batch] = []
        func train(_ batch: Batch, context: TrainingContext) async throws { batches.append(batch) }
    }
}
