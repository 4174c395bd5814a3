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
    /// A plan (MBData's `Dataset.plan(_:version:)`, `EpochPlan(parameters:sampleCount:)`) throws
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

    package func validate() throws {
        guard batchSize > 0 else { throw MBDataError(.invalidArgument, "batch size must be positive, got \(batchSize)") }
        guard world > 0, batchSize % world == 0 else {
            throw MBDataError(.invalidArgument, "world \(world) must divide the global batch size \(batchSize)")
        }
    }
}
