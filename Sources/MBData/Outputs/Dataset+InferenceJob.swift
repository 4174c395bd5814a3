import Foundation
import GRDB

extension Dataset {
    /// The inference job of `output` under `parameters`, created when there is none: a new
    /// job pins the current dataset version, an existing one re-makes its plan at its stored
    /// version, so samples ingested since do not change it. Any number of processes may open
    /// the same job at once; they all get the one job.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when `parameters.world`
    ///   is not 1, the parameters are invalid, or there is no such output;
    ///   `MBDataError.Code.invalidDataset` when the stored job's plan no longer matches the
    ///   samples (its fingerprint differs) or nothing was ingested;
    ///   `MBDataError.Code.storage` when the file cannot be read or written.
    public func inferenceJob(output: String, parameters: PlanParameters) async throws -> OutputJob {
        guard parameters.world == 1 else {
            throw MBDataError(
                .invalidArgument, "an inference job runs one plan for every consumer: world must be 1, got \(parameters.world)",
                source: path, parameter: "PlanParameters.world")
        }
        let path = self.path
        let (schema, existing) = try await read { db in
            (try Self.outputSchema(db, output, path: path), try StoredJob.fetch(db, output: output, planKey: parameters.key))
        }
        if let existing { return try await job(existing, output: output, schema: schema) }
        let plan = try await self.plan(parameters)
        let planJSON = try StoredJob.encode(parameters)
        let stored = try await write { db in
            _ = try Self.outputSchema(db, output, path: path)
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO mbdata_output_jobs(output, plan_key, plan, fingerprint, dataset_version, batches, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    output, parameters.key, planJSON, plan.fingerprint, plan.datasetVersion, plan.plan.batchesPerEpoch, Timestamp.now(),
                ])
            return try StoredJob.fetch(db, output: output, planKey: parameters.key)
        }
        guard let stored else { throw MBDataError(.storage, "the job of output \(output) vanished as it was created", source: path) }
        if stored.fingerprint == plan.fingerprint && stored.datasetVersion == plan.datasetVersion {
            return OutputJob(id: stored.id, output: output, schema: schema, plan: plan)
        }
        // Another process created the job first, at another version.
        return try await job(stored, output: output, schema: schema)
    }

    /// Every inference job of the dataset, or of `output`, by id, each with its pinned plan.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidDataset` when a job's plan no
    ///   longer matches the samples; `MBDataError.Code.storage` when the file cannot be read.
    public func inferenceJobs(output: String? = nil) async throws -> [OutputJob] {
        let path = self.path
        let rows = try await read { db -> [(StoredJob, Schema)] in
            let jobs = try StoredJob.fetchAll(db, output: output)
            return try jobs.map { ($0, try Self.outputSchema(db, $0.output, path: path)) }
        }
        var jobs: [OutputJob] = []
        for (stored, schema) in rows { jobs.append(try await job(stored, output: stored.output, schema: schema)) }
        return jobs
    }

    /// The batches of `job` whose outputs are committed, ascending.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.storage` when the file cannot be read.
    public func finishedBatches(of job: OutputJob) async throws -> [Int] {
        try await read { db in try Int.fetchAll(db, sql: "SELECT batch FROM mbdata_output_batches WHERE job = ? ORDER BY batch", arguments: [job.id]) }
    }

    /// The job of a stored row: its plan re-made at its version, checked against its fingerprint.
    private func job(_ stored: StoredJob, output: String, schema: Schema) async throws -> OutputJob {
        let parameters = try stored.parameters(source: path)
        let plan = try await self.plan(parameters, version: stored.datasetVersion)
        guard plan.fingerprint == stored.fingerprint else {
            throw MBDataError(
                .invalidDataset,
                "inference job \(stored.id) of output \(output) was planned over other samples than the dataset holds at version \(stored.datasetVersion) (fingerprint \(stored.fingerprint), now \(plan.fingerprint))",
                source: path)
        }
        return OutputJob(id: stored.id, output: output, schema: schema, plan: plan)
    }
}

/// A row of `mbdata_output_jobs`.
struct StoredJob: Sendable {
    let id: Int64
    let output: String
    let plan: String
    let fingerprint: String
    let datasetVersion: Int

    private static let columns = "id, output, plan, fingerprint, dataset_version"

    private init(_ row: Row) {
        id = row["id"]
        output = row["output"]
        plan = row["plan"]
        fingerprint = row["fingerprint"]
        datasetVersion = row["dataset_version"]
    }

    static func fetch(_ db: Database, output: String, planKey: String) throws -> StoredJob? {
        try Row.fetchOne(db, sql: "SELECT \(columns) FROM mbdata_output_jobs WHERE output = ? AND plan_key = ?", arguments: [output, planKey])
            .map(StoredJob.init)
    }

    static func fetchAll(_ db: Database, output: String?) throws -> [StoredJob] {
        let filter = output == nil ? "" : " WHERE output = ?"
        return try Row.fetchAll(db, sql: "SELECT \(columns) FROM mbdata_output_jobs\(filter) ORDER BY id", arguments: StatementArguments(output.map { [$0] } ?? []))
            .map(StoredJob.init)
    }

    static func encode(_ parameters: PlanParameters) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(parameters), as: UTF8.self)
    }

    func parameters(source: String) throws -> PlanParameters {
        do {
            return try JSONDecoder().decode(PlanParameters.self, from: Data(plan.utf8))
        } catch {
            throw MBDataError(.invalidDataset, "inference job \(id) has an unreadable plan: \(plan)", source: source, cause: error)
        }
    }
}
