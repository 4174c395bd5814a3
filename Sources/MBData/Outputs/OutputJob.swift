/// An inference job: one output, one plan (epoch 0 only, world 1), pinned to the dataset
/// version current when the job was first opened. Its progress is the committed batches
/// (``Dataset/finishedBatches(of:)``), kept in the dataset file with the outputs.
public struct OutputJob: Sendable, Hashable {
    /// The job's row id in `mbdata_output_jobs`.
    public let id: Int64
    /// The output the job writes.
    public let output: String
    /// The output's schema.
    public let schema: Schema
    /// The job's plan, pinned to the version the job was created at.
    public let plan: DatasetPlan

    /// The number of batches of the job (epoch 0 of the plan).
    public var batches: Int { plan.plan.batchesPerEpoch }
}

/// One committed batch of an ``OutputJob``.
public struct OutputCommit: Sendable, Hashable {
    /// The batch number in the job's plan.
    public let batch: Int
    /// Real (non-padding) rows written.
    public let rows: Int
}
