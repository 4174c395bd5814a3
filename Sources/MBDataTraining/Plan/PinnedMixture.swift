/// What identifies a mixture plan's sources, as a checkpoint, a remote plan and a shard
/// manifest record it: every source's name, pinned dataset version, content fingerprint and
/// weight, and the epoch size. A checkpoint resumes only the same mixture, and a resumed
/// live loader pins each source to the version recorded here.
public struct PinnedMixture: Codable, Sendable, Hashable {
    /// One source of the mixture, in `_source` order.
    public struct Source: Codable, Sendable, Hashable {
        /// The source's name in the mixture.
        public var name: String
        /// The dataset version the source is pinned to.
        public var datasetVersion: Int
        /// The source's content at that version (schema, ids of the split, version).
        public var fingerprint: String
        /// The source's weight.
        public var weight: MixtureWeight

        /// A source pinned to `datasetVersion`.
        public init(name: String, datasetVersion: Int, fingerprint: String, weight: MixtureWeight) {
            self.name = name
            self.datasetVersion = datasetVersion
            self.fingerprint = fingerprint
            self.weight = weight
        }
    }

    /// Draws per epoch.
    public var epochSize: Int
    /// The sources, in `_source` order.
    public var sources: [Source]

    /// A mixture of `sources` with `epochSize` draws per epoch.
    public init(epochSize: Int, sources: [Source]) {
        self.epochSize = epochSize
        self.sources = sources
    }

    /// The version recorded for the source called `name`, if any.
    public func datasetVersion(of name: String) -> Int? { sources.first { $0.name == name }?.datasetVersion }

    /// Each source's recorded version by its name (the first source of a name, should a
    /// decoded document list one twice), as MBData's `MixtureBatchPlan.resolve` takes them.
    public var datasetVersions: [String: Int] {
        Dictionary(sources.map { ($0.name, $0.datasetVersion) }, uniquingKeysWith: { first, _ in first })
    }

    /// What makes `other` (what the reader resolved) another mixture than this one (what the
    /// checkpoint or shard set was made for), in words; nil when they are the same.
    package func difference(from other: PinnedMixture) -> String? {
        let (ours, theirs) = (sources.map(\.name), other.sources.map(\.name))
        guard ours == theirs else {
            return "draws from \(ours.joined(separator: ", ")), the mixture asked for from \(theirs.joined(separator: ", "))"
        }
        for (mine, asked) in zip(sources, other.sources) {
            if mine.weight != asked.weight {
                return "gives source '\(mine.name)' the weight \(mine.weight), the mixture asked for \(asked.weight)"
            }
            if mine.datasetVersion != asked.datasetVersion {
                return "is pinned to version \(mine.datasetVersion) of source '\(mine.name)', the mixture asked for to version \(asked.datasetVersion)"
            }
            if mine.fingerprint != asked.fingerprint {
                return "holds other content of source '\(mine.name)' at version \(mine.datasetVersion) (fingerprint \(mine.fingerprint), now \(asked.fingerprint))"
            }
        }
        if epochSize != other.epochSize {
            return "has epochs of \(epochSize) draws, the mixture asked for \(other.epochSize)"
        }
        return nil
    }
}
