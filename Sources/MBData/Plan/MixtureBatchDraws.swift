/// The rows of one batch of a mixture plan as the live read path takes them: each row's
/// sample id and source index, in plan order.
struct MixtureBatchDraws {
    /// Each row's sample id in its source; nil is a padding row.
    var ids: [Int64?]
    /// Each row's source index (the `_source` value); -1 on padding rows.
    var sources: [Int32]
}

extension MixtureBatchPlan {
    /// Rank `rank`'s rows of global batch `batch` of `epoch`, as ids and source indices.
    func batchDraws(epoch: Int, batch: Int, rank: Int) -> MixtureBatchDraws {
        let positions = plan.positions(batch: batch, rank: rank)
        var draws = MixtureBatchDraws(ids: [], sources: [])
        draws.ids.reserveCapacity(plan.localBatchSize)
        draws.sources.reserveCapacity(plan.localBatchSize)
        mixture.forEachDraw(epoch: epoch, positions: positions) { draw in
            draws.ids.append(sources[draw.source].ids[draw.index])
            draws.sources.append(Int32(draw.source))
        }
        draws.ids += repeatElement(nil, count: plan.localBatchSize - positions.count)
        draws.sources += repeatElement(-1, count: plan.localBatchSize - positions.count)
        return draws
    }
}
