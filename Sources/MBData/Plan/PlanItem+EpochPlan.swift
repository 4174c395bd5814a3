extension PlanItem {
    /// Every batch of `epochs` for `ranks`, ordered by epoch, then batch, then rank.
    package static func all(of plan: EpochPlan, epochs: Range<Int>, ranks: [Int]) -> [PlanItem] {
        epochs.flatMap { epoch in
            (0..<plan.batchesPerEpoch).flatMap { batch in ranks.map { PlanItem(epoch: epoch, batch: batch, rank: $0) } }
        }
    }
}
