/// One batch of a plan to produce: which epoch, global batch and rank.
public struct PlanItem: Sendable, Hashable, Codable {
    /// The epoch the batch belongs to.
    public var epoch: Int
    /// The global batch index within the epoch (`0..<batchesPerEpoch`).
    public var batch: Int
    /// The rank whose slice of the global batch to produce (`0..<world`).
    public var rank: Int

    /// The batch `batch` of `epoch` for `rank`; checked when a prefetcher produces it.
    public init(epoch: Int, batch: Int, rank: Int) {
        self.epoch = epoch
        self.batch = batch
        self.rank = rank
    }
}
