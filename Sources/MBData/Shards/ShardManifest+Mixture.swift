import Foundation

extension ShardManifest {
    /// The manifest's `mixture` member: the mixture plan the batches follow, so that a reader
    /// can name each row's source (`_source` indexes ``sources``) and refuse a set made for
    /// another mixture.
    ///
    /// With it, the manifest's `dataset` describes the mixture's epoch as one plan:
    /// `fingerprint` is the mixture plan's (``MixtureBatchPlan/fingerprint``), `samples` the
    /// epoch size, `max_id` the largest of the sources', and `version` 1.
    public struct MixtureInfo: Codable, Sendable, Hashable {
        /// One source, in `_source` order: the facts a checkpoint pins (``PinnedMixture/Source``,
        /// its `dataset_version` written `version` here) and what a reader of the set needs
        /// besides — the source's highest id, samples and draws per epoch.
        public struct Source: Codable, Sendable, Hashable {
            /// The source as checkpoints and remote plans pin it: name, dataset version,
            /// content fingerprint (schema, ids, version) and weight (as text: `0.6`,
            /// `repeat:2`, `choose:1000`).
            public var pinned: PinnedMixture.Source
            /// The largest sample id at the pinned version.
            public var maxId: Int64
            /// Samples of the plan's split at the pinned version.
            public var samples: Int
            /// Draws of the source per epoch.
            public var draws: Int

            /// The source's name in the mixture.
            public var name: String { pinned.name }
            /// The dataset version the source was pinned to.
            public var version: Int { pinned.datasetVersion }
            /// The source's content fingerprint (schema, ids, version).
            public var fingerprint: String { pinned.fingerprint }
            /// The source's weight.
            public var weight: MixtureWeight { pinned.weight }

            /// `pinned` with its highest id, samples and draws per epoch.
            public init(pinned: PinnedMixture.Source, maxId: Int64, samples: Int, draws: Int) {
                self.pinned = pinned
                self.maxId = maxId
                self.samples = samples
                self.draws = draws
            }

            // The manifest's members, flat: `name`, `version`, `max_id`, `samples`,
            // `fingerprint`, `weight`, `draws`, as sets written before this type held a
            // `PinnedMixture.Source` have them.
            private enum CodingKeys: String, CodingKey {
                case name, version, maxId, samples, fingerprint, weight, draws
            }

            /// Reads the manifest's flat members.
            public init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                pinned = PinnedMixture.Source(
                    name: try container.decode(String.self, forKey: .name), datasetVersion: try container.decode(Int.self, forKey: .version),
                    fingerprint: try container.decode(String.self, forKey: .fingerprint), weight: try container.decode(MixtureWeight.self, forKey: .weight))
                maxId = try container.decode(Int64.self, forKey: .maxId)
                samples = try container.decode(Int.self, forKey: .samples)
                draws = try container.decode(Int.self, forKey: .draws)
            }

