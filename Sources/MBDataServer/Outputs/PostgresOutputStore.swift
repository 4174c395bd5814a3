import Foundation
import HTTPTypes
import MBData
import MBDataWire

/// The ``OutputStore`` of daemons that share a PostgreSQL state database: an inference job
/// is a cursor there (mode `infer`), leased with the share groups' lease machinery, so its
/// leases are exclusive across daemons and expire on the database's clock; its outputs go
/// to a table of the output in the schema `mbdata` (``PostgresOutputTable``), written with
/// the batch's ack in one transaction (``PostgresStateStore/commitOutputs(_:batch:lease:cursor:table:)``).
/// Any daemon serving the dataset serves any of its jobs: one that has not seen a job finds
/// it from its cursor.
///
/// The job's plan is pinned in the database (`mbdata.pinned_plans`, keyed by the job's
/// cursor), so every daemon plans it at the same dataset version; a daemon whose copy of
/// the dataset plans it otherwise is refused (`409 cursor_mismatch`), and one whose output
/// schema differs too (`409 output_mismatch`). The dataset file is only read.
actor PostgresOutputStore: OutputStore {
    private struct Job {
        var served: ServedInferenceJob
        var table: PostgresOutputTable
    }

    private let store: PostgresStateStore
    private let catalog: DatasetCatalog
    private let metrics: ServeMetrics
    private var jobs: [String: Job] = [:]
    /// The batches of the leases this daemon granted, so a late submission whose batch
    /// another consumer finished learns `already_done`.
    private var granted = RecentLeases()

    init(store: PostgresStateStore, catalog: DatasetCatalog, metrics: ServeMetrics) {
        self.store = store
        self.catalog = catalog
        self.metrics = metrics
    }

    func job(dataset served: DatasetCatalog.Served, output: String, parameters: PlanParameters) async throws -> ServedInferenceJob {
        try await known(dataset: served, output: output, parameters: parameters).served
    }

    private func known(dataset served: DatasetCatalog.Served, output: String, parameters: PlanParameters) async throws -> Job {
        let id = InferenceJobID.cursor(dataset: served.name, output: output, parameters: parameters)
        if let known = jobs[id] { return known }
        let schema = try await ServeError.checkOutput(output, of: served).schema
        let table = try await store.openOutput(dataset: served.name, output: output, schema: schema)
        let plan = try await pinnedPlan(served, parameters, key: id)
        let fresh = CursorState(
            cursor: id, dataset: served.name, group: "default", mode: .infer, rank: 0, replica: 0, plan: plan.parameters,
            planFingerprint: plan.fingerprint, datasetVersion: plan.datasetVersion, batchesPerEpoch: plan.plan.batchesPerEpoch, epochs: [],
            output: output)
        let stored = try await store.openInferenceJob(fresh, output: output, expectedRows: plan.plan.sampleCount - plan.plan.droppedPerEpoch)
        guard stored.planFingerprint == plan.fingerprint, stored.batchesPerEpoch == plan.plan.batchesPerEpoch else {
            throw ServeError(
                .conflict, "cursor_mismatch",
                "inference job \(id) is stored for plan \(stored.planFingerprint) at dataset version \(stored.datasetVersion); this daemon's dataset file plans it as \(plan.fingerprint)"
            )
        }
        let job = Job(served: ServedInferenceJob(cursor: id, served: served, output: output, schema: schema, plan: plan), table: table)
        if jobs[id] == nil {
            jobs[id] = job
            metrics.register(dataset: served.name, output: output)
        }
        return jobs[id] ?? job
    }

    /// The plan at the version the job is pinned to: the current one for a new job.
    private func pinnedPlan(_ served: DatasetCatalog.Served, _ parameters: PlanParameters, key: String) async throws -> DatasetPlan {
        do {
            let pinned = try await store.pinnedVersion(key: key)
            let plan = try await served.dataset.plan(parameters, version: pinned)
            guard pinned == nil else { return plan }
            let version = try await store.pin(key: key, version: plan.datasetVersion)
            return version == plan.datasetVersion ? plan : try await served.dataset.plan(parameters, version: version)
        } catch let error as MBDataError where error.code == .invalidArgument {
            throw ServeError(.badRequest, "invalid_parameter", error.message)
        }
    }

    func job(_ cursor: String) async throws -> ServedInferenceJob? {
        guard cursor.hasPrefix(InferenceJobID.prefix) else { return nil }
        if let known = jobs[cursor] { return known.served }
        guard let state = try await store.cursor(cursor), state.mode == .infer, let output = state.output,
            let served = try? await catalog.served(Substring(state.dataset))
        else { return nil }
        return try await job(dataset: served, output: output, parameters: state.plan)
    }

    func state(_ job: ServedInferenceJob) async throws -> CursorState {
        guard let state = try await store.cursor(job.cursor) else { throw ServeError.unknownCursor(job.cursor) }
        return state
    }

    func lease(_ job: ServedInferenceJob, seconds: Double) async throws -> LeaseOutcome {
        let (outcome, expired) = try await store.lease(cursor: job.cursor, epoch: 0, seconds: seconds) { state, held in
            state.firstUnacked(epoch: 0, skipping: held)
        }
        metrics.leaseExpired(dataset: job.served.name, count: expired)
        if case .leased(let batch, let lease) = outcome { granted.insert(lease, cursor: job.cursor, batch: batch) }
        return outcome
    }

    func release(lease: UInt64) async {
        // A release that fails leaves the lease to expire.
        try? await store.releaseLease(lease)
    }

    func leasedBatch(_ lease: UInt64, of job: ServedInferenceJob) async throws -> Int {
        do {
            return try await store.leasedBatch(lease, cursor: job.cursor)
        } catch let refused as ServeError where refused.code == "lease_expired" {
            throw await refusal(refused, lease: lease, of: job)
        }
    }

    func commit(_ tensors: [String: Tensor], batch: Int, lease: UInt64, of job: ServedInferenceJob) async throws -> CommittedOutputs {
        guard let known = jobs[job.cursor] else { throw ServeError.unknownCursor(job.cursor) }
        let submission = try OutputSubmission.validate(tensors, schema: job.schema, expectedIDs: job.plan.sampleIDs(epoch: 0, batch: batch))
        do {
            let (rows, state) = try await store.commitOutputs(submission, batch: batch, lease: lease, cursor: job.cursor, table: known.table)
            return CommittedOutputs(rows: rows, finished: state.progress(epoch: 0).finishedCount)
        } catch let refused as ServeError where refused.code == "lease_expired" {
            throw await refusal(refused, lease: lease, of: job)
        }
    }

    /// `already_done` rather than `lease_expired` when this daemon granted the lease and its
    /// batch is committed meanwhile (by another consumer).
    private func refusal(_ refused: ServeError, lease: UInt64, of job: ServedInferenceJob) async -> ServeError {
        guard let batch = granted.batch(of: lease, cursor: job.cursor), let state = try? await store.cursor(job.cursor),
            state.progress(epoch: 0).isFinished(batch)
        else { return refused }
        return ServeError.alreadyDone(batch: batch, lease: lease)
    }
}
