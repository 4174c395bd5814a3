/// What packing did to its input: what `shard`, `inspect` and `/metrics` report.
public struct PackingStatistics: Sendable, Hashable, Codable {
    /// Tokens per row.
    public var rowLength: Int
    /// Input samples seen.
    public var samples = 0
    /// Samples longer than a row that were split into pieces (``OverlongPolicy/split``).
    public var splitSamples = 0
    /// Samples longer than a row that were left out (``OverlongPolicy/drop``).
    public var droppedSamples = 0
    /// Tokens of the dropped samples.
    public var droppedTokens = 0
    /// Samples without tokens, which no row can show.
    public var emptySamples = 0
    /// Tokens placed in rows (non-padding).
    public var tokens = 0
    /// Rows made.
    public var rows = 0

    /// Nothing packed yet, into rows of `rowLength` tokens.
    public init(rowLength: Int) {
        self.rowLength = rowLength
    }

    /// Padding tokens in the rows.
    public var paddingTokens: Int { rows * rowLength - tokens }

    /// Non-padding tokens over all tokens of the rows; 0 without rows.
    public var efficiency: Double { rows == 0 ? 0 : Double(tokens) / Double(rows * rowLength) }

    /// The statistics of two runs of the same packer together.
    public static func + (lhs: PackingStatistics, rhs: PackingStatistics) -> PackingStatistics {
        precondition(lhs.rowLength == rhs.rowLength, "statistics of rows of \(lhs.rowLength) and \(rhs.rowLength) tokens")
        var sum = lhs
        sum.samples += rhs.samples
        sum.splitSamples += rhs.splitSamples
        sum.droppedSamples += rhs.droppedSamples
        sum.droppedTokens += rhs.droppedTokens
        sum.emptySamples += rhs.emptySamples
        sum.tokens += rhs.tokens
        sum.rows += rhs.rows
        return sum
    }
}
