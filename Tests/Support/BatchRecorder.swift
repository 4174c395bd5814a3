import MBData

/// One delivered row of a mixture batch (or segment of a packed one): its `_source`, `_id`
/// and `value`.
public struct MixtureRow: Hashable, Sendable {
    /// The row's source (-1 on a padding row).
    public let source: Int32
    /// The row's sample id.
    public let id: Int64
    /// The row's `value` field (0 when the batch has none).
    public let value: Int64

    /// The rows of `batch`, in order (none without `_source`).
    public static func rows(of batch: Batch) -> [MixtureRow] {
        let sources = batch["_source"]?.int64s() ?? []
        let ids = batch["_id"]?.int64s() ?? []
        let values = batch["value"]?.int64s() ?? []
        return sources.indices.map { MixtureRow(source: Int32(sources[$0]), id: ids[$0], value: values.indices.contains($0) ? values[$0] : 0) }
    }
}

/// A trainer that keeps each delivered batch's bytes of `fields` (absent ones add nothing)
/// and its mixture rows, checks how `_source` is carried, and asks the loader to stop after
/// `stopAfter` calls (calls already running still finish, and are kept).
public actor BatchRecorder: Trainer {
    /// Each delivered batch's bytes of `fields`, concatenated.
    public private(set) var bytes: [PlanItem: [UInt8]] = [:]
    /// Each delivered batch's mixture rows.
    public private(set) var rows: [PlanItem: [MixtureRow]] = [:]
    /// Whether every batch's `_source` was int32.
    public private(set) var sourcesAreInt32 = true
    /// Whether every batch's `_source`, when it has one, had `_id`'s shape (per segment when packed).
    public private(set) var sourcesPerSegment = true
    let stopAfter: Int?
    let fields: [String]

    /// A recorder of `fields` that stops the loader after `stopAfter` calls.
    public init(
        stopAfter: Int? = nil,
        fields: [String] = ["tokens", "tokens.offsets", "segment_ids", "positions", "_id", "_source", "value", "vec"]
    ) {
        self.stopAfter = stopAfter
        self.fields = fields
    }

    /// Records the batch.
    public func train(_ batch: Batch, context: TrainingContext) async throws {
        let item = PlanItem(epoch: batch.epoch, batch: batch.index, rank: batch.rank)
        if batch["_source"]?.dtype != .int32 { sourcesAreInt32 = false }
        if let sources = batch["_source"], sources.shape != batch["_id"]?.shape { sourcesPerSegment = false }
        rows[item] = MixtureRow.rows(of: batch)
        bytes[item] = fields.flatMap { batch[$0]?.bytes ?? [] }
        if let stopAfter, bytes.count == stopAfter { context.stop() }
    }

    /// The real rows of each epoch, in stream order (rank slices of a batch in rank order).
    public func epochs() -> [Int: [MixtureRow]] {
        var out: [Int: [MixtureRow]] = [:]
        for item in rows.keys.sorted(by: { ($0.epoch, $0.batch, $0.rank) < ($1.epoch, $1.batch, $1.rank) }) {
            out[item.epoch, default: []] += rows[item]!.filter { $0.source >= 0 }
        }
        return out
    }
}
