/// The samples of one step of a plan: for each rank asked about, each row's samples (a
/// packed row's segments, with their layout), in rank, row and column order.
public struct BatchLineage: Sendable, Hashable, Codable {
    /// The epoch.
    public var epoch: Int
    /// The global batch within the epoch.
    public var step: Int
    /// Global batches of the epoch (a packed plan's epochs differ).
    public var batchesPerEpoch: Int
    /// The ranks described, in order.
    public var ranks: [Int]
    /// Rows of each rank's batch.
    public var rowsPerRank: Int
    /// Tokens per packed row; nil unpacked.
    public var rowLength: Int?
    /// Rows without any sample (a padded tail).
    public var paddingRows: Int
    /// The samples, in rank, row and column order.
    public var entries: [LineageEntry]

    /// A step's lineage from its fields.
    public init(
        epoch: Int, step: Int, batchesPerEpoch: Int, ranks: [Int], rowsPerRank: Int, rowLength: Int?, paddingRows: Int, entries: [LineageEntry]
    ) {
        self.epoch = epoch
        self.step = step
        self.batchesPerEpoch = batchesPerEpoch
        self.ranks = ranks
        self.rowsPerRank = rowsPerRank
        self.rowLength = rowLength
        self.paddingRows = paddingRows
        self.entries = entries
    }

    /// Non-padding tokens over all tokens of the described rows; nil unpacked.
    public var efficiency: Double? {
        guard let rowLength, !ranks.isEmpty, rowsPerRank > 0 else { return nil }
        let tokens = entries.reduce(0) { $0 + ($1.length ?? 0) }
        return Double(tokens) / Double(ranks.count * rowsPerRank * rowLength)
    }
}
