import Foundation
import GRDB
import Synchronization
import Testing

@testable import MBData

/// A model whose outputs follow from the sample ids (`pred` = id % 10, `prob[j]` = id + j/10),
/// so every written row can be checked; it records the batches it was called with, may fail
/// on one batch, and runs `onCall` (with the number of calls so far) before answering.
final class IDModel: InferenceModel {
    struct Failure: Error {}

    let calls = Mutex<[Int]>([])
    private let failAt: Int?
    private let onCall: @Sendable (Int) async throws -> Void

    init(failAt: Int? = nil, onCall: @escaping @Sendable (Int) async throws -> Void = { _ in }) {
        self.failAt = failAt
        self.onCall = onCall
    }

    var calledBatches: [Int] { calls.withLock { $0 } }

    static func pred(_ id: Int64) -> Int64 { id % 10 }
    static func prob(_ id: Int64) -> [Float] { (0..<10).map { Float(id) + Float($0) / 10 } }

    func infer(_ batch: Batch, context: TrainingContext) async throws -> [String: Tensor] {
        let count = calls.withLock { calls in
            calls.append(batch.index)
            return calls.count
        }
        try await onCall(count)
        // Batches take different times, so calls finish out of order.
        try await Task.sleep(for: .milliseconds(batch.index * 7 % 4))
        if batch.index == failAt { throw Failure() }
        let ids = batch.ids
        return [
            "pred": try Tensor(name: "pred", shape: [ids.count], values: ids.map(Self.pred)),
            "prob": try Tensor(name: "prob", shape: [ids.count, 10], values: ids.flatMap(Self.prob)),
        ]
    }
}

@Suite struct InferenceJobTests {
    static let predsSchema = try! Schema(
        name: "preds", fields: [Field(name: "pred", dtype: .int64), Field(name: "prob", dtype: .float32, shape: [10])])

    /// The digits with a 20% `val` split and an empty `preds` output.
    static func digits() async throws -> (TemporaryDirectory, Dataset) {
        let dir = try TemporaryDirectory()
        let dataset = try Dataset(path: dir.path("d.mbdb"), create: true)
        var options = IngestOptions()
        options.validationFraction = 0.2
        try await ingest(
            dataset, [samplePath("digits/digits.jsonl")], schema: try Schema(contentsOf: samplePath("digits/digits.schema.json")), options: options)
        try await dataset.createOutput("preds", schema: predsSchema)
        return (dir, dataset)
    }

    static func config(k: Int = 4, mode: MultiBatchLoader.Mode = .asynchronous) -> MultiBatchLoader.Configuration {
        var config = InferenceJob.configuration(batchSize: 16, split: "val")
        config.concurrency = k
        config.mode = mode
        config.prefetchDepth = 4
        return config
    }

    struct OutputRow: Sendable {
        var id: Int64
        var pred: Int64
        var prob: [Float]
    }

    /// Every row of `outputs_preds`, by `_id`.
    static func rows(_ dataset: Dataset) async throws -> [OutputRow] {
        try await dataset.read { db in
            try Row.fetchAll(db, sql: "SELECT _id, pred, prob FROM outputs_preds ORDER BY _id").map { row in
                let blob: Data = row["prob"]
                let prob = blob.withUnsafeBytes { raw in (0..<raw.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
                return OutputRow(id: row["_id"], pred: row["pred"], prob: prob)
            }
        }
    }

    /// Checks that the output holds exactly one row per sample of the job's plan, with the
    /// values the model returned for it.
    static func expectExactlyThePlan(_ dataset: Dataset, _ job: OutputJob, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let rows = try await rows(dataset)
        #expect(rows.map(\.id) == Array(job.plan.ids), "one row per sample of the plan, nothing else", sourceLocation: sourceLocation)
        let wrong = rows.filter { $0.pred != IDModel.pred($0.id) || $0.prob != IDModel.prob($0.id) }
        #expect(wrong.isEmpty, "rows whose values are not the model's: \(wrong.prefix(3).map(\.id))", sourceLocation: sourceLocation)
    }

    @Test(arguments: [MultiBatchLoader.Mode.asynchronous, .synchronous])
    func fourConcurrentCallsWriteOneRowPerSampleWithTheModelsValues(mode: MultiBatchLoader.Mode) async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let job = try await InferenceJob(dataset: dataset, output: "preds", configuration: Self.config(mode: mode))
        let total = job.job.batches
        #expect(job.job.plan.ids.count > 300 && total == (job.job.plan.ids.count + 15) / 16, "the val split, the last batch padded")
        #expect(try await job.progress() == (0, total))
        let model = IDModel()
        try await job.run(model: model)
        #expect(model.calledBatches.sorted() == Array(0..<total), "one model call per batch")
        #expect(try await job.progress() == (total, total))
        try await Self.expectExactlyThePlan(dataset, job.job)
        let coverage = try await dataset.outputCoverage("preds").first { $0.split == "val" }
        #expect(coverage?.written == job.job.plan.ids.count && coverage?.expected == job.job.plan.ids.count)

        try await job.run(model: model)
        #expect(model.calledBatches.count == total, "a finished job runs nothing")
    }

    @Test func aStoppedJobRerunFinishesOnlyTheRemainingBatches() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let job = try await InferenceJob(dataset: dataset, output: "preds", configuration: Self.config())
        let total = job.job.batches
        let first = IDModel { calls in if calls == 6 { job.stop() } }
        try await job.run(model: first)
        let (finished, _) = try await job.progress()
        #expect(finished == first.calledBatches.count, "every call that returned committed its batch")
        #expect(finished >= 6 && finished < total, "stopped mid-way: \(finished) of \(total)")
        let done = Set(try await dataset.finishedBatches(of: job.job))

        // A new object, as a new process would make: the same job, resumed from the file.
        let again = try await InferenceJob(dataset: dataset, output: "preds", configuration: Self.config())
        #expect(again.job.id == job.job.id)
        let second = IDModel()
        try await again.run(model: second)
        #expect(second.calledBatches.sorted() == (0..<total).filter { !done.contains($0) }, "only the batches without outputs")
        try await Self.expectExactlyThePlan(dataset, job.job)
    }

