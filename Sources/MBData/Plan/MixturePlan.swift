/// The epochs of a weighted mixture of datasets: a pure function of (seed, epoch, the
/// sources' sizes and fingerprints, their weights, epoch size).
///
/// Every epoch has ``epochSize`` positions; position p holds sample ``MixtureDraw/index`` of
/// source ``MixtureDraw/source``. Three rules make the order:
/// 1. **Counts.** Source i has exactly ``counts``[i] draws per epoch (`MixtureWeight` says how
///    weights become counts; proportions round by largest remainder, ties to the lower
///    source index, so the counts sum to the epoch size).
/// 2. **Spread.** The draws are interleaved by ``MixtureSchedule``: evenly through the epoch,
///    the same pattern every epoch.
/// 3. **Within a source.** Source i's draws, epoch after epoch, walk one endless stream of
///    passes over its samples — a fresh keyed permutation (`IndexPermutation`, package-internal) per pass — so
///    draw k of epoch e is stream entry `e·cᵢ + k`. No sample of a source repeats before all
///    of its samples were shown, within an epoch (`.repeat(2.5)`, `.choose` above the size) and
///    across epochs; a source drawn below its size (`.choose(c)` with c < size, or a small
///    proportion) shows the next c samples of the stream each epoch, so successive epochs see
///    new samples, not a fresh random subset each time. An epoch that straddles the end of
///    a pass may hold a sample twice — once at the end of one pass and again in the next —
///    only after every other sample of the source was shown.
///
/// The plan defines the global order only: global batch k is positions `[kG, (k+1)G)` and
/// rank r of W takes slice r of it, as ``EpochPlan`` does (``batchPlan(_:)``), so the
/// stream is the same for every world size. ``draw(epoch:position:)`` costs O(N²) with N
/// sources (``MixtureSchedule``) plus one permutation lookup; no memory grows with the epoch.
public struct MixturePlan: Sendable, Hashable {
    /// The sources, in the order their indices refer to.
    public let sources: [MixtureSource]
    /// Seeds every source's permutations.
    public let seed: UInt64
    /// Positions per epoch.
    public let epochSize: Int
    /// Draws of each source per epoch (summing to ``epochSize``).
    public var counts: [Int] { schedule.counts }
    /// The interleaving of every epoch.
    public let schedule: MixtureSchedule
    /// Identifies the mixture: xxh64 of the sources' names, sizes, fingerprints and weights,
    /// the epoch size and the seed.
    public let fingerprint: String
    private let sourceSeeds: [UInt64]

    /// The mixture of `sources` under `seed`; `epochSize` only with proportions (default:
    /// the sum of the sources' sample counts) or equal to the absolute weights' total.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for no sources, a
    ///   duplicate or empty name, a source without samples, a weight that is not positive and
    ///   finite, relative and absolute weights together, an epoch size that is not positive
    ///   or contradicts absolute weights, or weights that give the epoch no draw.
    public init(sources: [MixtureSource], epochSize: Int? = nil, seed: UInt64) throws {
        try Self.validate(sources)
        let counts = try Self.counts(sources, epochSize: epochSize)
        self.sources = sources
        self.seed = seed
        schedule = MixtureSchedule(counts: counts)
        self.epochSize = schedule.total
        sourceSeeds = sources.indices.map { index in
            var state = seed ^ (UInt64(index + 1) &* 0xD1B5_4A32_D192_ED03)
            return SplitMix64.next(&state)
        }
        fingerprint = Self.fingerprint(sources, epochSize: schedule.total, seed: seed)
    }

    /// The draw at `position` of `epoch`; `position` must be in `0..<epochSize` (a precondition).
    public func draw(epoch: Int, position: Int) -> MixtureDraw {
        draw(epoch: epoch, slot: schedule.slot(at: position))
    }

