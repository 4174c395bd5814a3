/// What packs an epoch into batches of rows (``PackedPlan`` over one dataset,
/// ``PackedMixturePlan`` over a mixture): the packer's input is the epoch's order — a
/// dataset plan's permutation or a mixture's draws — given by its lengths alone, so the
/// layout, the batches and their restart are one algorithm for both.
///
/// Global batch b of an epoch is rows `[bG, (b+1)G)` where G is the batch size in rows; rank
/// r of W gets the r-th slice of G/W rows, so the concatenated rank streams are the same for
/// every world.
public protocol PackedBatching: Sendable {
    /// What is packed and how.
    var spec: PackingSpec { get }
    /// The plan fingerprint, the packing folded in.
    var fingerprint: String { get }
    /// The plan parameters (`batchSize` counts rows).
    var parameters: PlanParameters { get }
    /// The packer's input positions per epoch: the plan's samples, or a mixture's draws.
    var inputCount: Int { get }
    /// The packed field's length at positions `range` of `epoch`'s input order.
    func orderedLengths(epoch: Int, _ range: Range<Int>) -> [Int]
}

extension PackedBatching {
    /// Rows of one rank's batch.
    public var localBatchRows: Int { parameters.batchSize / parameters.world }

    /// Packs `epoch` window by window and keeps each window's row count.
    public func layout(epoch: Int) -> PackedEpochLayout {
        let packer = spec.packer
        var rowsBefore = [0]
        var statistics = PackingStatistics(rowLength: packer.rowLength)
        for start in stride(from: 0, to: inputCount, by: packer.window) {
            let part = packer.packWindow(orderedLengths(epoch: epoch, start..<min(start + packer.window, inputCount)), firstSample: start)
            statistics = statistics + part.statistics
            rowsBefore.append(rowsBefore[rowsBefore.count - 1] + part.rows.count)
        }
        return PackedEpochLayout(epoch: epoch, rowsBeforeWindow: rowsBefore, statistics: statistics)
    }

    /// Global batches of an epoch of `layout`: rows over the batch size, rounded down under
    /// `TailPolicy.drop` (the last rows are left out) and up under `TailPolicy.pad` (the last
    /// batch ends in rows of padding alone).
    public func batchesPerEpoch(_ layout: PackedEpochLayout) -> Int {
        let g = parameters.batchSize
        return parameters.tail == .drop ? layout.rowCount / g : (layout.rowCount + g - 1) / g
    }

    /// Global batches of `pieces` rows at most, under the tail policy: the bound behind
    /// `mostBatchesPerEpoch`.
    func batches(ofAtMostRows pieces: Int) -> Int {
        let g = parameters.batchSize
        return parameters.tail == .drop ? pieces / g : (pieces + g - 1) / g
    }

    /// Rank `rank`'s rows of global batch `batch` of the epoch of `layout`; rows past the
    /// epoch's last are empty (padding). A segment's `sample` is a position in the epoch's
    /// input order.
    public func rows(_ layout: PackedEpochLayout, batch: Int, rank: Int = 0) -> [PackedRow] {
        precondition(batch >= 0 && batch < batchesPerEpoch(layout) && rank >= 0 && rank < parameters.world)
        let first = batch * parameters.batchSize + rank * localBatchRows
        let available = max(0, min(localBatchRows, layout.rowCount - first))
        var rows: [PackedRow] = []
        if available > 0 {
            let cursor = layout.cursor(atRow: first, window: spec.packer.window, sampleCount: inputCount)
            rows = spec.packer.rows(from: cursor, count: available, sampleCount: inputCount) { orderedLengths(epoch: layout.epoch, $0) }.rows
        }
        return rows + Array(repeating: PackedRow(segments: []), count: localBatchRows - rows.count)
    }
}

extension PackingSpec {
    /// Row pieces a sample of `length` tokens makes: one per row length when split, none when
    /// dropped for being overlong or empty.
    func pieces(ofLength length: Int) -> Int {
        length > rowLength && packer.overlong == .drop ? 0 : (length + rowLength - 1) / rowLength
    }

    /// The fingerprint of the plan `base` (a plan fingerprint) packed by this spec: a changed
    /// packing is a different plan.
    func fingerprint(packing base: String) -> String {
        var hash = XXH64()
        hash.update(Array("\(base)|\(key)".utf8))
        return hash.hexDigest
    }
}
