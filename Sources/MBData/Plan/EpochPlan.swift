/// What to do with the last `count % batchSize` samples of an epoch.
public enum TailPolicy: String, Codable, Sendable, CaseIterable {
    /// Leave them out of the epoch (the count is reported).
    case drop
    /// Fill the last batch with padding rows flagged invalid; no sample is repeated.
    case pad
}

/// The parameters that fix every epoch's order and batches.
public struct PlanParameters: Codable, Hashable, Sendable {
    public var seed: UInt64
    /// The global batch size G: samples per step across all ranks.
    public var batchSize: Int
    /// Ranks sharing each global batch; must divide `batchSize`.
    public var world: Int
    public var tail: TailPolicy
    /// The split the plan draws from; nil for every sample.
    public var split: String?
    /// False keeps ingest order (evaluation); true shuffles each epoch.
    public var shuffle: Bool

    public init(seed: UInt64 = 0, batchSize: Int, world: Int = 1, tail: TailPolicy = .drop, split: String? = nil, shuffle: Bool = true) {
        self.seed = seed
        self.batchSize = batchSize
        self.world = world
        self.tail = tail
        self.split = split
        self.shuffle = shuffle
    }

    /// The parameters as text, one form for every key and fingerprint built from them.
    public var key: String { "\(seed)|\(batchSize)|\(world)|\(tail.rawValue)|\(split ?? "")|\(shuffle)" }

    func validate() throws {
        guard batchSize > 0 else { throw MBDataError(.invalidArgument, "batch size must be positive, got \(batchSize)") }
        guard world > 0, batchSize % world == 0 else {
            throw MBDataError(.invalidArgument, "world \(world) must divide the global batch size \(batchSize)")
        }
    }
}

/// The epochs of a dataset version: a pure function of (seed, epoch, sample count, batch
/// size, world, tail policy).
///
/// Position p of epoch e holds sample `permutation(e)[p]`; global batch k is positions
/// `[kG, (k+1)G)`, and rank r of W gets the r-th slice of G/W positions of every global
/// batch — so the concatenated rank streams are the same for every W that divides G, and
/// every rank gets the same number of batches.
public struct EpochPlan: Sendable, Hashable {
    public let parameters: PlanParameters
    /// Samples in the plan's split at its dataset version.
    public let sampleCount: Int

    public init(parameters: PlanParameters, sampleCount: Int) throws {
        try parameters.validate()
        self.parameters = parameters
        self.sampleCount = sampleCount
    }

    public var batchesPerEpoch: Int {
        let g = parameters.batchSize
        return parameters.tail == .drop ? sampleCount / g : (sampleCount + g - 1) / g
    }

    /// Samples left out of each epoch under `.drop`.
    public var droppedPerEpoch: Int { parameters.tail == .drop ? sampleCount % parameters.batchSize : 0 }

    /// Samples of one rank's batch.
    public var localBatchSize: Int { parameters.batchSize / parameters.world }

    public func permutation(epoch: Int) -> IndexPermutation {
        IndexPermutation(count: sampleCount, seed: parameters.seed, epoch: epoch)
    }

    /// The sample indices (into the plan's id list) of rank `rank`'s part of global batch
    /// `batch` in `epoch`; nil marks a padding row.
    public func indices(epoch: Int, batch: Int, rank: Int = 0) -> [Int?] {
        precondition(batch >= 0 && batch < batchesPerEpoch && rank >= 0 && rank < parameters.world)
        let order = permutation(epoch: epoch)
        let start = batch * parameters.batchSize + rank * localBatchSize
        return (start..<start + localBatchSize).map { position in
            guard position < sampleCount else { return nil }
            return parameters.shuffle ? order.index(at: position) : position
        }
    }
}
