import Foundation
import HTTPTypes
import MBData
import MBDataWire

/// The embedded ``OutputStore``: the outputs of each inference job go into its dataset file
/// (schemas/serve-protocol.md §8), its leases live in the daemon's memory.
///
/// A job's progress — the batches whose outputs are committed — lives in the dataset file,
/// written by `Dataset.commitOutputs` with the outputs in one transaction; this store keeps
/// what it has seen of it (the job's state, which only grows: it is read from the file when
/// the job is registered or its state asked for, and told of every commit through this
/// daemon) and the leases, which live in memory only, on the daemon's clock, as share
/// leases do. A batch another process committed meanwhile may be leased once more; its
/// submission is refused as already done and nothing is written twice.
actor DatasetOutputStore: OutputStore {
    private struct Job {
        var served: ServedInferenceJob
        var job: OutputJob
    }

    private let clock: ServeClock
    private let metrics: ServeMetrics
    private var jobs: [String: Job] = [:]
    private var states: [String: CursorState] = [:]
    private var leases = LeaseTable()
    private var ended = RecentLeases()

    init(clock: ServeClock, metrics: ServeMetrics) {
        self.clock = clock
        self.metrics = metrics
    }

    /// Registers every job of `served` (at the daemon's start), so an id stays valid across restarts.
    func registerJobs(of served: DatasetCatalog.Served) async throws {
        for job in try await served.dataset.inferenceJobs() { _ = try await register(job, of: served) }
    }

    func job(dataset served: DatasetCatalog.Served, output: String, parameters: PlanParameters) async throws -> ServedInferenceJob {
        if let known = jobs[InferenceJobID.cursor(dataset: served.name, output: output, parameters: parameters)] { return known.served }
        _ = try await ServeError.checkOutput(output, of: served)
        return try await register(try await served.dataset.inferenceJob(output: output, parameters: parameters), of: served).served
    }

    private func register(_ job: OutputJob, of served: DatasetCatalog.Served) async throws -> Job {
        let id = InferenceJobID.cursor(dataset: served.name, output: job.output, parameters: job.plan.parameters)
        let finished = try await served.dataset.finishedBatches(of: job)
        let registered = Job(
            served: ServedInferenceJob(cursor: id, served: served, output: job.output, schema: job.schema, plan: job.plan), job: job)
        if jobs[id] == nil {
            jobs[id] = registered
            states[id] = CursorState(
                cursor: id, dataset: served.name, group: "default", mode: .infer, rank: 0, replica: 0, plan: job.plan.parameters,
                planFingerprint: job.plan.fingerprint, datasetVersion: job.plan.datasetVersion,
                batchesPerEpoch: job.plan.plan.batchesPerEpoch, epochs: [], output: job.output)
            metrics.register(dataset: served.name, output: job.output)
        }
        // A union: what was committed through this daemon meanwhile stays.
        _ = states[id]?.ack(epoch: 0, batches: finished)
        return jobs[id] ?? registered
    }

    func job(_ cursor: String) -> ServedInferenceJob? { jobs[cursor]?.served }

    /// The job's state with the committed batches read from the dataset file (so it shows
    /// what other processes committed too).
    func state(_ job: ServedInferenceJob) async throws -> CursorState {
        guard let known = jobs[job.cursor] else { throw ServeError.unknownCursor(job.cursor) }
        let finished = try await known.served.served.dataset.finishedBatches(of: known.job)
        _ = states[job.cursor]?.ack(epoch: 0, batches: finished)
        guard let state = states[job.cursor] else { throw ServeError.unknownCursor(job.cursor) }
        return state
    }

    func lease(_ job: ServedInferenceJob, seconds: Double) throws -> LeaseOutcome {
        let id = job.cursor
        guard let state = states[id] else { throw ServeError.unknownCursor(id) }
        let now = clock.now()
        let expired = leases.expire(cursor: id, now: now)
        for (lease, held) in expired { ended.insert(lease, cursor: id, batch: held.batch) }
        metrics.leaseExpired(dataset: job.served.name, count: expired.count)
        return leases.lease(cursor: id, epoch: 0, seconds: seconds, now: now) { state.firstUnacked(epoch: 0, skipping: $0) }
    }

    func release(lease: UInt64) { leases.remove(lease) }

    /// `409 already_done` when the lease ended and its batch is committed (a retry of a
    /// submission that did commit, or a late one whose batch another consumer finished),
    /// `409 lease_expired` when the lease expired, is unknown or another cursor's.
    func leasedBatch(_ lease: UInt64, of job: ServedInferenceJob) throws -> Int {
        let id = job.cursor
        if let held = leases.held(lease, by: id, now: clock.now()) { return held.batch }
        if let batch = ended.batch(of: lease, cursor: id), states[id]?.progress(epoch: 0).isFinished(batch) == true {
            throw ServeError.alreadyDone(batch: batch, lease: lease)
        }
        throw ServeError.leaseExpired(lease, cursor: id)
    }

    /// Checks the lease again (the check that counts), then commits through the dataset's
    /// group commit.
    func commit(_ tensors: [String: Tensor], batch: Int, lease: UInt64, of job: ServedInferenceJob) async throws -> CommittedOutputs {
        guard let known = jobs[job.cursor] else { throw ServeError.unknownCursor(job.cursor) }
        guard try leasedBatch(lease, of: job) == batch else {
            throw ServeError(.conflict, "lease_expired", "lease \(lease) of cursor \(job.cursor) holds another batch than \(batch)")
        }
        do {
            let commit = try await job.served.dataset.commitOutputs(tensors, batch: batch, of: known.job)
            return CommittedOutputs(rows: commit.rows, finished: committed(batch: batch, lease: lease, of: job.cursor))
        } catch let error as MBDataError where error.code == .alreadyDone {
            // Another consumer or process committed it: the batch is done, this lease too.
            _ = committed(batch: batch, lease: lease, of: job.cursor)
            throw ServeError(.conflict, "already_done", error.message)
        }
    }

    /// `batch` is committed, by the submission holding `lease` or before it: the lease ends;
    /// returns the job's committed batches.
    private func committed(batch: Int, lease: UInt64, of id: String) -> Int {
        leases.remove(lease)
        ended.insert(lease, cursor: id, batch: batch)
        _ = states[id]?.ack(epoch: 0, batches: [batch])
        return states[id]?.progress(epoch: 0).finishedCount ?? 0
    }
}
