/// A dataset plan whose batches are packed rows: the epoch's order of samples (the plan's
/// permutation for (seed, epoch), as unpacked), packed by ``PackingSpec/packer`` and batched
/// as ``PackedBatching`` says, so the concatenated rank streams are the same for every world.
///
/// Sample lengths are read once when the plan is made and pinned with the dataset version.
/// An epoch's row count depends on its order, so batches per epoch differ between epochs:
/// ``PackedBatching/layout(epoch:)`` packs the epoch's lengths once (O(samples) time,
/// O(windows) memory) and then seeks any batch in O(log windows) plus one window's packing.
public struct PackedPlan: PackedBatching, Hashable {
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
        fingerprint = spec.fingerprint(packing: base.fingerprint)
    }

    /// The parameters the plan was made with.
    public var parameters: PlanParameters { base.parameters }

    /// The plan's samples: the packer's input per epoch.
    public var inputCount: Int { lengths.count }

    /// The plan index (into ``DatasetPlan/ids``) at `position` of `epoch`'s order.
    public func sampleIndex(epoch: Int, position: Int) -> Int {
        parameters.shuffle ? base.plan.permutation(epoch: epoch).index(at: position) : position
    }

    /// The lengths of positions `range` of `epoch`'s order.
    public func orderedLengths(epoch: Int, _ range: Range<Int>) -> [Int] {
        let order = base.plan.permutation(epoch: epoch)
        return range.map { lengths[parameters.shuffle ? order.index(at: $0) : $0] }
    }

    /// The most global batches any epoch can pack into, whatever its order: every packed
    /// sample's pieces (one per row length, a dropped overlong sample none) in rows of their
    /// own. A bound for what must hold every epoch, such as a serve cursor's batch count.
    public var mostBatchesPerEpoch: Int {
        batches(ofAtMostRows: lengths.reduce(0) { $0 + spec.pieces(ofLength: $1) })
    }
}
