import MBData
import MBDataWire

/// An inference job as the daemon serves it (schemas/serve-protocol.md §8): one output of a
/// served dataset, one plan (epoch 0, world 1) pinned to a dataset version, and the cursor
/// that names the job in every daemon.
struct ServedInferenceJob: Sendable {
    /// The job's cursor id (``InferenceJobID/cursor(dataset:output:parameters:)``).
    var cursor: String
    var served: DatasetCatalog.Served
    /// The output the job writes.
    var output: String
    /// The output's schema, which every submission must fit.
    var schema: Schema
    /// The job's plan, pinned to the version the job was first opened at.
    var plan: DatasetPlan
}

/// What a submission that committed did.
struct CommittedOutputs: Sendable {
    /// Real rows written (a sample that had a row keeps it).
    var rows: Int
    /// The job's batches committed so far, this one included.
    var finished: Int
}

/// The cursor id of an inference job.
enum InferenceJobID {
    /// Inference cursors, and only they, start with it.
    static let prefix = "o-"

    /// The same for the same dataset name, output and plan parameters, in any daemon.
    static func cursor(dataset: String, output: String, parameters: PlanParameters) -> String {
        CursorState.hashedID(prefix: prefix, key: [dataset, output, parameters.key].joined(separator: "|"))
    }
}

/// Where inference jobs keep their progress, their leases and their outputs (DESIGN
/// decisions 14 and 15), so that the routes of inference read the same on every backend:
/// ``DatasetOutputStore`` writes the outputs into the dataset file, its leases in the daemon's
/// memory (one daemon per job); ``PostgresOutputStore`` keeps cursor, leases and output tables
/// in the PostgreSQL state database every daemon of a cluster shares.
///
/// Whatever the store, a batch's outputs and its completion commit in one transaction, and a
/// refused submission writes nothing: `409 lease_expired` when its lease expired or is
/// unknown, `409 already_done` when its batch is committed, `400 invalid_outputs` (an
/// `MBDataError` `.schemaMismatch` naming the field) when it does not fit the output or the
/// batch. Other failures are `MBDataError`s (`.storage` when a write may be retried).
protocol OutputStore: Sendable {
    /// The job of `output` and `parameters` in `served`, opened (and pinned) if new;
    /// `404 unknown_output` when the dataset has no such output.
    func job(dataset served: DatasetCatalog.Served, output: String, parameters: PlanParameters) async throws -> ServedInferenceJob

    /// The job of inference cursor `cursor`, or nil when it names no inference job.
    func job(_ cursor: String) async throws -> ServedInferenceJob?

    /// The job's cursor as stored, its committed batches acked.
    func state(_ job: ServedInferenceJob) async throws -> CursorState

    /// Leases the job's next batch neither committed nor leased, for `seconds`.
    func lease(_ job: ServedInferenceJob, seconds: Double) async throws -> LeaseOutcome

    /// Gives a batch back when its message could not be produced.
    func release(lease: UInt64) async

    /// The batch `lease` holds for `job`; a refusal as ``commit(_:batch:lease:of:)`` would
    /// answer it. A check made before a submission's body is read.
    func leasedBatch(_ lease: UInt64, of job: ServedInferenceJob) async throws -> Int

    /// Checks `tensors` against the job's output and batch `batch`, then writes them and
    /// completes the batch that `lease` holds, in one transaction.
    func commit(_ tensors: [String: Tensor], batch: Int, lease: UInt64, of job: ServedInferenceJob) async throws -> CommittedOutputs
}

extension LoaderCheckpoint.EpochCursor {
    /// Batches finished: those below the watermark and those above it.
    var finishedCount: Int { lowWatermark + finishedAbove.count }
}
