import Foundation
import GRDB
import Synchronization
import Testing

@testable import MBData

/// Group commit of outputs: the queue's grouping, a savepoint per batch in a group, and the
/// batches another process commits while a job runs.
@Suite struct OutputGroupCommitTests {
    struct Refused: Error {}

    @Test func requestsArrivingDuringAWriteAreWrittenTogetherAndARefusalStaysWithItsRequest() async throws {
        let groups = Mutex<[[Int]]>([])
        let (gate, opener) = AsyncStream<Void>.makeStream()
        let queue = GroupCommitQueue<Int, Int> { group in
            groups.withLock { $0.append(group) }
            if group == [0] {
                for await _ in gate { break }
            }
            return group.map { $0 == 2 ? .failure(Refused()) : .success($0 * 10) }
        }
        async let first = queue.submit(0)
        while groups.withLock({ $0.count }) == 0 { await Task.yield() }
        async let second = queue.submit(1)
        async let third = Self.outcome { try await queue.submit(2) }
        async let fourth = queue.submit(3)
        while queue.waitingCount < 3 { await Task.yield() }
        opener.yield()
        #expect(try await first == 0)
        #expect(try await second == 10)
        let refused = await third
        #expect(throws: Refused.self) { try refused.get() }
        #expect(try await fourth == 30)
        let written = groups.withLock { $0 }
        #expect(written.count == 2 && written[0] == [0] && written[1].sorted() == [1, 2, 3], "\(written)")
        #expect(queue.waitingCount == 0)
    }

