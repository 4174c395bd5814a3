import MBData

/// A trainer that keeps each delivered batch's bytes of `fields` (absent ones add nothing)
/// and asks the loader to stop after `stopAfter` calls (calls already running still finish,
/// and are kept).
public actor PackedBatchRecorder: Trainer {
    /// Each delivered batch's bytes of `fields`, concatenated.
    public private(set) var batches: [PlanItem: [UInt8]] = [:]
    /// Whether every batch's `_source`, when it has one, had `_id`'s shape (per segment).
    public private(set) var sourcesPerSegment = true
    let stopAfter: Int?
    let fields: [String]

    /// A recorder of `fields` that stops the loader after `stopAfter` calls.
    public init(stopAfter: Int? = nil, fields: [String] = ["tokens", "segment_ids", "positions", "_id", "_source", "value"]) {
        self.stopAfter = stopAfter
        self.fields = fields
    }

    /// Records the batch.
    public func train(_ batch: Batch, context: TrainingContext) async throws {
        if let sources = batch["_source"], sources.shape != batch["_id"]?.shape { sourcesPerSegment = false }
        batches[PlanItem(epoch: batch.epoch, batch: batch.index, rank: batch.rank)] = fields.flatMap { batch[$0]?.bytes ?? [] }
        if let stopAfter, batches.count == stopAfter { context.stop() }
    }
}
