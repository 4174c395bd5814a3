/// Where a packed stream stands: enough to restart it exactly at any row.
///
/// ``SequencePacker`` packs each window of its input on its own, so the rows still to come
/// depend only on the window the next row belongs to and how many of that window's rows
/// were emitted: restarting repacks that one window (its sample lengths) and skips them.
public struct PackingCursor: Sendable, Hashable, Codable {
    /// Rows emitted before this point: the number of the next row.
    public var row: Int
    /// The input position where the window holding the next row starts (a multiple of the
    /// window size; the input's count at the end).
    public var sample: Int
    /// Rows of that window already emitted.
    public var rowInWindow: Int

    /// The cursor at row `row`: window starting at `sample`, `rowInWindow` of its rows done.
    public init(row: Int, sample: Int, rowInWindow: Int) {
        self.row = row
        self.sample = sample
        self.rowInWindow = rowInWindow
    }

    /// The start of the input.
    public static let start = PackingCursor(row: 0, sample: 0, rowInWindow: 0)
}
