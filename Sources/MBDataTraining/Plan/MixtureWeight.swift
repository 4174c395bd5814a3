/// How much of a mixture's epoch one source fills, with Mosaic Streaming's meanings.
///
/// Weights are either all relative (``proportion(_:)``) or all absolute (``repeat(_:)`` and
/// ``choose(_:)``, which may be combined); a mixture that mixes the two kinds is refused,
/// as in Mosaic.
/// - Relative: the epoch has `epochSize` draws (by default the sum of the sources' sample
///   counts) and source i gets `epochSize × pᵢ / Σp` of them, rounded by largest remainder
///   (MBData's `MixturePlan.counts`).
/// - Absolute: source i gets `round(r × sampleCount)` draws under `.repeat(r)` (to nearest,
///   so `.repeat(0.3)` of 10 samples is 3 despite binary floating point) or exactly `c` under
///   `.choose(c)`; the epoch is their sum, and an `epochSize` given beside them must equal it.
///
/// A number literal is a proportion (`weight: 0.6`). As text — `mbdata shard --mix`,
/// manifests and checkpoints (its `Codable` form is this text) — a weight is `0.6`,
/// `repeat:2.5` or `choose:1000` (``description`` and ``init(_:)``).
public enum MixtureWeight: Sendable, Hashable, Codable, LosslessStringConvertible, ExpressibleByFloatLiteral,
    ExpressibleByIntegerLiteral
{
    /// A relative share of the epoch; proportions need not sum to 1.
    case proportion(Double)
    /// Passes over the source per epoch: 0.5 shows half of it, 2.5 every sample twice and half
    /// of them a third time.
    case `repeat`(Double)
    /// Exactly this many draws from the source per epoch, below or above its size.
    case choose(Int)

    /// A proportion.
    public init(floatLiteral value: Double) { self = .proportion(value) }

    /// A proportion.
    public init(integerLiteral value: Int) { self = .proportion(Double(value)) }

    /// Parses `0.6` (a proportion), `repeat:2.5` or `choose:1000`; nil for other text. The
    /// value is not checked here: a mixture refuses a weight that is not positive and finite.
    public init?(_ description: String) {
        let parts = description.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 1, let share = Double(description) {
            self = .proportion(share)
        } else if parts.count == 2, parts[0] == "repeat", let passes = Double(parts[1]) {
            self = .repeat(passes)
        } else if parts.count == 2, parts[0] == "choose", let count = Int(parts[1]) {
            self = .choose(count)
        } else {
            return nil
        }
    }

    /// The weight as text that ``init(_:)`` reads back exactly: `0.6`, `repeat:2.5`, `choose:1000`.
    public var description: String {
        switch self {
        case .proportion(let share): "\(share)"
        case .repeat(let passes): "repeat:\(passes)"
        case .choose(let count): "choose:\(count)"
        }
    }

    /// Decodes the text form.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let weight = MixtureWeight(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "mixture weight \"\(text.prefix(40))\" is not 0.6, repeat:R or choose:N"))
        }
        self = weight
    }

    /// Encodes the text form.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// True for ``proportion(_:)``.
    package var isRelative: Bool {
        if case .proportion = self { return true }
        return false
    }

    /// The weight as exact text for the fingerprint (a Double by its bit pattern).
    package var key: String {
        switch self {
        case .proportion(let share): "proportion:\(String(share.bitPattern, radix: 16))"
        case .repeat(let passes): "repeat:\(String(passes.bitPattern, radix: 16))"
        case .choose(let count): "choose:\(count)"
        }
    }
}
