/// How one epoch of a ``PackedPlan`` packs: the rows each window makes, kept as prefix sums
/// (O(windows) memory) so that any row is found in O(log windows) and restarted by repacking
/// one window.
public struct PackedEpochLayout: Sendable, Hashable {
    /// The epoch.
    public let epoch: Int
    /// Rows before window w, for w in 0...windows: the last entry is the epoch's row count.
    public let rowsBeforeWindow: [Int]
    /// What packing the whole epoch did: samples split and dropped, tokens, rows, efficiency.
    public let statistics: PackingStatistics

    /// Rows the epoch packs into.
    public var rowCount: Int { rowsBeforeWindow.last ?? 0 }

    /// The cursor at row `row` of the epoch (`row` in `0...rowCount`, a precondition), found
    /// by binary search over the windows' row counts.
    public func cursor(atRow row: Int, window: Int, sampleCount: Int) -> PackingCursor {
        precondition(row >= 0 && row <= rowCount, "row \(row) is outside 0...\(rowCount)")
        if row == rowCount { return PackingCursor(row: row, sample: sampleCount, rowInWindow: 0) }
        var low = 0
        var high = rowsBeforeWindow.count - 2
        while low < high {
            let middle = (low + high + 1) / 2
            if rowsBeforeWindow[middle] <= row { low = middle } else { high = middle - 1 }
        }
        return PackingCursor(row: row, sample: low * window, rowInWindow: row - rowsBeforeWindow[low])
    }
}
