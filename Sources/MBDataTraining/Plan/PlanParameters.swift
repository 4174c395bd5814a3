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

    package func validate() throws {
        guard batchSize > 0 else { throw MBDataError(.invalidArgument, "batch size must be positive, got \(batchSize)") }
        guard world > 0, batchSize % world == 0 else {
            throw MBDataError(.invalidArgument, "world \(world) must divide the global batch size \(batchSize)")
        }
    }
}
