import MBDataTraining

/// What a consumer has acknowledged of one plan (schemas/serve-protocol.md §2): the
/// document `GET /v1/cursors/{id}` and every ack return, `PUT` restores, and the daemon's
/// state database stores. Its epochs are the loader checkpoint's own
/// ``LoaderCheckpoint/EpochCursor``; on the wire an epoch's finished batches above the
/// watermark are called `acked_above`.
public struct CursorState: Codable, Sendable, Equatable {
    /// The cursor's id, derived by the daemon from the fields below.
    public var cursor: String
    /// The dataset's name as the daemon serves it.
    public var dataset: String
    /// The consumer group.
    public var group: String
    /// How the consumer takes its batches.
    public var mode: StreamMode
    /// The consumer's rank of `plan.world`.
    public var rank: Int
    /// The replica of a replicate group; 0 otherwise.
    public var replica: Int
    /// The plan's parameters.
    public var plan: PlanParameters
    /// The fingerprint of the plan the cursor was made for.
    public var planFingerprint: String
    /// The dataset version the plan is pinned to.
    public var datasetVersion: Int
    /// Batches per epoch for each rank. For a packed plan, whose epochs differ in rows, the
    /// most batches any epoch can have (every sample's pieces in rows of their own); an
    /// epoch's own count is the `MBData-Batches-Per-Epoch` header of its streams.
    public var batchesPerEpoch: Int
    /// The progress of each epoch with acks, in epoch order.
    public var epochs: [LoaderCheckpoint.EpochCursor]
    /// The output an inference cursor (mode ``StreamMode/infer``) writes; nil for every
    /// other cursor, and then absent from the document.
    public var output: String?
    /// How the plan packs a variable-length field into rows; nil (absent from the
    /// document) for unpacked batches.
    public var packing: PackingSpec?
    /// The sources of a mixture plan (protocol 1.2): names, weights, pinned versions and
    /// contents, and the epoch size; nil (absent from the document) for one dataset. A
    /// mixture cursor's ``dataset`` is the request's `mix` text and its ``datasetVersion`` 1.
    public var mixture: PinnedMixture?

    /// A cursor state from its fields.
    public init(
        cursor: String, dataset: String, group: String, mode: StreamMode, rank: Int, replica: Int, plan: PlanParameters,
        planFingerprint: String, datasetVersion: Int, batchesPerEpoch: Int, epochs: [LoaderCheckpoint.EpochCursor], output: String? = nil,
        packing: PackingSpec? = nil, mixture: PinnedMixture? = nil
    ) {
        self.cursor = cursor
        self.dataset = dataset
        self.group = group
        self.mode = mode
        self.rank = rank
        self.replica = replica
        self.plan = plan
        self.planFingerprint = planFingerprint
        self.datasetVersion = datasetVersion
        self.batchesPerEpoch = batchesPerEpoch
        self.epochs = epochs
        self.output = output
        self.packing = packing
        self.mixture = mixture
    }

    private enum CodingKeys: String, CodingKey {
        case cursor, dataset, group, mode, rank, replica, plan, epochs, output, packing, mixture
        case planFingerprint = "plan_fingerprint"
        case datasetVersion = "dataset_version"
        case batchesPerEpoch = "batches_per_epoch"
    }

    /// One epoch's progress as the wire spells it.
    private struct EpochRecord: Codable {
        var epoch: Int
        var lowWatermark: Int
        var ackedAbove: [Int]

        private enum CodingKeys: String, CodingKey {
            case epoch
            case lowWatermark = "low_watermark"
            case ackedAbove = "acked_above"
        }
    }

    /// Decodes the document; every field but `output`, `packing` and `mixture` is required.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        cursor = try container.decode(String.self, forKey: .cursor)
        dataset = try container.decode(String.self, forKey: .dataset)
        group = try container.decode(String.self, forKey: .group)
        mode = try container.decode(StreamMode.self, forKey: .mode)
        rank = try container.decode(Int.self, forKey: .rank)
        replica = try container.decode(Int.self, forKey: .replica)
        plan = try container.decode(PlanBody.self, forKey: .plan).parameters
        planFingerprint = try container.decode(String.self, forKey: .planFingerprint)
        datasetVersion = try container.decode(Int.self, forKey: .datasetVersion)
        batchesPerEpoch = try container.decode(Int.self, forKey: .batchesPerEpoch)
        epochs = try container.decode([EpochRecord].self, forKey: .epochs).map {
            LoaderCheckpoint.EpochCursor(epoch: $0.epoch, lowWatermark: $0.lowWatermark, finishedAbove: $0.ackedAbove)
        }
        output = try container.decodeIfPresent(String.self, forKey: .output)
        do {
            packing = try container.decodeIfPresent(PackingBody.self, forKey: .packing)?.spec()
        } catch let error as MBDataError {
            throw DecodingError.dataCorruptedError(forKey: .packing, in: container, debugDescription: error.message)
        }
        mixture = try container.decodeIfPresent(MixtureBody.self, forKey: .mixture)?.pinned
    }

    /// Encodes the document as schemas/serve-protocol.md §2 shows it.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(cursor, forKey: .cursor)
        try container.encode(dataset, forKey: .dataset)
        try container.encode(group, forKey: .group)
        try container.encode(mode, forKey: .mode)
        try container.encode(rank, forKey: .rank)
        try container.encode(replica, forKey: .replica)
        try container.encode(PlanBody(plan), forKey: .plan)
        try container.encode(planFingerprint, forKey: .planFingerprint)
        try container.encode(datasetVersion, forKey: .datasetVersion)
        try container.encode(batchesPerEpoch, forKey: .batchesPerEpoch)
        try container.encode(
            epochs.map { EpochRecord(epoch: $0.epoch, lowWatermark: $0.lowWatermark, ackedAbove: $0.finishedAbove) }, forKey: .epochs)
        try container.encodeIfPresent(output, forKey: .output)
        try container.encodeIfPresent(packing.map(PackingBody.init), forKey: .packing)
        try container.encodeIfPresent(mixture.map(MixtureBody.init), forKey: .mixture)
    }
}
