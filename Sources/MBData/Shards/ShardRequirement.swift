/// What a reader asks of a shard set. ``ShardManifest/check(serves:source:)`` is the one
/// rule by which the loader over shards, `serve --spool`, `verify --dataset` and `shard`'s
/// up-to-date check decide whether a set serves a plan.
public struct ShardRequirement: Sendable {
    /// The plan parameters the set must have been written with.
    public var parameters: PlanParameters
    /// The dataset plan (fingerprint, version, samples, highest id) the set must come from;
    /// nil when the reader has no dataset (a loader over shards alone).
    public var plan: DatasetPlan?
    /// The dataset's schema, when the reader has it.
    public var schema: Schema?
    /// Epochs the set must hold; nil for any.
    public var epochs: Range<Int>?
    /// Padded lengths the set's batches must have been written with; nil for any.
    public var padLengths: [String: Int]?
    /// The mixture the set must hold; nil for any set (one dataset's or a mixture's) when
    /// ``plan`` is nil too.
    public var mixture: MixtureRequirement?

    /// What a reader asks of a mixture set.
    public enum MixtureRequirement: Sendable, Hashable {
        /// Exactly these sources, at these versions and contents, with these weights and
        /// epoch size (a reader that resolved the mixture from its datasets).
        case pinned(PinnedMixture)
        /// Sources of these names with these weights, in this order, and the epoch size when
        /// given (a reader without the datasets).
        case weighted(names: [String], weights: [MixtureWeight], epochSize: Int?)
    }

    /// The packing the set's batches must have been made with; nil for unpacked batches
    /// (checked when ``plan`` is given).
    public private(set) var packing: PackingSpec?
    /// The packed plan's fingerprint, which a packed set's manifest carries.
    private var packedFingerprint: String?

    /// A requirement for `parameters` alone, without a dataset.
    public init(parameters: PlanParameters, epochs: Range<Int>? = nil, padLengths: [String: Int]? = nil) {
        self.parameters = parameters
        self.epochs = epochs
        self.padLengths = padLengths
    }

    /// A requirement for exactly `plan` (its parameters, dataset version and content).
    public init(plan: DatasetPlan, schema: Schema? = nil, epochs: Range<Int>? = nil, padLengths: [String: Int]? = nil) {
        self.init(parameters: plan.parameters, epochs: epochs, padLengths: padLengths)
        self.plan = plan
        self.schema = schema
    }

    /// A requirement for exactly the packed `plan`: its base plan's parameters, dataset
    /// version and content, and batches packed by its spec.
    public init(plan: PackedPlan, schema: Schema? = nil, epochs: Range<Int>? = nil) {
        self.init(plan: plan.base, schema: schema, epochs: epochs)
        packing = plan.spec
        packedFingerprint = plan.fingerprint
    }

    /// A requirement for exactly the packed mixture `plan`: its sources pinned as they are,
    /// its parameters, and batches packed by its spec.
    public init(plan: PackedMixturePlan, epochs: Range<Int>? = nil) {
        self.init(parameters: plan.parameters, epochs: epochs)
        mixture = .pinned(plan.base.pinned)
        packing = plan.spec
        packedFingerprint = plan.fingerprint
    }

    /// Asks for batches packed by `spec` (a reader without the set's plan: a mixture set
    /// read without its datasets, a loader over shards alone); nil asks for unpacked batches.
    public mutating func requirePacking(_ spec: PackingSpec?) {
        packing = spec
        packedFingerprint = nil
        checksPackingWithoutPlan = true
    }

    /// Whether a set's packing is checked when ``plan`` is nil: set by the packed mixture
    /// requirement and ``requirePacking(_:)``; such a reader otherwise reads the set's batches
    /// as they are.
    private var checksPackingWithoutPlan = false

    /// Refuses a set whose packing is not the one asked for (when one was asked), or whose
    /// packed plan is not the one asked for, for a reader without ``plan``.
    func checkPackingWithoutPlan(of manifest: ShardManifest, refuse: (String) -> MBDataError) throws {
        guard checksPackingWithoutPlan || packedFingerprint != nil else { return }
        let fingerprint = try fingerprint(plain: manifest.dataset.fingerprint, in: manifest, refuse: refuse)
        guard manifest.dataset.fingerprint == fingerprint else {
            throw refuse("the shards hold another packed mixture plan (\(manifest.dataset.fingerprint)); asked for \(fingerprint)")
        }
    }

    /// The fingerprint a set's manifest must carry for `plan` (the base plan's, or the packed
    /// plan's), after refusing a set whose packing is not the one asked for.
    func fingerprint(of plan: DatasetPlan, in manifest: ShardManifest, refuse: (String) -> MBDataError) throws -> String {
        try fingerprint(plain: plan.fingerprint, in: manifest, refuse: refuse)
    }

