/// One dataset of a mixture as the plan sees it: its size at the pinned version, what
/// identifies that version, and its weight.
public struct MixtureSource: Sendable, Hashable, Codable {
    /// The name batches carry in `_source` (unique within a mixture).
    public var name: String
    /// Samples the source has at its pinned version (``DatasetPlan/ids`` count); draws index
    /// into `0..<sampleCount`.
    public var sampleCount: Int
    /// Identifies the source's content at its pinned version, e.g. ``DatasetPlan/fingerprint``;
    /// part of the mixture's fingerprint.
    public var fingerprint: String
    /// Its share of each epoch. Default: one pass (`.repeat(1)`).
    public var weight: MixtureWeight

    /// A source of `sampleCount` samples identified by `fingerprint`.
    public init(name: String, sampleCount: Int, fingerprint: String, weight: MixtureWeight = .repeat(1)) {
        self.name = name
        self.sampleCount = sampleCount
        self.fingerprint = fingerprint
        self.weight = weight
    }
}
