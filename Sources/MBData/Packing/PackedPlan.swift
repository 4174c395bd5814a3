/// A dataset plan whose batches are packed rows: the epoch's order of samples (the plan's
/// permutation for (seed, epoch), as unpacked), packed by ``PackingSpec/packer``, and global
/// batch b of the epoch is rows `[bG, (b+1)G)` where G is the batch size in rows. Rank r of
/// W gets the r-th slice of G/W rows, so the concatenated rank streams are the same for every
/// world, as with unpacked plans.
///
/// Sample lengths are read once when the plan is made and pinned with the dataset version.
/// An epoch's row count depends on its order, so batches per epoch differ between epochs:
/// ``layout(epoch:)`` packs the epoch's lengths once (O(samples) time, O(windows) memory) and
/// then seeks any batch in O(log windows) plus one window's packing.
public struct PackedPlan: Sendable, Hashable {
    /// The unpacked plan: version, ids, order and parameters (`batchSize` counts rows).
    public let base: DatasetPlan
    /// What is packed and how.
    public let spec: PackingSpec
    /// Values of the packed field in each sample, indexed like ``DatasetPlan/ids``.
    public let lengths: [Int]
    /// The base fingerprint with the packing spec: a changed packing is a different plan.
    public let fingerprint: String

    /// The plan packing `base`'s samples, whose packed field has `lengths` values each.
    public init(base: DatasetPlan, spec: PackingSpec, lengths: [Int]) {
        precondition(lengths.count == base.ids.count, "\(lengths.count) lengths for \(base.ids.count) samples")
        self.base = base
        self.spec = spec
        self.lengths = lengths
        var hash = XXH64()
        hash.update(Array("\(base.fingerprint)|\(spec.key)".utf8))
        fingerprint = hash.hexDigest
    }

    /// The parameters the plan was made with.
    public var parameters: PlanParameters { base.parameters }

    /// Rows of one rank's batch.
    public var localBatchRows: Int { base.plan.localBatchSize }

    /// The plan index (into ``DatasetPlan/ids``) at `position` of `epoch`'s order.
    public func sampleIndex(epoch: Int, position: Int) -> Int {
        parameters.shuffle ? base.plan.permutation(epoch: epoch).index(at: position) : position
    }

    /// The lengths of positions `range` of `epoch`'s order.
    func orderedLengths(epoch: Int, _ range: Range<Int>) -> [Int] {
        let order = base.plan.permutation(epoch: epoch)
        return range.map { lengths[parameters.shuffle ? order.index(at: $0) : $0] }
    }

    /// Packs `epoch` window by window and keeps each window's row count.
    public func layout(epoch: Int) -> PackedEpochLayout {
        let packer = spec.packer
        var rowsBefore = [0]
        var statistics = PackingStatistics(rowLength: packer.rowLength)
        for start in stride(from: 0, to: lengths.count, by: packer.window) {
            let part = packer.packWindow(orderedLengths(epoch: epoch, start..<min(start + packer.window, lengths.count)), firstSample: start)
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

    /// The most global batches any epoch can pack into, whatever its order: every packed
    /// sample's pieces (one per row length, a dropped overlong sample none) in rows of their
    /// own. A bound for what must hold every epoch, such as a serve cursor's batch count.
    public var mostBatchesPerEpoch: Int {
        let rowLength = spec.rowLength
        let dropsOverlong = spec.packer.overlong == .drop
        let pieces = lengths.reduce(0) { total, length in
            length > rowLength && dropsOverlong ? total : total + (length + rowLength - 1) / rowLength
        }
        let g = parameters.batchSize
        return parameters.tail == .drop ? pieces / g : (pieces + g - 1) / g
    }

    /// Rank `rank`'s rows of global batch `batch` of the epoch of `layout`; rows past the
    /// epoch's last are empty (padding). A segment's `sample` is a position in the epoch's
    /// order (``sampleIndex(epoch:position:)``).
    public func rows(_ layout: PackedEpochLayout, batch: Int, rank: Int = 0) -> [PackedRow] {
        precondition(batch >= 0 && batch < batchesPerEpoch(layout) && rank >= 0 && rank < parameters.world)
        let first = batch * parameters.batchSize + rank * localBatchRows
        let available = max(0, min(localBatchRows, layout.rowCount - first))
        var rows: [PackedRow] = []
        if available > 0 {
            let cursor = layout.cursor(atRow: first, window: spec.packer.window, sampleCount: lengths.count)
            rows = spec.packer.rows(from: cursor, count: available, sampleCount: lengths.count) { orderedLengths(epoch: layout.epoch, $0) }.rows
        }
        return rows + Array(repeating: PackedRow(segments: []), count: localBatchRows - rows.count)
    }
}