    /// The draws at `positions` of `epoch`, in order: one seek, then O(N) per position.
    public func draws(epoch: Int, positions: Range<Int>) -> [MixtureDraw] {
        // A run of positions touches each source's current pass (and perhaps its next):
        // each permutation is keyed once, not once per draw.
        var permutations = [(pass: Int, order: IndexPermutation)?](repeating: nil, count: sources.count)
        return schedule.slots(positions).map { slot in
            let (pass, offset) = streamEntry(epoch: epoch, slot: slot)
            let order: IndexPermutation
            if let cached = permutations[slot.source], cached.pass == pass {
                order = cached.order
            } else {
                order = permutation(source: slot.source, pass: pass)
                permutations[slot.source] = (pass, order)
            }
            return MixtureDraw(source: slot.source, index: order.index(at: offset), pass: pass)
        }
    }

    /// Rank `rank`'s part of global batch `batch` of `epoch` under `batching` (from
    /// ``batchPlan(_:)``); nil marks a padding row.
    public func draws(epoch: Int, batch: Int, rank: Int = 0, batching: EpochPlan) -> [MixtureDraw?] {
        let positions = batching.positions(batch: batch, rank: rank)
        return draws(epoch: epoch, positions: positions).map(Optional.some) + repeatElement(nil, count: batching.localBatchSize - positions.count)
    }

    /// How the epoch's positions become batches: an ``EpochPlan`` over ``epochSize`` positions
    /// in order (the mixture already shuffled them), with `parameters`' batch size, world and
    /// tail policy.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` for invalid parameters.
    public func batchPlan(_ parameters: PlanParameters) throws -> EpochPlan {
        var inOrder = parameters
        inOrder.shuffle = false
        return try EpochPlan(parameters: inOrder, sampleCount: epochSize)
    }

    /// The draw that `slot` of `epoch` names: its source's stream entry `epoch·cᵢ + draw`.
    public func draw(epoch: Int, slot: MixtureSlot) -> MixtureDraw {
        let (pass, offset) = streamEntry(epoch: epoch, slot: slot)
        return MixtureDraw(source: slot.source, index: permutation(source: slot.source, pass: pass).index(at: offset), pass: pass)
    }

    /// Where `slot` of `epoch` falls in its source's stream: the pass and the position within it.
    private func streamEntry(epoch: Int, slot: MixtureSlot) -> (pass: Int, offset: Int) {
        let size = sources[slot.source].sampleCount
        let entry = epoch * counts[slot.source] + slot.draw
        return (entry / size, entry % size)
    }

    /// The order of pass `pass` over source `source`'s samples.
    private func permutation(source: Int, pass: Int) -> IndexPermutation {
        IndexPermutation(count: sources[source].sampleCount, seed: sourceSeeds[source], epoch: pass)
    }

    /// The positions of `epoch` that hold sample `index` of source `source`, ascending: the
    /// inverse of ``draw(epoch:position:)`` (empty when the epoch does not draw it). Costs
    /// one inverse permutation per pass the epoch touches and O(N) per position found.
    public func positions(ofSample index: Int, source: Int, epoch: Int) -> [Int] {
        precondition(sources.indices.contains(source) && index >= 0 && index < sources[source].sampleCount, "no sample \(index) in source \(source)")
        let (size, count) = (sources[source].sampleCount, counts[source])
        guard count > 0 else { return [] }
        let entries = epoch * count..<(epoch + 1) * count
        return (entries.lowerBound / size...(entries.upperBound - 1) / size).compactMap { pass in
            let entry = pass * size + permutation(source: source, pass: pass).position(of: index)
            guard entries.contains(entry) else { return nil }
            return schedule.position(of: MixtureSlot(source: source, draw: entry - entries.lowerBound))
        }
    }

    private static func validate(_ sources: [MixtureSource]) throws {
        guard !sources.isEmpty else { throw MBDataError(.invalidArgument, "a mixture needs at least one source", parameter: "sources") }
        var names = Set<String>()
        for source in sources {
            guard !source.name.isEmpty, names.insert(source.name).inserted else {
                throw MBDataError(.invalidArgument, "source name '\(source.name)' is empty or used twice", parameter: "sources")
            }
            guard source.sampleCount > 0 else {
                throw MBDataError(.invalidArgument, "source '\(source.name)' has no samples", parameter: "sources")
            }
            let valid: Bool
            switch source.weight {
            case .proportion(let value), .repeat(let value): valid = value.isFinite && value > 0
            case .choose(let count): valid = count > 0
            }
            guard valid else {
                throw MBDataError(.invalidArgument, "source '\(source.name)': weight \(source.weight) must be positive", parameter: "sources")
            }
        }
        guard Set(sources.map(\.weight.isRelative)).count == 1 else {
            throw MBDataError(
                .invalidArgument, "proportions (relative) and repeat/choose (absolute) weights cannot be mixed", parameter: "sources")
        }
    }

