import Foundation
import HTTPTypes
import MBData
import MBDataWire

/// The inference jobs of the served datasets, by cursor id, and their leases
/// (schemas/serve-protocol.md §8).
///
/// A job's progress — the batches whose outputs are committed — lives in the dataset file,
/// written by `Dataset.commitOutputs` with the outputs in one transaction; this book keeps
/// what it has seen of it (the job's state, which only grows: it is read from the file when
/// the job is registered or its state asked for, and told of every commit through this
/// daemon) and the leases, which live in memory only, on the daemon's clock, as share
/// leases do. A batch another process committed meanwhile may be leased once more; its
/// submission is refused as already done and nothing is written twice.
actor InferenceBook {
    /// A job as the daemon serves it.
    struct Job: Sendable {
        var cursor: String
        var served: DatasetCatalog.Served
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

    /// The cursor id of an inference job: the same for the same dataset name, output and
    /// plan parameters, in any daemon.
    static func cursorID(dataset: String, output: String, parameters: PlanParameters) -> String {
        CursorState.hashedID(prefix: "o-", key: [dataset, output, parameters.key].joined(separator: "|"))
    }

    /// Registers every job of `served` (at the daemon's start).
    func registerJobs(of served: DatasetCatalog.Served) async throws {
        for job in try await served.dataset.inferenceJobs() { _ = try await register(job, of: served) }
    }

    /// The job of `output` and `parameters` in `served`, made if new; `404 unknown_output`
    /// when the dataset has no such output.
    func job(dataset served: DatasetCatalog.Served, output: String, parameters: PlanParameters) async throws -> Job {
        if let known = jobs[Self.cursorID(dataset: served.name, output: output, parameters: parameters)] { return known }
        do {
            _ = try await served.dataset.output(output)
        } catch let error as MBDataError where error.code == .invalidArgument {
            throw ServeError(.notFound, "unknown_output", "dataset \(served.name) has no output named \"\(output)\" (mbdata outputs create)")
        }
        return try await register(try await served.dataset.inferenceJob(output: output, parameters: parameters), of: served)
    }

    private func register(_ job: OutputJob, of served: DatasetCatalog.Served) async throws -> Job {
        let id = Self.cursorID(dataset: served.name, output: job.output, parameters: job.plan.parameters)
        let finished = try await served.dataset.finishedBatches(of: job)
        let registered = Job(cursor: id, served: served, job: job)
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

    /// The job of an inference cursor, or nil for any other id.
    func job(_ id: String) -> Job? { jobs[id] }

    /// The job's state with the committed batches read from the dataset file (so it shows
    /// what other processes committed too).
    func state(_ id: String) async throws -> CursorState {
        guard let job = jobs[id] else { throw ServeError.unknownCursor(id) }
        let finished = try await job.served.dataset.finishedBatches(of: job.job)
        _ = states[id]?.ack(epoch: 0, batches: finished)
        guard let state = states[id] else { throw ServeError.unknownCursor(id) }
        return state
    }

    /// The job's next batch neither committed nor leased, leased for `seconds`.
    func lease(_ id: String, seconds: Double) throws -> LeaseOutcome {
        guard let job = jobs[id], let state = states[id] else { throw ServeError.unknownCursor(id) }
        let now = clock.now()
        let expired = leases.expire(cursor: id, now: now)
        for (lease, held) in expired { ended.insert(lease, cursor: id, batch: held.batch) }
        metrics.leaseExpired(dataset: job.served.name, count: expired.count)
        return leases.lease(cursor: id, epoch: 0, seconds: seconds, now: now) { state.firstUnacked(epoch: 0, skipping: $0) }
    }

    /// Gives a batch back when its message could not be produced.
    func release(lease: UInt64) { leases.remove(lease) }

    /// The batch `lease` holds for cursor `id`: `409 already_done` when the lease ended and
    /// its batch is committed (a retry of a submission that did commit, or a late one whose
    /// batch another consumer finished), `409 lease_expired` when the lease expired, is
    /// unknown or another cursor's.
    func leasedBatch(_ lease: UInt64, of id: String) throws -> Int {
        if let held = leases.held(lease, by: id, now: clock.now()) { return held.batch }
        if let batch = ended.batch(of: lease, cursor: id), states[id]?.progress(epoch: 0).isFinished(batch) == true {
            throw ServeError(
                .conflict, "already_done", "batch \(batch) of lease \(lease) is committed already (its outputs are written); nothing was written")
        }
        throw ServeError(.conflict, "lease_expired", "lease \(lease) of cursor \(id) expired or is unknown; its batch goes to another consumer")
    }

    /// `batch` is committed, by the submission holding `lease` or before it: the lease ends;
    /// returns the job's committed batches.
    func committed(batch: Int, lease: UInt64, of id: String) -> Int {
        leases.remove(lease)
        ended.insert(lease, cursor: id, batch: batch)
        _ = states[id]?.ack(epoch: 0, batches: [batch])
        return states[id]?.progress(epoch: 0).finishedCount ?? 0
    }
}

extension LoaderCheckpoint.EpochCursor {
    /// Batches finished: those below the watermark and those above it.
    var finishedCount: Int { lowWatermark + finishedAbove.count }
}
