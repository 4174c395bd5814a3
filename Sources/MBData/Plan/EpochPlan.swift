/// What to do with the last `count % batchSize` samples of an epoch.
public enum TailPolicy: String, Codable, Sendable, CaseIterable {
    /// Leave them out of the epoch (the count is reported).
    case drop
    /// Fill the last batch with padding rows flagged invalid; no sample is repeated.
    case pad
}

/// The parameters that fix every epoch's order and batches. With the dataset version they
/// make the plan fingerprint: the loader, `mbdata shard` and `mbdata serve` given the same
/// parameters produce the same batches.
public struct PlanParameters: Codable, Hashable, Sendable {
    /// Seeds every epoch's permutation (with the epoch number). Default 0.
    public var seed: UInt64
    /// The global batch size G: samples per step across all ranks.
    public var batchSize: Int
    /// Ranks sharing each global batch; must divide `batchSize`.
    public var world: Int
    /// What happens to the last `sampleCount % batchSize` samples. Default ``TailPolicy/drop``.
    public var tail: TailPolicy
    /// The split the plan draws from; nil for every sample.
    public var split: String?
    /// False keeps ingest order (evaluation); true shuffles each epoch.
    public var shuffle: Bool

    /// Plan parameters; they are checked when a plan is made from them.
    ///
    /// A plan (``Dataset/plan(_:version:)``, ``EpochPlan/init(parameters:sampleCount:)``) throws
    /// ``MBDataError`` with ``MBDataError/Code/invalidArgument`` unless `batchSize > 0` and
    /// `world` divides it.
    public init(seed: UInt64 = 0, batchSize: Int, world: Int = 1, tail: TailPolicy = .drop, split: String? = nil, shuffle: Bool = true) {
        self.seed = seed
        self.batchSize = batchSize
        self.world = world
        self.tail = tail
        self.split = split
        self.shuffle = shuffle
    }

    /// The parameters as text, one form for every key and fingerprint built from them.
    package var key: String { "\(seed)|\(batchSize)|\(world)|\(tail.rawValue)|\(split ?? "")|\(shuffle)" }

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
    /// The parameters the plan was made with.
    public let parameters: PlanParameters
    /// Samples in the plan's split at its dataset version.
    public let sampleCount: Int

    /// The plan of `sampleCount` samples (the split's size at the pinned version).
    ///
    /// - Throws: ``MBDataError`` with ``MBDataError/Code/invalidArgument`` when the batch size is
    ///   not positive or `world` does not divide it.
    public init(parameters: PlanParameters, sampleCount: Int) throws {
        try parameters.validate()
        self.parameters = parameters
        self.sampleCount = sampleCount
    }

    /// Global batches per epoch: `sampleCount / batchSize`, rounded down under
    /// ``TailPolicy/drop`` and up under ``TailPolicy/pad``. Each rank gets this many batches.
    public var batchesPerEpoch: Int {
        let g = parameters.batchSize
        return parameters.tail == .drop ? sampleCount / g : (sampleCount + g - 1) / g
    }

    /// Samples left out of each epoch under `.drop`.
    public var droppedPerEpoch: Int { parameters.tail == .drop ? sampleCount % parameters.batchSize : 0 }

    /// Samples of one rank's batch.
    public var localBatchSize: Int { parameters.batchSize / parameters.world }

    /// The shuffled order of `epoch` (used when ``PlanParameters/shuffle`` is true).
    package func permutation(epoch: Int) -> IndexPermutation {
        IndexPermutation(count: sampleCount, seed: parameters.seed, epoch: epoch)
    }

    /// The sample indices (into the plan's id list) of rank `rank`'s part of global batch
    /// `batch` in `epoch`; nil marks a padding row. `batch` must be in `0..<batchesPerEpoch`
    /// and `rank` in `0..<world` (a precondition).
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
