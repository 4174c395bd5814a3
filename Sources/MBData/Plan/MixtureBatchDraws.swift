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
        let draws = mixture.draws(epoch: epoch, batch: batch, rank: rank, batching: plan)
        return MixtureBatchDraws(
            ids: draws.map { $0.map { sources[$0.source].ids[$0.index] } }, sources: draws.map { Int32($0?.source ?? -1) })
    }
}
