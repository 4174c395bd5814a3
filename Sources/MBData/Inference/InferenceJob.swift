import Synchronization

/// Runs a model over a dataset in this process and writes its outputs back into the
/// dataset file, exactly once per sample, with `concurrency` calls at once.
///
/// ```swift
/// try await dataset.createOutput("preds", schema: predsSchema)
/// var config = InferenceJob.configuration(batchSize: 256, split: "val")
/// config.concurrency = 4
/// let job = try await InferenceJob(dataset: dataset, output: "preds", configuration: config)
/// try await job.run(model: MyModel())   // returns when every batch of the plan is committed
/// ```
///
/// The job is the dataset's ``OutputJob`` for the output and the configuration's plan:
/// found or created, its plan pinned to the dataset version of its creation, so samples
/// ingested later are not in it. Its progress lives in the dataset file: a batch is
/// finished when its outputs committed, together with the batch's completion, in one
/// transaction. A job that crashed, was killed or stopped is resumed by making the same
/// `InferenceJob` again and running it: only the batches without outputs are run. Several
/// processes (or `InferenceJob` objects) may run the same job at once; a batch one of them
/// committed is not committed again by another, and is not given to a model once a run
/// sees it committed.
///
/// The batches come from a `MultiBatchLoader` over the pinned plan: `concurrency` calls at
/// once, synchronous or asynchronous (`configuration.mode`), prefetched by
/// `configuration.prefetch`, transformed by the configuration's transforms.
public final class InferenceJob: Sendable {
    /// The dataset the job reads and writes.
    public let dataset: Dataset
    /// The dataset's job: its output, the output's schema and the pinned plan.
    public let job: OutputJob
    /// The configuration the job runs with (its plan is the job's).
    public let configuration: MultiBatchLoader.Configuration
    private let control = Mutex(RunControl())

    /// The run in progress, if any, and a stop asked for it (or for the next run).
    private struct RunControl {
        var running = false
        var loader: MultiBatchLoader?
        var stopRequested = false
    }

    /// Finds or creates the job of output `output` for `configuration`'s plan.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` naming the setting
    ///   for a configuration a job cannot follow: epochs other than `0..<1` (a job writes
    ///   each sample's output once), `world` other than 1 or `rank` other than 0, or an
    ///   invalid plan or concurrency; for an output that does not exist; the errors of
    ///   ``Dataset/inferenceJob(output:parameters:)``.
    public init(dataset: Dataset, output: String, configuration: MultiBatchLoader.Configuration) async throws {
        try Self.check(configuration)
        self.dataset = dataset
        self.configuration = configuration
        job = try await dataset.inferenceJob(output: output, parameters: configuration.plan)
    }

    /// A configuration for inference: the split's samples in ingest order (`shuffle`
    /// false), every one of them (`tail` `.pad`: the last batch is padded, its padding rows
    /// not written), epoch 0 only. Set `concurrency`, `mode` and `prefetch` on it as for a loader.
    public static func configuration(batchSize: Int, split: String?) -> MultiBatchLoader.Configuration {
        MultiBatchLoader.Configuration(plan: PlanParameters(batchSize: batchSize, tail: .pad, split: split, shuffle: false), epochs: 0..<1)
    }

    /// Committed batches and the plan's batches, as the dataset file has them now (other
    /// processes' commits included).
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.storage` when the file cannot be read.
    public func progress() async throws -> (finished: Int, total: Int) {
        (try await dataset.finishedBatches(of: job).count, job.batches)
    }

    /// Runs `model` over every batch of the plan that has no committed outputs, and commits
    /// each batch's outputs before the call counts as finished.
    ///
    /// - Returns normally when every batch is committed (at once if none is left), or after
    ///   ``stop()`` once the calls in flight committed.
    /// - Throws `MBDataError` `.trainerFailed` (the model's error as its `cause`) when the
    ///   model throws; calls in flight finish and commit first.
    /// - Throws the commit's `MBDataError` when outputs are refused (`.schemaMismatch` naming
    ///   the field, for outputs that do not fit the schema or the batch) or cannot be
    ///   written (`.storage`); `.alreadyDone` is not a failure: the batch is finished.
    /// - Throws `.invalidArgument` when a run of this object is already in progress.
    /// - Throws `CancellationError` when the task is cancelled, after the calls in flight returned.
    public func run(model: some InferenceModel) async throws {
        try control.withLock { control in
            guard !control.running else {
                throw MBDataError(.invalidArgument, "this inference job is already running; one run at a time per InferenceJob")
            }
            control.running = true
        }
        defer { control.withLock { $0 = RunControl() } }

        let plan = job.plan
        let finished = try await dataset.finishedBatches(of: job)
        guard finished.count < job.batches else { return }
        var configuration = self.configuration
        configuration.plan = plan.parameters
        let checkpoint = Self.checkpoint(configuration, plan: plan, finished: finished)
        let loader = try await MultiBatchLoader(dataset: dataset, plan: plan, configuration: configuration, resumingFrom: checkpoint)
        control.withLock { control in
            control.loader = loader
            if control.stopRequested { loader.stop() }
        }
        do {
            try await loader.run(trainer: InferenceTrainer(model: model, dataset: dataset, job: job))
        } catch let error as MBDataError where error.code == .trainerFailed {
            if let failure = error.cause as? OutputCommitFailure { throw failure.error }
            throw error
        }
    }

    /// Ends the current run early (or the next one, if none is running): no new batch
    /// starts, the calls in flight finish and commit, and ``run(model:)`` returns normally.
    public func stop() {
        control.withLock { control in
            control.stopRequested = true
            control.loader?.stop()
        }
    }

    /// Refuses a configuration a job cannot follow, naming the setting.
    private static func check(_ configuration: MultiBatchLoader.Configuration) throws {
        guard configuration.epochs == 0..<1 else {
            throw MBDataError(
                .invalidArgument,
                "an inference job runs epoch 0 only (epochs 0..<1), the configuration has epochs \(configuration.epochs.lowerBound)..<\(configuration.epochs.upperBound)",
                parameter: "MultiBatchLoader.Configuration.epochs")
        }
        guard configuration.world == 1 else {
            throw MBDataError(
                .invalidArgument, "an inference job runs with world 1, the configuration has world \(configuration.world)",
                parameter: "MultiBatchLoader.Configuration.world")
        }
        try configuration.validate()
    }

    /// The loader checkpoint of a run whose epoch 0 has `finished` (ascending) committed.
    static func checkpoint(_ configuration: MultiBatchLoader.Configuration, plan: DatasetPlan, finished: [Int]) -> LoaderCheckpoint {
        var checkpoint = LoaderCheckpoint(
            start: configuration, fingerprint: plan.fingerprint, version: plan.datasetVersion, batchesPerEpoch: plan.plan.batchesPerEpoch)
        let lowWatermark = finished.enumerated().prefix { $0.offset == $0.element }.count
        if !finished.isEmpty {
            checkpoint.inProgress = [LoaderCheckpoint.EpochCursor(epoch: 0, lowWatermark: lowWatermark, finishedAbove: Array(finished[lowWatermark...]))]
        }
        return checkpoint
    }
}