    /// `plain` (an unpacked plan's fingerprint) or the packed plan's, after refusing a set
    /// whose packing is not the one asked for; a reader without the packed plan takes the
    /// set's own.
    private func fingerprint(plain: String, in manifest: ShardManifest, refuse: (String) -> MBDataError) throws -> String {
        switch (manifest.packing, packing) {
        case (nil, nil):
            return plain
        case (let have?, nil):
            throw refuse("the shards hold batches of \(have.field) packed into rows of \(have.rowLength) tokens; the plan asked for is not packed")
        case (nil, let asked?):
            throw refuse("the shards hold unpacked batches; the plan asked for packs \(asked.field) into rows of \(asked.rowLength) tokens")
        case (let have?, let asked?):
            guard (try? have.spec()) == asked, let packedFingerprint = packedFingerprint ?? (plan == nil ? manifest.dataset.fingerprint : nil) else {
                throw refuse(
                    "the shards hold \(have.field) packed into rows of \(have.rowLength) (window \(have.window), overlong \(have.overlong.rawValue)); asked for \(asked.field) into rows of \(asked.rowLength) (window \(asked.packer.window), overlong \(asked.packer.overlong.rawValue))"
                )
            }
            return packedFingerprint
        }
    }
}

extension ShardManifest {
    /// Refuses a set that does not serve `requirement`, naming what differs: a plan
    /// parameter (seed, batchSize, split, tail, shuffle, world), the dataset version or
    /// content, the schema, the epochs, or the padded lengths. Throws `.invalidDataset`.
    public func check(serves requirement: ShardRequirement, source: String) throws {
        func refuse(_ message: String, parameter: String? = nil) -> MBDataError {
            MBDataError(.invalidDataset, message, source: source, parameter: parameter)
        }
        if let (setting, written, asked) = plan.parameters.differences(from: requirement.parameters).first {
            throw refuse(
                "the shards were written with \(setting) \(written), asked for \(setting) \(asked)", parameter: "PlanParameters.\(setting)")
        }
        if let wanted = requirement.mixture {
            try check(serves: wanted, refuse: refuse)
        }
        if requirement.plan == nil {
            try requirement.checkPackingWithoutPlan(of: self) { refuse($0, parameter: "packing") }
        }
        if let wanted = requirement.plan {
            if let mixture {
                throw refuse(
                    "the shards hold a mixture of \(mixture.sources.map(\.name).joined(separator: ", ")); the plan asked for reads one dataset",
                    parameter: "mixture")
            }
            // A packed set's fingerprint folds in its packing, so it never matches a plan packed otherwise or not at all; say why.
            let fingerprint = try requirement.fingerprint(of: wanted, in: self) { refuse($0, parameter: "packing") }
            guard dataset.fingerprint == fingerprint else {
                throw refuse(
                    "stale shards: made from dataset version \(dataset.version) (\(dataset.fingerprint)), asked for version \(wanted.datasetVersion) (\(fingerprint))")
            }
            guard dataset.version == wanted.datasetVersion, dataset.samples == wanted.ids.count, dataset.maxId == wanted.maxID else {
                throw refuse(
                    "the manifest says dataset version \(dataset.version), \(dataset.samples) samples, ids ≤ \(dataset.maxId); its fingerprint is that of version \(wanted.datasetVersion), \(wanted.ids.count) samples, ids ≤ \(wanted.maxID)")
            }
        }
        if let wanted = requirement.schema, wanted != schema {
            throw refuse("the manifest's schema differs from the dataset's: \(schema.canonicalJSON()) vs \(wanted.canonicalJSON())")
        }
        if let epochs = requirement.epochs {
            let have = plan.firstEpoch..<(plan.firstEpoch + plan.epochs)
            guard have.lowerBound <= epochs.lowerBound, epochs.upperBound <= have.upperBound else {
                throw refuse("the shards hold epochs \(have), asked for \(epochs)", parameter: "epochs")
            }
        }
        if let padLengths = requirement.padLengths, padLengths != plan.padLengths {
            throw refuse(
                "the shards were written with padLengths \(Self.describe(plan.padLengths)), asked for \(Self.describe(padLengths))",
                parameter: "padLengths")
        }
    }

    /// Refuses a set that is not the mixture `wanted`, naming the source, weight, version or
    /// epoch size that differs.
    private func check(serves wanted: ShardRequirement.MixtureRequirement, refuse: (String, String?) -> MBDataError) throws {
        let asked: PinnedMixture
        switch wanted {
        case .pinned(let pinned):
            asked = pinned
        case .weighted(let names, let weights, let epochSize):
            // Only what the reader knows is compared: versions and contents are the set's own.
            let held = mixture?.sources ?? []
            asked = PinnedMixture(
                epochSize: epochSize ?? mixture?.epochSize ?? 0,
                sources: zip(names, weights).map { name, weight in
                    let same = held.first { $0.name == name }
                    return PinnedMixture.Source(name: name, datasetVersion: same?.version ?? 0, fingerprint: same?.fingerprint ?? "", weight: weight)
                })
        }
        guard let mixture else {
            throw refuse(
                "the shards hold batches of one dataset; a mixture of \(asked.sources.map(\.name).joined(separator: ", ")) was asked for", "mixture")
        }
        if let difference = mixture.pinned.difference(from: asked) {
            throw refuse("the shards hold another mixture: it \(difference)", "mixture")
        }
    }

    /// Whether the set serves `requirement` (``check(serves:source:)`` without the reason).
    public func serves(_ requirement: ShardRequirement) -> Bool { (try? check(serves: requirement, source: "")) != nil }

    private static func describe(_ padLengths: [String: Int]) -> String {
        padLengths.isEmpty ? "none" : padLengths.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
    }
}