            /// Writes the manifest's flat members.
            public func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(pinned.name, forKey: .name)
                try container.encode(pinned.datasetVersion, forKey: .version)
                try container.encode(maxId, forKey: .maxId)
                try container.encode(samples, forKey: .samples)
                try container.encode(pinned.fingerprint, forKey: .fingerprint)
                try container.encode(pinned.weight, forKey: .weight)
                try container.encode(draws, forKey: .draws)
            }
        }

        /// Draws per epoch.
        public var epochSize: Int
        /// The ``MixturePlan/fingerprint``: names, sizes, contents, weights, epoch size, seed.
        public var fingerprint: String
        /// The sources, in `_source` order.
        public var sources: [Source]

        /// The member describing `plan`.
        public init(plan: MixtureBatchPlan) {
            epochSize = plan.mixture.epochSize
            fingerprint = plan.mixture.fingerprint
            sources = zip(plan.pinned.sources, plan.sources).enumerated().map { index, source in
                Source(pinned: source.0, maxId: source.1.maxID, samples: source.1.ids.count, draws: plan.mixture.counts[index])
            }
        }

        /// What checkpoints record of these sources.
        public var pinned: PinnedMixture { PinnedMixture(epochSize: epochSize, sources: sources.map(\.pinned)) }

        /// The mixture plan these sources and `seed` make (the manifest was validated).
        public func mixturePlan(seed: UInt64) throws -> MixturePlan {
            try MixturePlan(
                sources: sources.map { MixtureSource(name: $0.name, sampleCount: $0.samples, fingerprint: $0.fingerprint, weight: $0.weight) },
                epochSize: sources.first?.weight.isRelative == true ? epochSize : nil, seed: seed)
        }

        /// The manifest's `dataset` member for a mixture plan of `fingerprint`.
        func datasetInfo(fingerprint: String) -> DatasetInfo {
            DatasetInfo(version: 1, maxId: sources.map(\.maxId).max() ?? 1, samples: epochSize, fingerprint: fingerprint)
        }

        /// The most sources a manifest may list: a batch's seek costs O(sources²).
        static let maxSources = 1024

        /// The member's values against each other and the manifest: sources named once, each
        /// with a version, samples within its ids and a digest; the draws and fingerprint that
        /// the sources, weights and the plan's seed make; `dataset` as a mixture's; and epoch
        /// numbers × epoch size within an Int, so no draw's arithmetic can overflow.
        func validate(manifest: ShardManifest, refuse: (String) -> MBDataError) throws {
            guard !sources.isEmpty, sources.count <= Self.maxSources else {
                throw refuse("mixture.sources lists \(sources.count) sources, not 1…\(Self.maxSources)")
            }
            for (index, source) in sources.enumerated() {
                guard source.version >= 1, source.samples >= 1, source.maxId >= Int64(source.samples), ShardManifest.isDigest(source.fingerprint),
                    source.draws >= 0
                else {
                    throw refuse("mixture.sources[\(index)] ('\(source.name.prefix(64))') needs version ≥ 1, samples in 1…max_id, an xxh64 fingerprint and draws ≥ 0")
                }
            }
            let plan = manifest.plan
            guard epochSize >= 1, let end = CheckedSize.sum(plan.firstEpoch, plan.epochs), CheckedSize.product(end, epochSize) != nil else {
                throw refuse("mixture.epoch_size \(epochSize) is not ≥ 1, or epochs up to \(plan.firstEpoch) + \(plan.epochs) of it overflow")
            }
            let rebuilt: MixturePlan
            do {
                rebuilt = try mixturePlan(seed: plan.parameters.seed)
            } catch let error as MBDataError {
                throw refuse("mixture: \(error.message)")
            }
            guard rebuilt.counts == sources.map(\.draws), rebuilt.epochSize == epochSize, rebuilt.fingerprint == fingerprint else {
                throw refuse("mixture: its sources, weights and seed make draws \(rebuilt.counts) in an epoch of \(rebuilt.epochSize) and fingerprint \(rebuilt.fingerprint); it says \(sources.map(\.draws)), \(epochSize), \(fingerprint)")
            }
            // A packed mixture's plan fingerprint folds in its packing spec (format revision 1.3).
            let mixturePlan = MixtureBatchPlan.fingerprint(mixture: fingerprint, parameters: plan.parameters)
            let packedPlan: String?
            do {
                packedPlan = try manifest.packing.map { try $0.spec().fingerprint(packing: mixturePlan) }
            } catch let error as MBDataError {
                throw refuse("packing: \(error.message)")
            }
            let expected = datasetInfo(fingerprint: packedPlan ?? mixturePlan)
            guard manifest.dataset == expected else {
                throw refuse("dataset of a mixture must be version 1, samples = mixture.epoch_size, max_id the sources' largest and the mixture plan's fingerprint \(expected.fingerprint)")
            }
        }

        /// Lines for `shard` and `inspect`: the epoch, then one line per source.
        public var summaryLines: [String] {
            let width = sources.map(\.name.count).max() ?? 0
            return ["mixture  \(sources.count) sources, \(epochSize) draws per epoch, \(fingerprint)"]
                + sources.enumerated().map { index, source in
                    "  _source \(index)  " + source.name.padding(toLength: width + 2, withPad: " ", startingAt: 0)
                        + "weight \(source.weight), \(source.draws) draws per epoch of \(source.samples) samples; version \(source.version), \(source.fingerprint)"
                }
        }
    }
}
