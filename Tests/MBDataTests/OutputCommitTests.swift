import Foundation
import GRDB
import Testing

@testable import MBData

/// `commitOutputs`: what it writes, byte for byte, and that a refused submission writes nothing.
@Suite struct OutputCommitTests {
    @Test func commitWritesEveryRealRowExactlyAndSkipsPadding() async throws {
        let f = try await OutputFixture(train: 10, val: 3)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        #expect(job.batches == 3)
        #expect(job.plan.sampleIDs(epoch: 0, batch: 2) == [9, 10, nil, nil])
        var commits: [OutputCommit] = []
        for batch in [2, 0, 1] {
            // Without `_id` for one batch: it is optional.
            let tensors = PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: batch), includeIDs: batch != 1)
            commits.append(try await f.dataset.commitOutputs(tensors, batch: batch, of: job))
        }
        #expect(commits == [OutputCommit(batch: 2, rows: 2), OutputCommit(batch: 0, rows: 4), OutputCommit(batch: 1, rows: 4)])
        #expect(try await f.dataset.finishedBatches(of: job) == [0, 1, 2])

        let rows = try await f.dataset.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT _id, pred, prob, score, flag, grid, typeof(score) FROM outputs_preds ORDER BY _id").map { row in
                (id: row[0] as Int64, pred: row[1] as Int64, prob: row[2] as Data, score: row[3] as Double, flag: row[4] as Int64,
                 grid: row[5] as Data, scoreType: row[6] as String)
            }
        }
        #expect(rows.map(\.id) == Array(1...10))
        for row in rows {
            #expect(row.pred == row.id % 3)
            #expect(row.prob == Data(NPY.float32(PredsOutputs.prob(row.id))))
            #expect(row.score == Double(Float(row.id) / 4) && row.scoreType == "real")
            #expect(row.flag == row.id & 1)
            #expect(row.grid == Data(NPY.littleEndian(PredsOutputs.grid(row.id))))
        }
        let batchRows = try await f.dataset.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT batch, rows FROM mbdata_output_batches WHERE job = ? ORDER BY batch", arguments: [job.id])
                .map { [$0[0] as Int, $0[1] as Int] }
        }
        #expect(batchRows == [[0, 4], [1, 4], [2, 2]])
        // The query of the issue: outputs join samples on _id.
        #expect(try await f.count("SELECT count(*) FROM samples s JOIN outputs_preds o USING (_id) WHERE s.key = o._id - 1") == 10)
        #expect(try await f.dataset.output("preds").rows == 10)
    }

    /// Each refusal names the tensor at fault and leaves no output row and no batch record.
    static let refusals: [(name: String, field: String?, message: String, change: @Sendable (inout [String: Tensor], [Int64?]) -> Void)] = [
        ("missing field", "prob", "missing field", { tensors, _ in tensors["prob"] = nil }),
        ("unknown tensor", "_valid", "unknown tensor", { tensors, ids in
            tensors["_valid"] = Tensor(name: "_valid", dtype: .bool, shape: [ids.count], bytes: ids.map { $0 == nil ? 0 : 1 })
        }),
        ("dtype", "prob", "dtype float64, expected float32", { tensors, ids in
            tensors["prob"] = Tensor(name: "prob", dtype: .float64, shape: [ids.count, 3], bytes: NPY.float64(Array(repeating: 0, count: ids.count * 3)))
        }),
        ("rows", "prob", "shape [3, 3], expected [4, 3]", { tensors, _ in
            tensors["prob"] = Tensor(name: "prob", dtype: .float32, shape: [3, 3], bytes: NPY.float32(Array(repeating: 0, count: 9)))
        }),
        ("inner shape", "grid", "shape [4, 4], expected [4, 2, 2]", { tensors, _ in
            tensors["grid"] = Tensor(name: "grid", dtype: .int16, shape: [4, 4], bytes: NPY.littleEndian(Array(repeating: Int16(0), count: 16)))
        }),
        ("bytes", "pred", "31 bytes of data, expected 32", { tensors, _ in
            tensors["pred"] = Tensor(name: "pred", dtype: .int64, shape: [4], bytes: Array(repeating: 0, count: 31))
        }),
        ("_id", "_id", "_id row 1 is 3, the batch's sample there is 6", { tensors, ids in
            var wrong = ids.map { $0 ?? -1 }
            wrong[1] = 3
            tensors["_id"] = Tensor(name: "_id", dtype: .int64, shape: [ids.count], bytes: NPY.littleEndian(wrong))
        }),
        ("_id dtype", "_id", "dtype int32, expected int64", { tensors, ids in
            tensors["_id"] = Tensor(name: "_id", dtype: .int32, shape: [ids.count], bytes: NPY.littleEndian(ids.map { Int32($0 ?? -1) }))
        }),
        ("bool", "flag", "bool value 2 at row 3, expected 0 or 1", { tensors, _ in
            tensors["flag"] = Tensor(name: "flag", dtype: .bool, shape: [4], bytes: [0, 1, 0, 2])
        }),
        ("NaN scalar", "score", "NaN at row 2", { tensors, _ in
            tensors["score"] = Tensor(name: "score", dtype: .float16, shape: [4], bytes: NPY.littleEndian([0, 0, Float16.nan.bitPattern, 0]))
        }),
    ]

    @Test(arguments: refusals.indices)
    func aRefusedSubmissionNamesItsFieldAndWritesNothing(index: Int) async throws {
        let refusal = Self.refusals[index]
        let f = try await OutputFixture(train: 10, val: 0)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        let ids = job.plan.sampleIDs(epoch: 0, batch: 1)
        var tensors = PredsOutputs.tensors(for: ids)
        refusal.change(&tensors, ids)
        let error = await #expect(throws: MBDataError.self, "\(refusal.name)") { try await f.dataset.commitOutputs(tensors, batch: 1, of: job) }
        #expect(error?.code == .schemaMismatch && error?.field == refusal.field, "\(refusal.name): \(String(describing: error))")
        #expect(error?.message.contains(refusal.message) == true, "\(refusal.name): \(error?.message ?? "")")
        #expect(try await f.count("SELECT count(*) FROM outputs_preds") == 0)
        #expect(try await f.count("SELECT count(*) FROM mbdata_output_batches") == 0)
        // A NaN in an array is stored as is: only a scalar REAL cannot hold it.
        #expect(try await f.dataset.finishedBatches(of: job) == [])
    }

    @Test func aBatchOutsideThePlanIsRefused() async throws {
        let f = try await OutputFixture(train: 10, val: 0)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        for batch in [-1, 3] {
            let error = await #expect(throws: MBDataError.self) {
                try await f.dataset.commitOutputs(PredsOutputs.tensors(for: [1, 2, 3, 4]), batch: batch, of: job)
            }
            #expect(error?.code == .schemaMismatch && error?.parameter == "batch")
        }
        #expect(try await f.count("SELECT count(*) FROM mbdata_output_batches") == 0)
    }

    @Test func nanInsideAnArrayIsKept() async throws {
        let f = try await OutputFixture(train: 4, val: 0)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        var tensors = PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: 0))
        let probs: [Float] = [.nan, .infinity, -.infinity] + Array(repeating: 1, count: 9)
        tensors["prob"] = Tensor(name: "prob", dtype: .float32, shape: [4, 3], bytes: NPY.float32(probs))
        #expect(try await f.dataset.commitOutputs(tensors, batch: 0, of: job).rows == 4)
        let stored = try await f.dataset.pool.read { db in try Data.fetchOne(db, sql: "SELECT prob FROM outputs_preds WHERE _id = 1") }
        #expect(stored == Data(NPY.float32(Array(probs[0..<3]))))
    }

    @Test func committingABatchTwiceIsAlreadyDoneAndWritesNothingMore() async throws {
        let f = try await OutputFixture(train: 10, val: 0)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        let ids = job.plan.sampleIDs(epoch: 0, batch: 1)
        _ = try await f.dataset.commitOutputs(PredsOutputs.tensors(for: ids), batch: 1, of: job)
        var different = PredsOutputs.tensors(for: ids)
        different["pred"] = Tensor(name: "pred", dtype: .int64, shape: [4], bytes: NPY.littleEndian([Int64](repeating: 9, count: 4)))
        let error = await #expect(throws: MBDataError.self) { try await f.dataset.commitOutputs(different, batch: 1, of: job) }
        #expect(error?.code == .alreadyDone)
        #expect(try await f.count("SELECT count(*) FROM outputs_preds") == 4)
        #expect(try await f.count("SELECT count(*) FROM outputs_preds WHERE pred = 9") == 0)
        #expect(try await f.count("SELECT count(*) FROM mbdata_output_batches") == 1)
    }

    /// Two jobs of one output over overlapping samples: the second cannot write a sample the
    /// first wrote, and its batch is not recorded.
    @Test func aSecondJobOverTheSameSamplesIsRefused() async throws {
        let f = try await OutputFixture(train: 10, val: 0)
        let small = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        let large = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 8))
        #expect(small.id != large.id)
        _ = try await f.dataset.commitOutputs(PredsOutputs.tensors(for: small.plan.sampleIDs(epoch: 0, batch: 0)), batch: 0, of: small)
        let error = await #expect(throws: MBDataError.self) {
            try await f.dataset.commitOutputs(PredsOutputs.tensors(for: large.plan.sampleIDs(epoch: 0, batch: 0)), batch: 0, of: large)
        }
        #expect(error?.code == .alreadyDone)
        #expect(try await f.count("SELECT count(*) FROM outputs_preds") == 4)
        #expect(try await f.dataset.finishedBatches(of: large) == [])
        // Its second batch (samples 9, 10) is its own.
        #expect(try await f.dataset.commitOutputs(PredsOutputs.tensors(for: large.plan.sampleIDs(epoch: 0, batch: 1)), batch: 1, of: large).rows == 2)
    }

    /// Many commits at once (as k consumers make them): every batch once, no lost row.
    @Test func concurrentCommitsOfAllBatchesAndRepeats() async throws {
        let f = try await OutputFixture(train: 50, val: 0)
        let job = try await f.dataset.inferenceJob(output: "preds", parameters: OutputFixture.parameters(batchSize: 4))
        let dataset = f.dataset
        let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
            for attempt in 0..<(2 * job.batches) {
                let batch = attempt % job.batches
                group.addTask {
                    do {
                        _ = try await dataset.commitOutputs(PredsOutputs.tensors(for: job.plan.sampleIDs(epoch: 0, batch: batch)), batch: batch, of: job)
                        return true
                    } catch MBDataError.Code.alreadyDone {
                        return false
                    }
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == job.batches)
        #expect(try await f.count("SELECT count(*) FROM outputs_preds") == 50)
        #expect(try await f.dataset.finishedBatches(of: job) == Array(0..<job.batches))
    }
}