    /// Draws per source per epoch (validated sources).
    private static func counts(_ sources: [MixtureSource], epochSize: Int?) throws -> [Int] {
        if let epochSize, epochSize <= 0 {
            throw MBDataError(.invalidArgument, "the epoch size must be positive, got \(epochSize)", parameter: "epochSize")
        }
        if let epochSize, epochSize > maxEpochSize {
            throw MBDataError(.invalidArgument, "the epoch size \(epochSize) is above the most a mixture supports, \(maxEpochSize)", parameter: "epochSize")
        }
        let counts: [Int]
        if sources[0].weight.isRelative {
            let shares = sources.map { source -> Double in
                if case .proportion(let share) = source.weight { return share }
                return 0
            }
            // Saturates rather than overflows: any sum past the limit is refused.
            let total = epochSize ?? sources.reduce(0) { min($0 + min($1.sampleCount, maxEpochSize), maxEpochSize + 1) }
            guard total <= maxEpochSize else { throw tooLarge(total) }
            guard shares.reduce(0, +).isFinite else {
                throw MBDataError(.invalidArgument, "the proportions sum to more than a Double holds", parameter: "sources")
            }
            counts = largestRemainder(total: total, shares: shares)
        } else {
            counts = try sources.map { source in
                let draws: Double
                switch source.weight {
                case .repeat(let passes): draws = (passes * Double(source.sampleCount)).rounded()
                case .choose(let count): draws = Double(count)
                case .proportion: draws = 0
                }
                guard draws <= Double(maxEpochSize) else { throw tooLarge(draws) }
                return Int(draws)
            }
            // Saturates rather than overflows, as the proportions' total does.
            let total = counts.reduce(0) { min($0 + $1, maxEpochSize + 1) }
            guard total <= maxEpochSize else { throw tooLarge(total) }
            if let epochSize, epochSize != total {
                throw MBDataError(
                    .invalidArgument, "repeat/choose weights make an epoch of \(total) draws, not the \(epochSize) asked for",
                    parameter: "epochSize")
            }
        }
        guard counts.contains(where: { $0 > 0 }) else {
            throw MBDataError(.invalidArgument, "the weights give the epoch no draw", parameter: "sources")
        }
        return counts
    }

    /// The most draws an epoch may have (2⁵²): every position's arithmetic stays exact.
    public static let maxEpochSize = 1 << 52

    private static func tooLarge(_ draws: some Numeric & CustomStringConvertible) -> MBDataError {
        MBDataError(.invalidArgument, "the weights make an epoch of \(draws) draws, above the most a mixture supports, \(maxEpochSize)", parameter: "sources")
    }

    /// `total` split by `shares`: each gets the floor of its quota, and the draws left over go
    /// one each to the largest fractional remainders, ties to the lower index.
    static func largestRemainder(total: Int, shares: [Double]) -> [Int] {
        let sum = shares.reduce(0, +)
        let quotas = shares.map { Double(total) * ($0 / sum) }
        var counts = quotas.map { Int($0.rounded(.down)) }
        let left = total - counts.reduce(0, +)
        let byRemainder = quotas.indices.sorted { a, b in
            let (ra, rb) = (quotas[a] - Double(counts[a]), quotas[b] - Double(counts[b]))
            return ra > rb || (ra == rb && a < b)
        }
        for index in byRemainder.prefix(max(0, left)) { counts[index] += 1 }
        return counts
    }

    private static func fingerprint(_ sources: [MixtureSource], epochSize: Int, seed: UInt64) -> String {
        var hash = XXH64()
        hash.update(Array("mixture-v1|\(seed)|\(epochSize)".utf8))
        for source in sources {
            hash.update(Array("|\(source.name.utf8.count):\(source.name)|\(source.sampleCount)|\(source.fingerprint)|\(source.weight.key)".utf8))
        }
        return hash.hexDigest
    }
}
