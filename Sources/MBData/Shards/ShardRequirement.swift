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
        if let wanted = requirement.plan {
            // A packed set's fingerprint folds in its packing, so it never matches an unpacked plan; say why.
            if let packing {
                throw refuse(
                    "the shards hold batches of \(packing.field) packed into rows of \(packing.rowLength) tokens; the plan asked for is not packed",
                    parameter: "packing")
            }
            guard dataset.fingerprint == wanted.fingerprint else {
                throw refuse(
                    "stale shards: made from dataset version \(dataset.version) (\(dataset.fingerprint)), asked for version \(wanted.datasetVersion) (\(wanted.fingerprint))")
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

    /// Whether the set serves `requirement` (``check(serves:source:)`` without the reason).
    public func serves(_ requirement: ShardRequirement) -> Bool { (try? check(serves: requirement, source: "")) != nil }

    private static func describe(_ padLengths: [String: Int]) -> String {
        padLengths.isEmpty ? "none" : padLengths.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
    }
}
