import Foundation
import Testing

@testable import MBData

/// Inference jobs in the dataset file: found or created, pinned to a version, world 1.
@Suite struct InferenceJobStoreTests {
    @Test func aJobIsPinnedToTheVersionItWasCreatedAt() async throws {
        let f = try await OutputFixture(train: 10, val: 0)
        let parameters = OutputFixture.parameters(batchSize: 4)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: parameters)
        _ = try await f.dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: 0)), batch: 0, of: job)
        try await f.addSamples(keys: 10..<15, split: "train")

        let reopened = try await Dataset(path: f.dataset.path).inferenceJob(output: "preds", parameters: parameters)
        #expect(reopened == job)
        #expect(Array(reopened.plan.ids) == Array(1...10) && reopened.batches == 3)
        #expect(try await f.dataset.finishedBatches(of: reopened) == [0])
        // Other parameters make another job, over what the dataset holds now.
        let wider = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 5))
        #expect(wider.id != job.id && Array(wider.plan.ids) == Array(1...15))
        #expect(try await f.dataset.inferenceJobs(output: "preds") == [job, wider])
        #expect(try await f.dataset.inferenceJobs() == [job, wider])
        #expect(try await f.dataset.inferenceJobs(output: "other") == [])
    }

    /// Ingest committing beside the job's commits: the job writes exactly its plan's samples.
    @Test func ingestBesideCommitsLeavesThePlanPinned() async throws {
        let f = try await OutputFixture(train: 40, val: 0)
        let parameters = OutputFixture.parameters(batchSize: 3)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: parameters)
        let dataset = f.dataset
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for chunk in 0..<4 { try await f.addSamples(keys: (1000 + 10 * chunk)..<(1010 + 10 * chunk), split: "train") }
            }
            for consumer in 0..<3 {
                group.addTask {
                    for batch in stride(from: consumer, to: job.batches, by: 3) {
                        _ = try await dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: batch)), batch: batch, of: job)
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await f.dataset.info().sampleCount == 80)
        #expect(try await f.dataset.finishedBatches(of: job) == Array(0..<14))
        #expect(try await f.count("SELECT count(*) FROM outputs_preds") == 40)
        #expect(try await f.count("SELECT max(_id) FROM outputs_preds") == 40)
        #expect(try await f.dataset.inferenceJob(output: "preds", parameters: parameters) == job)
        #expect(try await f.dataset.outputCoverage("preds") == [OutputCoverage(split: "train", written: 40, expected: 80)])
        #expect(try await f.dataset.verifyOutputs().isEmpty)
    }

    @Test func concurrentOpenersGetOneJob() async throws {
        let f = try await OutputFixture(train: 10, val: 0)
        let dataset = f.dataset
        let jobs = try await withThrowingTaskGroup(of: OutputJob.self) { group in
            for _ in 0..<6 { group.addTask { try await dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters()) } }
            return try await group.reduce(into: [OutputJob]()) { $0.append($1) }
        }
        #expect(Set(jobs).count == 1)
        #expect(try await f.count("SELECT count(*) FROM mbdata_output_jobs") == 1)
    }

    @Test func worldOtherThanOneAndUnknownOutputsAreRefused() async throws {
        let f = try await OutputFixture(train: 10, val: 0)
        let world = await #expect(throws: MBDataError.self) {
            try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4, world: 2))
        }
        #expect(world?.code == .invalidArgument && world?.parameter == "PlanParameters.world")
        let unknown = await #expect(throws: MBDataError.self) {
            try await f.dataset.inferenceJob(output: "nope", parameters: OutputFixture.parameters())
        }
        #expect(unknown?.matches(.invalidArgument, "no output named nope") == true)
        let emptySplit = await #expect(throws: MBDataError.self) {
            try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(split: "test"))
        }
        #expect(emptySplit?.code == .invalidArgument)
        #expect(try await f.count("SELECT count(*) FROM mbdata_output_jobs") == 0)
    }

    /// A stored job whose samples changed under it (edited with sqlite3) is not silently re-planned.
    @Test func aJobWhosePlanNoLongerMatchesIsRefused() async throws {
        let f = try await OutputFixture(train: 10, val: 0)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters())
        try await f.sql("DELETE FROM samples WHERE _id = 2")
        let error = await #expect(throws: MBDataError.self) {
            try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters())
        }
        #expect(error?.matches(.invalidDataset, "inference job \(job.id)") == true)
    }
}
