import GRDB

extension Dataset {
    /// Whether batch `batch` of `job` has its outputs committed: one primary-key lookup,
    /// cheap enough to ask before every model call.
    func isCommitted(batch: Int, of job: OutputJob) async throws -> Bool {
        try await read { db in
            try Bool.fetchOne(
                db, sql: "SELECT 1 FROM mbdata_output_batches WHERE job = ? AND batch = ?", arguments: [job.id, batch]) ?? false
        }
    }
}
