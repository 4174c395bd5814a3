/// One batch of a plan to produce: which epoch, global batch and rank.
public struct PlanItem: Sendable, Hashable, Codable {
    public var epoch: Int
    public var batch: Int
    public var rank: Int

    public init(epoch: Int, batch: Int, rank: Int) {
        self.epoch = epoch
        self.batch = batch
        self.rank = rank
    }
}
