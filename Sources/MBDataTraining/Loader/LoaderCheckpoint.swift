/// A loader's position: which batches of which epochs are finished. Small and Codable:
/// save it beside the model and pass it to `MultiBatchLoader(…, resumingFrom:)`.
public struct LoaderCheckpoint: Codable, Sendable, Hashable {
    /// Progress within one epoch: every batch below `lowWatermark` is finished, and so are
    /// those listed in `finishedAbove`.
    public struct EpochCursor: Codable, Sendable, Hashable {
        /// The epoch this cursor is about.
        public var epoch: Int
        /// Every batch below it is finished.
        public var lowWatermark: Int
        /// Finished batches above the watermark, ascending.
        public var finishedAbove: [Int]

        /// A cursor of `epoch` (default: nothing finished).
        public init(epoch: Int, lowWatermark: Int = 0, finishedAbove: [Int] = []) {
            self.epoch = epoch
            self.lowWatermark = lowWatermark
            self.finishedAbove = finishedAbove
        }

        /// Whether `batch` of this epoch is finished.
        public func isFinished(_ batch: Int) -> Bool { batch < lowWatermark || finishedAbove.contains(batch) }

        /// Marks `batch` finished and moves the watermark over every finished batch above
        /// it; false when it was finished already.
        @discardableResult
        public mutating func finish(_ batch: Int) -> Bool {
            guard !isFinished(batch) else { return false }
            finishedAbove.insert(batch, at: finishedAbove.firstIndex { $0 > batch } ?? finishedAbove.endIndex)
            while finishedAbove.first == lowWatermark {
                finishedAbove.removeFirst()
                lowWatermark += 1
            }
            return true
        }
    }

    /// Identifies dataset content and plan; a checkpoint only resumes the same plan.
    public var planFingerprint: String
    /// The plan parameters of the run that took the checkpoint, so that a refused resume
    /// names the setting that differs. Nil in checkpoints written before they were recorded.
    public var parameters: PlanParameters?
    /// The dataset version the plan is pinned to.
    public var datasetVersion: Int
    /// Ranks of the run (the plan's `world`); a resumed run must have the same.
    public var world: Int
    /// The rank of the run that took the checkpoint.
    public var rank: Int
    /// The first epoch of the run; a resumed run starts here too.
    public var firstEpoch: Int
    /// Epochs of the run that took the checkpoint (a resumed run may ask for more or fewer).
    public var epochCount: Int
    /// Batches of each epoch (per rank).
    public var batchesPerEpoch: Int
    /// Epochs whose batches are all finished, from `firstEpoch` on.
    public var completedEpochs: Int
    /// Epochs with some progress that are not complete.
    public var inProgress: [EpochCursor]
    /// The sources of a mixture plan and their pinned versions (then `datasetVersion` is 1);
    /// nil for one dataset.
    public var mixture: PinnedMixture?

    /// Whether batch `batch` of `epoch` is finished.
    public func isFinished(epoch: Int, batch: Int) -> Bool {
        if epoch < firstEpoch + completedEpochs { return true }
        guard let cursor = inProgress.first(where: { $0.epoch == epoch }) else { return false }
        return batch < cursor.lowWatermark || cursor.finishedAbove.contains(batch)
    }

    /// Finished batches, over all epochs from `firstEpoch` on.
    public var finishedBatchCount: Int {
        completedEpochs * batchesPerEpoch + inProgress.reduce(0) { $0 + $1.lowWatermark + $1.finishedAbove.count }
    }
}
