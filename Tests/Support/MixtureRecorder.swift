import MBData

/// One delivered row of a mixture batch: its `_source`, `_id` and `value`.
public struct MixtureRow: Hashable, Sendable {
    /// The row's source (-1 on a padding row).
    public let source: Int32
    /// The row's sample id.
    public let id: Int64
    /// The row's `value` field.
    public let value: Int64

    /// The rows of `batch`, in order.
    public static func rows(of batch: Batch) -> [MixtureRow] {
        let sources = batch["_source"]?.int64s() ?? []
        let ids = batch["_id"]?.int64s() ?? []
        let values = batch["value"]?.int64s() ?? []
        return sources.indices.map { MixtureRow(source: Int32(sources[$0]), id: ids[$0], value: values[$0]) }
    }
}

/// A trainer that keeps each delivered mixture batch's rows and the bytes of `fields`, and
/// asks the loader to stop after `stopAfter` calls.
public actor MixtureRecorder: Trainer {
    /// Each delivered batch's rows.
    public private(set) var rows: [PlanItem: [MixtureRow]] = [:]
    /// Each delivered batch's bytes of `fields`.
    public private(set) var bytes: [PlanItem: [UInt8]] = [:]
    /// Whether every batch's `_source` was int32.
    public private(set) var sourcesAreInt32 = true
    let stopAfter: Int?
    let fields: [String]

    /// A recorder of `fields` (absent ones add nothing) that stops the loader after `stopAfter` calls.
    public init(stopAfter: Int? = nil, fields: [String] = ["_source", "_id", "value", "vec", "tokens", "tokens.offsets"]) {
        self.stopAfter = stopAfter
        self.fields = fields
    }

    /// Records the batch.
    public func train(_ batch: Batch, context: TrainingContext) async throws {
        let item = PlanItem(epoch: batch.epoch, batch: batch.index, rank: batch.rank)
        if batch["_source"]?.dtype != .int32 { sourcesAreInt32 = false }
        rows[item] = MixtureRow.rows(of: batch)
        bytes[item] = fields.flatMap { batch[$0]?.bytes ?? [] }
        if let stopAfter, rows.count == stopAfter { context.stop() }
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
