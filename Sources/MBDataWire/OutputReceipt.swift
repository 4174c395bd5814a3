/// The answer to a committed outputs submission, `POST /v1/cursors/{id}/outputs`
/// (schemas/serve-protocol.md §8): `{"cursor", "batch", "rows", "finished", "batches"}`.
public struct OutputReceipt: Codable, Sendable, Equatable {
    /// The inference cursor.
    public var cursor: String
    /// The batch whose outputs were committed.
    public var batch: Int
    /// Real (non-padding) rows written.
    public var rows: Int
    /// The job's batches committed, this one included.
    public var finished: Int
    /// The job's batches in all.
    public var batches: Int

    /// A receipt from its fields.
    public init(cursor: String, batch: Int, rows: Int, finished: Int, batches: Int) {
        self.cursor = cursor
        self.batch = batch
        self.rows = rows
        self.finished = finished
        self.batches = batches
    }
}
