/// Rows a ``SequencePacker`` made, with what the packing did to make them.
public struct PackedRows: Sendable, Hashable {
    /// The rows in emission order.
    public var rows: [PackedRow]
    /// Samples seen, split, dropped; tokens and rows made.
    public var statistics: PackingStatistics
}