    /// One group of three batches, the middle one committed before: it alone is refused
    /// (`.alreadyDone`, rolled back to its savepoint), the other two commit.
    @Test func aRefusedBatchInAGroupLeavesExactlyTheAcceptedOnes() async throws {
        let f = try await OutputFixture(train: 10, val: 0)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        _ = try await f.dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: 1)), batch: 1, of: job)
        let group = try (0..<3).map { batch in
            var tensors = PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: batch))
            tensors["pred"] = try Tensor(name: "pred", shape: [4], values: [Int64](repeating: 9, count: 4))
            return try Self.pending(tensors, batch: batch, of: job)
        }
        let dataset = f.dataset
        let outcomes = try await Dataset.writeToCompletion(dataset.pool, path: dataset.path) { db in
            try Dataset.writeOutputGroup(group, db: db, path: dataset.path, known: dataset.committedBatches).outcomes
        }
        #expect(outcomes.count == 3)
        #expect(try outcomes[0].get() == 4)
        #expect(throws: MBDataError.self) { try outcomes[1].get() }
        #expect((try? outcomes[1].get()) == nil && (outcomes[1].failure as? MBDataError)?.code == .alreadyDone)
        #expect(try outcomes[2].get() == 2)
        #expect(try await f.dataset.finishedBatches(of: job) == [0, 1, 2])
        #expect(try await f.count("SELECT count(*) FROM outputs_preds") == 10)
        #expect(try await f.count("SELECT count(*) FROM outputs_preds WHERE pred = 9") == 6, "batches 0 and 2, not 1's second try")
        #expect(try await f.dataset.verifyOutputs().isEmpty)
    }

    /// A group whose transaction never commits (the process killed before its COMMIT, here
    /// rolled back) leaves nothing of any of its batches.
    @Test func aGroupCutShortBeforeItsCommitLeavesNoBatch() async throws {
        struct Killed: Error {}
        let f = try await OutputFixture(train: 10, val: 0)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        let group = try (0..<3).map { batch in try Self.pending(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: batch)), batch: batch, of: job) }
        let dataset = f.dataset
        let known = CommittedBatches()
        await #expect(throws: Killed.self) {
            try await dataset.pool.write { db in
                let outcomes = try Dataset.writeOutputGroup(group, db: db, path: dataset.path, known: known).outcomes
                #expect(outcomes.allSatisfy { (try? $0.get()) != nil }, "every batch was written inside the transaction")
                throw Killed()
            }
        }
        #expect(try await f.dataset.finishedBatches(of: job) == [])
        #expect(try await f.count("SELECT count(*) FROM outputs_preds") == 0)
        // Each batch commits afterwards as if never tried.
        for batch in 0..<3 {
            _ = try await f.dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: batch)), batch: batch, of: job)
        }
        #expect(try await f.dataset.finishedBatches(of: job) == [0, 1, 2])
    }

    /// Another process (another `Dataset` on the file) commits batch 2 while the model runs
    /// batch 0, and batch 1 while the model runs batch 1: the job learns of batch 2 with its
    /// commit of batch 0 and never gives it to the model; batch 1's commit is `.alreadyDone`,
    /// which finishes it. Every sample ends with exactly one row.
    @Test func batchesAnotherProcessCommitsAreSkippedOrFoundDone() async throws {
        let (dir, dataset) = try await InferenceJobTests.digits()
        defer { withExtendedLifetime(dir) {} }
        let configuration = InferenceJobTests.config(k: 1, mode: .synchronous)
        let other = try Dataset(path: dataset.path)
        let otherJob = try await other.inferenceJob(output: "preds", parameters: configuration.plan)
        let model = IDModel { call in
            switch call {
            case 1: _ = try await other.commitOutputs(Self.idOutputs(otherJob, batch: 2), batch: 2, of: otherJob)
            case 2: _ = try await other.commitOutputs(Self.idOutputs(otherJob, batch: 1), batch: 1, of: otherJob)
            default: break
            }
        }
        let job = try await InferenceJob(dataset: dataset, output: "preds", configuration: configuration)
        #expect(job.job.batches > 3)
        try await job.run(model: model)
        #expect(model.calledBatches == [0, 1] + Array(3..<job.job.batches), "batch 2 never went to the model")
        #expect(try await job.progress() == (job.job.batches, job.job.batches))
        try await InferenceJobTests.expectExactlyThePlan(dataset, job.job)
    }

    /// An output dropped and created again may reuse a job id: what the dataset knew of the
    /// old job's batches does not make the new job skip them.
    @Test func aJobOfAnOutputCreatedAgainRunsEveryBatch() async throws {
        let (dir, dataset) = try await InferenceJobTests.digits()
        defer { withExtendedLifetime(dir) {} }
        let configuration = InferenceJobTests.config(k: 2)
        try await InferenceJob(dataset: dataset, output: "preds", configuration: configuration).run(model: IDModel())
        try await dataset.dropOutput("preds")
        try await dataset.createOutput("preds", schema: InferenceJobTests.predsSchema)
        let again = try await InferenceJob(dataset: dataset, output: "preds", configuration: configuration)
        let model = IDModel()
        try await again.run(model: model)
        #expect(model.calledBatches.sorted() == Array(0..<again.job.batches))
        try await InferenceJobTests.expectExactlyThePlan(dataset, again.job)
    }

    static func outcome(_ body: () async throws -> Int) async -> Result<Int, any Error> {
        do {
            return .success(try await body())
        } catch {
            return .failure(error)
        }
    }

    static func pending(_ tensors: [String: Tensor], batch: Int, of job: OutputJob) throws -> PendingOutputCommit {
        let submission = try OutputSubmission.validate(tensors, schema: job.schema, expectedIDs: job.plan.sampleIDs(epoch: 0, batch: batch))
        return PendingOutputCommit(submission: submission, batch: batch, job: job)
    }

    /// IDModel's outputs for batch `batch` of `job`.
    static func idOutputs(_ job: OutputJob, batch: Int) throws -> [String: Tensor] {
        let ids = job.plan.sampleIDs(epoch: 0, batch: batch).map { $0 ?? -1 }
        return [
            "pred": try Tensor(name: "pred", shape: [ids.count], values: ids.map(IDModel.pred)),
            "prob": try Tensor(name: "prob", shape: [ids.count, 10], values: ids.flatMap(IDModel.prob)),
        ]
    }
}

extension Result {
    /// The error, if a failure.
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
