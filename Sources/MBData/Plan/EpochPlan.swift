/// The epochs of a dataset version: a pure function of (seed, epoch, sample count, batch
/// size, world, tail policy).
///
/// Position p of epoch e holds sample `permutation(e)[p]`; global batch k is positions
/// `[kG, (k+1)G)`, and rank r of W gets the r-th slice of G/W positions of every global
/// batch — so the concatenated rank streams are the same for every W that divides G, and
/// every rank gets the same number of batches.
public struct EpochPlan: Sendable, Hashable {
    /// The parameters the plan was made with.
    public let parameters: PlanParameters
    /// Samples in the plan's split at its dataset version.
    public let sampleCount: Int

    /// The plan of `sampleCount` samples (the split's size at the pinned version).
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` when the batch size is
    ///   not positive or `world` does not divide it.
    public init(parameters: PlanParameters, sampleCount: Int) throws {
        try parameters.validate()
        self.parameters = parameters
        self.sampleCount = sampleCount
    }

    /// Global batches per epoch: `sampleCount / batchSize`, rounded down under
    /// `TailPolicy.drop` and up under `TailPolicy.pad`. Each rank gets this many batches.
    public var batchesPerEpoch: Int {
        let g = parameters.batchSize
        return parameters.tail == .drop ? sampleCount / g : (sampleCount + g - 1) / g
    }

    /// Samples left out of each epoch under `.drop`.
    public var droppedPerEpoch: Int { parameters.tail == .drop ? sampleCount % parameters.batchSize : 0 }

    /// Samples of one rank's batch.
    public var localBatchSize: Int { parameters.batchSize / parameters.world }

    /// The shuffled order of `epoch` (used when `PlanParameters.shuffle` is true).
    package func permutation(epoch: Int) -> IndexPermutation {
        IndexPermutation(count: sampleCount, seed: parameters.seed, epoch: epoch)
    }

    /// The sample indices (into the plan's id list) of rank `rank`'s part of global batch
    /// `batch` in `epoch`; nil marks a padding row. `batch` must be in `0..<batchesPerEpoch`
    /// and `rank` in `0..<world` (a precondition).
    public func indices(epoch: Int, batch: Int, rank: Int = 0) -> [Int?] {
        let positions = positions(batch: batch, rank: rank)
        let order = permutation(epoch: epoch)
        var indices: [Int?] = positions.map { parameters.shuffle ? order.index(at: $0) : $0 }
        indices += repeatElement(nil, count: localBatchSize - positions.count)
        return indices
    }

    /// The epoch positions (before any shuffle) of rank `rank`'s part of global batch
    /// `batch`; the part's last `localBatchSize - count` rows are padding. `batch` must be
    /// in `0..<batchesPerEpoch` and `rank` in `0..<world` (a precondition).
    package func positions(batch: Int, rank: Int) -> Range<Int> {
        precondition(batch >= 0 && batch < batchesPerEpoch && rank >= 0 && rank < parameters.world)
        let start = batch * parameters.batchSize + rank * localBatchSize
        return min(start, sampleCount)..<min(start + localBatchSize, sampleCount)
    }
}
