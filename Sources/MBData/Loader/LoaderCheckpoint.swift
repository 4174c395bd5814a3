/// A loader's position: which batches of which epochs are finished. Small and Codable:
/// save it beside the model and pass it to `MultiBatchLoader(…, resumingFrom:)`.
public struct LoaderCheckpoint: Codable, Sendable, Hashable {
    /// Progress within one epoch: every batch below `lowWatermark` is finished, and so are
    /// those listed in `finishedAbove`.
    public struct EpochCursor: Codable, Sendable, Hashable {
        /// The epoch whose progress this cursor records.
        public var epoch: Int
        /// Every batch below this index is finished.
        public var lowWatermark: Int
        /// Finished batches above the watermark, ascending.
        public var finishedAbove: [Int]

        /// A cursor; `finishedAbove` must be ascending and above `lowWatermark`.
        public init(epoch: Int, lowWatermark: Int = 0, finishedAbove: [Int] = []) {
            self.epoch = epoch
            self.lowWatermark = lowWatermark
            self.finishedAbove = finishedAbove
        }

        /// Whether batch `batch` of this epoch is finished.
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
    /// The dataset version the plan was pinned to; a resumed loader reads this version.
    public var datasetVersion: Int
    /// Ranks sharing each global batch; a resume must use the same.
    public var world: Int
    /// This loader's rank; a resume must use the same.
    public var rank: Int
    /// The first epoch of the run.
    public var firstEpoch: Int
    /// The number of epochs of the run.
    public var epochCount: Int
    /// This rank's batches per epoch (the plan's global batches per epoch).
    public var batchesPerEpoch: Int
    /// Epochs whose batches are all finished, from `firstEpoch` on.
    public var completedEpochs: Int
    /// Epochs with some progress that are not complete.
    public var inProgress: [EpochCursor]

    /// Whether batch `batch` of `epoch` is finished.
    public func isFinished(epoch: Int, batch: Int) -> Bool {
        if epoch < firstEpoch + completedEpochs { return true }
        guard let cursor = inProgress.first(where: { $0.epoch == epoch }) else { return false }
        return batch < cursor.lowWatermark || cursor.finishedAbove.contains(batch)
    }

    /// Finished batches in all epochs together.
    public var finishedBatchCount: Int {
        completedEpochs * batchesPerEpoch + inProgress.reduce(0) { $0 + $1.lowWatermark + $1.finishedAbove.count }
    }
}

/// Records finished batches as trainers return, out of order.
actor CursorTracker {
    private var checkpoint: LoaderCheckpoint

    init(_ checkpoint: LoaderCheckpoint) { self.checkpoint = checkpoint }

    func finish(epoch: Int, batch: Int) {
        guard !checkpoint.isFinished(epoch: epoch, batch: batch) else { return }
        var cursor = checkpoint.inProgress.first { $0.epoch == epoch } ?? .init(epoch: epoch)
        cursor.finish(batch)
        checkpoint.inProgress.removeAll { $0.epoch == epoch }
        checkpoint.inProgress.append(cursor)
        // Fold complete epochs, in order, into completedEpochs.
        while let next = checkpoint.inProgress.first(where: { $0.epoch == checkpoint.firstEpoch + checkpoint.completedEpochs }),
            next.lowWatermark >= checkpoint.batchesPerEpoch
        {
            checkpoint.inProgress.removeAll { $0.epoch == next.epoch }
            checkpoint.completedEpochs += 1
        }
        checkpoint.inProgress.sort { $0.epoch < $1.epoch }
    }

    func snapshot() -> LoaderCheckpoint { checkpoint }
}
