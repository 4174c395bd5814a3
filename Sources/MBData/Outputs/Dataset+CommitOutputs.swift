import GRDB

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
        let path = self.path
        let rows = try await write { db in
            try Self.checkJob(db, job, path: path)
            let written = try OutputRowInserter(db: db, output: job.output, schema: job.schema).insert(submission)
            do {
                try db.execute(
                    sql: "INSERT INTO mbdata_output_batches(job, batch, rows, committed_at) VALUES (?, ?, ?, ?)",
                    arguments: [job.id, batch, written, Timestamp.now()])
            } catch let error as DatabaseError where error.isUniquenessViolation {
                // Rolled back with the rows above.
                throw MBDataError(.alreadyDone, "batch \(batch) of inference job \(job.id) is already committed; nothing was written", source: path)
            }
            return written
        }
        return OutputCommit(batch: batch, rows: rows)
    }

    /// Refuses a job that is not in this file as it was opened: another dataset's, or one
    /// whose output was dropped (and perhaps created again, with another schema) since — a
    /// job id may be reused once its row is gone.
    private static func checkJob(_ db: Database, _ job: OutputJob, path: String) throws {
        let row = try Row.fetchOne(
            db,
            sql: """
                SELECT j.output, j.fingerprint, o.schema FROM mbdata_output_jobs AS j JOIN mbdata_outputs AS o ON o.name = j.output
                WHERE j.id = ?
                """,
            arguments: [job.id])
        guard let row, row[0] as String == job.output, row[1] as String == job.plan.fingerprint,
            row[2] as String == job.canonicalSchema
        else {
            throw MBDataError(
                .invalidArgument, "inference job \(job.id) of output \(job.output) is not in this dataset (was the output dropped?)", source: path,
                parameter: "job")
        }
    }
}

extension DatabaseError {
    /// A primary-key or unique constraint refused the row.
    fileprivate var isUniquenessViolation: Bool {
        extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY || extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE
    }
}
