/// A mixture whose batches are packed rows (issue 14 §2 with §1): the packer's input is the
/// mixture epoch's draw order — position p is the draw (source, sample) of
/// ``MixturePlan/draw(epoch:position:)`` — packed by ``PackingSpec/packer`` and batched as
/// ``PackedBatching`` says. Every draw is packed, so under `TailPolicy.drop` only the
/// epoch's last rows (not its last draws) are left out; a row's segments may come from
/// different sources, and each segment carries its `_source` and `_id`.
///
/// Each source's lengths are read once when the plan is made, pinned with the source's
/// version. An epoch's layout costs O(epoch size) draws; a batch then one window's draws
/// and packing.
public struct PackedMixturePlan: PackedBatching, Hashable {
    /// The mixture plan: sources pinned to versions, draws, parameters (`batchSize` counts rows).
    public let base: MixtureBatchPlan
    /// What is packed and how.
    public let spec: PackingSpec
    /// Per source (in `_source` order), the packed field's length in each sample, indexed
    /// like that source's ``DatasetPlan/ids``.
    public let lengths: [[Int]]
    /// The mixture plan's fingerprint with the packing spec, as ``PackedPlan`` folds a spec
    /// into a dataset plan's.
    public let fingerprint: String

    /// The plan packing `base`'s draws; `lengths[i][k]` is the packed length of sample k of
    /// source i.
    public init(base: MixtureBatchPlan, spec: PackingSpec, lengths: [[Int]]) {
        precondition(lengths.map(\.count) == base.sources.map(\.ids.count), "lengths do not match the sources' samples")
        self.base = base
        self.spec = spec
        self.lengths = lengths
        fingerprint = spec.fingerprint(packing: base.fingerprint)
    }

    /// Resolves the mixture of `components` as ``MixtureBatchPlan/resolve(_:epochSize:parameters:pinnedTo:)``
    /// does and reads every source's lengths of `spec.field` at its pinned version.
    ///
    /// - Throws: What ``MixtureBatchPlan/resolve(_:epochSize:parameters:pinnedTo:)`` and
    ///   ``Dataset/packedLengths(_:packing:)`` throw.
    public static func resolve(
        _ components: [MixtureComponent], epochSize: Int?, parameters: PlanParameters, packing spec: PackingSpec, pinnedTo versions: [String: Int] = [:]
    ) async throws -> PackedMixturePlan {
        let base = try await MixtureBatchPlan.resolve(components, epochSize: epochSize, parameters: parameters, pinnedTo: versions)
        let datasets = try components.map { try $0.storedDataset() }
        var lengths: [[Int]] = []
        for (dataset, plan) in zip(datasets, base.sources) {
            lengths.append(try await dataset.packedLengths(plan, packing: spec))
        }
        return PackedMixturePlan(base: base, spec: spec, lengths: lengths)
    }

    /// The parameters the plan was made with.
    public var parameters: PlanParameters { base.parameters }

    /// Draws per epoch: the packer's input.
    public var inputCount: Int { base.mixture.epochSize }

    /// The draws at positions `range` of `epoch`.
    public func draws(epoch: Int, _ range: Range<Int>) -> [MixtureDraw] {
        base.mixture.draws(epoch: epoch, positions: range)
    }

    /// The packed lengths of the draws at positions `range` of `epoch`.
    public func orderedLengths(epoch: Int, _ range: Range<Int>) -> [Int] {
        draws(epoch: epoch, range).map { lengths[$0.source][$0.index] }
    }

    /// The most global batches any epoch can pack into. Source i's cᵢ draws of an epoch are
    /// consecutive entries of its stream of passes, so they hold q = ⌊cᵢ/n⌋ passes' pieces
    /// and, for the r = cᵢ mod n left, at most twice the r largest samples' pieces (the end of
    /// one pass and the start of the next); each piece in a row of its own.
    public var mostBatchesPerEpoch: Int {
        let pieces = zip(lengths, base.mixture.counts).reduce(0) { total, source in
            let (sourceLengths, draws) = source
            let byPieces = sourceLengths.map { spec.pieces(ofLength: $0) }.sorted(by: >)
            let (passes, rest) = draws.quotientAndRemainder(dividingBy: byPieces.count)
            let bound = passes * byPieces.reduce(0, +) + 2 * byPieces.prefix(rest).reduce(0, +)
            return total + min(bound, draws * (byPieces.first ?? 0))
        }
        return batches(ofAtMostRows: pieces)
    }
}
