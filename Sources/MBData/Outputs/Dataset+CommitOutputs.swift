extension Dataset {
    /// Writes the outputs of one batch of `job` and records the batch as done, in one
    /// transaction: either every real row and the batch's record are committed, or nothing is.
    ///
    /// `tensors` holds one tensor per field of the output's schema, `[R] + field.shape` of the
    /// field's dtype, where R is the batch's row count in the plan (padding rows included;
    /// their values are not written), and optionally `_id`, `int64 [R]`, the batch's sample
    /// ids with -1 for padding — the collated batch's `_id` as it came.
    ///
    /// A sample of the batch that has a row already — written by another job of the output,
    /// whose plan put it in another batch — keeps that row: each sample has one row, the
    /// first committed, and the batch writes the rest.
    ///
    /// Commits made at once (by concurrent calls of a job, or of clients of `serve`) share one
    /// transaction, each batch in a savepoint of its own: a refused batch is rolled back
    /// alone, and every call returns once the shared transaction committed.
    ///
    /// - Returns: The batch and the rows written (its real rows less those kept).
    /// - Throws: `MBDataError` with `MBDataError.Code.schemaMismatch` naming the tensor
    ///   (the field missing, unknown, of another dtype or shape, or an `_id` not the batch's) or, with parameter `batch`, a
    ///   batch outside the plan; `MBDataError.Code.alreadyDone` when the batch is already committed;
    ///   `MBDataError.Code.invalidArgument` when the job is not one of this dataset's (or its
    ///   output was dropped); `MBDataError.Code.storage` when the file cannot be written.
    ///   Whatever is thrown, nothing of the submission is written.
    public func commitOutputs(_ tensors: [String: Tensor], batch: Int, of job: OutputJob) async throws -> OutputCommit {
        guard (0..<job.batches).contains(batch) else {
            throw MBDataError(
                .schemaMismatch, "batch \(batch) is outside the job's plan of \(job.batches) batches", source: path, parameter: "batch")
        }
        let submission = try OutputSubmission.validate(tensors, schema: job.schema, expectedIDs: job.plan.sampleIDs(epoch: 0, batch: batch))
        let rows = try await outputCommits.submit(PendingOutputCommit(submission: submission, batch: batch, job: job))
        return OutputCommit(batch: batch, rows: rows)
    }

    /// Whether batch `batch` of `job` is known to be committed, without reading the file:
    /// committed through this dataset, or by another process before this dataset's last
    /// commit of the job. A batch not known may still be committed (its commit then throws `.alreadyDone`).
    func isKnownCommitted(batch: Int, of job: OutputJob) -> Bool {
        committedBatches.contains(job: job.id, batch: batch)
    }
}