    @Test func aRunResumesFromACheckpointOfExactlyTheCommittedBatches() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let job = try await InferenceJob(dataset: dataset, output: "preds", configuration: Self.config())
        for finished in [[], [0, 1, 2, 5, 7], [1, 2], Array(0..<job.job.batches)] {
            let checkpoint = InferenceJob.checkpoint(job.configuration, plan: job.job.plan, finished: finished)
            #expect((0..<job.job.batches).filter { checkpoint.isFinished(epoch: 0, batch: $0) } == finished)
            #expect(checkpoint.finishedBatchCount == finished.count)
        }
    }

    @Test func aStopBeforeTheRunEndsTheNextRunBeforeAnyBatch() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let job = try await InferenceJob(dataset: dataset, output: "preds", configuration: Self.config())
        job.stop()
        let model = IDModel()
        try await job.run(model: model)
        #expect(model.calledBatches.isEmpty)
        try await job.run(model: model)
        #expect(try await job.progress().finished == job.job.batches, "the stop applied to one run only")
    }

    @Test func aModelThatThrowsStopsTheJobAndWhatCommittedStays() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let job = try await InferenceJob(dataset: dataset, output: "preds", configuration: Self.config())
        let total = job.job.batches
        let failing = IDModel(failAt: 9)
        await #expect {
            try await job.run(model: failing)
        } throws: { error in
            guard let error = error as? MBDataError, error.code == .trainerFailed else { return false }
            return error.cause is IDModel.Failure && error.description.contains("batch 9")
        }
        let done = try await dataset.finishedBatches(of: job.job)
        #expect(!done.contains(9) && !done.isEmpty && done.count < total)
        let rows = try await Self.rows(dataset)
        let committedIDs = done.flatMap { job.job.plan.sampleIDs(epoch: 0, batch: $0).compactMap { $0 } }.sorted()
        #expect(rows.map(\.id) == committedIDs, "the committed batches' rows, and only theirs")

        let rerun = IDModel()
        try await job.run(model: rerun)
        #expect(rerun.calledBatches.sorted() == (0..<total).filter { !done.contains($0) })
        try await Self.expectExactlyThePlan(dataset, job.job)
    }

    @Test func outputsThatDoNotFitTheSchemaStopTheJobWithTheCommitsError() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        struct HalfModel: InferenceModel {
            func infer(_ batch: Batch, context: TrainingContext) async throws -> [String: Tensor] {
                ["pred": try Tensor(name: "pred", shape: [batch.rowCount], values: [Int64](repeating: 1, count: batch.rowCount))]
            }
        }
        let job = try await InferenceJob(dataset: dataset, output: "preds", configuration: Self.config())
        await #expect {
            try await job.run(model: HalfModel())
        } throws: { error in
            (error as? MBDataError)?.code == .schemaMismatch && (error as? MBDataError)?.field == "prob"
        }
        #expect(try await Self.rows(dataset).isEmpty, "a refused submission writes nothing")
    }

    @Test func twoJobsAtOnceOnTheSameOutputWriteEverySampleOnce() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        // Two connections to the file, two job objects, created at once: as two processes.
        let other = try Dataset(path: dataset.path)
        async let a = InferenceJob(dataset: dataset, output: "preds", configuration: Self.config(k: 3))
        async let b = InferenceJob(dataset: other, output: "preds", configuration: Self.config(k: 2, mode: .synchronous))
        let (jobA, jobB) = try await (a, b)
        #expect(jobA.job.id == jobB.job.id, "one job for one output and plan")
        let (modelA, modelB) = (IDModel(), IDModel())
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await jobA.run(model: modelA) }
            group.addTask { try await jobB.run(model: modelB) }
            try await group.waitForAll()
        }
        let total = jobA.job.batches
        #expect(Set(modelA.calledBatches + modelB.calledBatches) == Set(0..<total))
        #expect(try await jobB.progress() == (total, total))
        try await Self.expectExactlyThePlan(dataset, jobA.job)
    }

    @Test func anIngestBesideTheJobLeavesItsPlanPinned() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let job = try await InferenceJob(dataset: dataset, output: "preds", configuration: Self.config())
        let pinned = job.job.plan.ids
        let newSamples = (0..<40).map { "{\"id\": \(10_000 + $0), \"image\": \(Array(repeating: Array(repeating: 1, count: 8), count: 8)), \"label\": \($0 % 10)}" }
        let newPath = try dir.write("more.jsonl", newSamples.joined(separator: "\n") + "\n")
        let intoVal = {
            var options = IngestOptions()
            options.split = "val"
            return options
        }()
        // The ingest commits while the job runs: the third call waits for it.
        let model = IDModel { calls in
            if calls == 3 { try await ingest(dataset, [newPath], options: intoVal) }
        }
        try await job.run(model: model)
        let valNow = try await dataset.plan(PlanParameters(batchSize: 16, tail: .pad, split: "val", shuffle: false)).ids
        #expect(valNow.count == pinned.count + 40, "the ingest committed into val")
        try await Self.expectExactlyThePlan(dataset, job.job)

        // Opened again after the ingest: the same job, still pinned, nothing left to run.
        let again = try await InferenceJob(dataset: dataset, output: "preds", configuration: Self.config())
        #expect(again.job.id == job.job.id && again.job.plan.ids == pinned)
        #expect(try await again.progress() == (job.job.batches, job.job.batches))
    }

    @Test func theAgreementOfAnOutputFieldWithASampleFieldIsOneJoin() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        let job = try await InferenceJob(dataset: dataset, output: "preds", configuration: Self.config())
        let stopAfterOne = IDModel { _ in job.stop() }
        try await job.run(model: stopAfterOne)
        let written = try await Self.rows(dataset)
        let labels = Dictionary(uniqueKeysWithValues: try await dataset.samples(split: "val").map { sample -> (Int64, Int64) in
            guard case .integer(let label) = sample.values[2] else { return (sample.id, -1) }
            return (sample.id, label)
        })
        let agreement = try await dataset.outputAgreement("preds", field: "pred", sampleField: "label", split: "val")
        #expect(agreement.rows == written.count && !written.isEmpty, "only samples with an output count")
        #expect(agreement.matching == written.filter { labels[$0.id] == $0.pred }.count)
        #expect(try await dataset.outputAgreement("preds", field: "pred", sampleField: "label", split: "train").rows == 0)
        await #expect(throws: MBDataError.self) { try await dataset.outputAgreement("preds", field: "prob", sampleField: "label") }
        await #expect(throws: MBDataError.self) { try await dataset.outputAgreement("preds", field: "pred", sampleField: "nope") }
    }

    @Test func configurationsAJobCannotFollowAreRefusedByName() async throws {
        let (dir, dataset) = try await Self.digits()
        defer { withExtendedLifetime(dir) {} }
        var twoEpochs = Self.config()
        twoEpochs.epochs = 0..<2
        var world = Self.config()
        world.world = 2
        var zeroK = Self.config()
        zeroK.concurrency = 0
        for (config, parameter) in [(twoEpochs, "epochs"), (world, "world"), (zeroK, "concurrency")] {
            await #expect {
                _ = try await InferenceJob(dataset: dataset, output: "preds", configuration: config)
            } throws: { error in
                (error as? MBDataError)?.parameter == "MultiBatchLoader.Configuration.\(parameter)"
            }
        }
        #expect(try await dataset.inferenceJobs().isEmpty, "a refused configuration creates no job")
        await #expect(throws: MBDataError.self) {
            _ = try await InferenceJob(dataset: dataset, output: "nope", configuration: Self.config())
        }
    }
}
