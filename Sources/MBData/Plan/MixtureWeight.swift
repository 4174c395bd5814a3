/// How much of a mixture's epoch one source fills, with Mosaic Streaming's meanings.
///
/// Weights are either all relative (``proportion(_:)``) or all absolute (``repeat(_:)`` and
/// ``choose(_:)``, which may be combined); a mixture that mixes the two kinds is refused,
/// as in Mosaic.
/// - Relative: the epoch has `epochSize` draws (by default the sum of the sources' sample
///   counts) and source i gets `epochSize × pᵢ / Σp` of them, rounded by largest remainder
///   (``MixturePlan/counts``).
/// - Absolute: source i gets `round(r × sampleCount)` draws under `.repeat(r)` (to nearest,
///   so `.repeat(0.3)` of 10 samples is 3 despite binary floating point) or exactly `c` under
///   `.choose(c)`; the epoch is their sum, and an `epochSize` given beside them must equal it.
public enum MixtureWeight: Sendable, Hashable, Codable {
    /// A relative share of the epoch; proportions need not sum to 1.
    case proportion(Double)
    /// Passes over the source per epoch: 0.5 shows half of it, 2.5 every sample twice and half
    /// of them a third time.
    case `repeat`(Double)
    /// Exactly this many draws from the source per epoch, below or above its size.
    case choose(Int)

    /// True for ``proportion(_:)``.
    var isRelative: Bool {
        if case .proportion = self { return true }
        return false
    }

    /// The weight as exact text for the fingerprint (a Double by its bit pattern).
    var key: String {
        switch self {
        case .proportion(let share): "proportion:\(String(share.bitPattern, radix: 16))"
        case .repeat(let passes): "repeat:\(String(passes.bitPattern, radix: 16))"
        case .choose(let count): "choose:\(count)"
        }
    }
}
