/// Packs variable-length samples into rows of exactly ``rowLength`` tokens, by a
/// deterministic first-fit over windows of the input order.
///
/// The input (the plan's order of samples, given by their lengths alone) is cut into windows
/// of ``window`` consecutive samples. Within a window each sample — or each piece of a split
/// one — goes to the first open row, in the order rows were opened, with room for it, and
/// opens a new row when none has; when the window ends its rows are emitted in opening order
/// and the next window starts with no open row. So rows are a pure function of the window's
/// lengths, nothing is carried between windows, and restarting at any row costs one window's
/// packing (``PackingCursor``). The last row of a window may stay part-full: the price of an
/// exact restart; a larger window fills rows better (``defaultWindow``).
///
/// Segment j of a row covers the next `length` columns; ``PackedTensors`` turns rows into
/// `tokens`, `segment_ids` (1…k, 0 = padding) and `positions` (0-based within a segment)
/// tensors, Grain's convention.
public struct SequencePacker: Sendable, Hashable, Codable {
    /// 1024 samples: on log-normal lengths with median 400 tokens into rows of 2048, rows are
    /// about 98.5% tokens (the `Pack` tests print the figure); 128 samples gives ~96.5%.
    public static let defaultWindow = 1024

    /// Tokens per row, L.
    public let rowLength: Int
    /// Samples per window, W.
    public let window: Int
    /// What happens to a sample longer than ``rowLength``.
    public let overlong: OverlongPolicy

    /// A packer into rows of `rowLength` tokens over windows of `window` samples.
    ///
    /// - Throws: `MBDataError` with `MBDataError.Code.invalidArgument` unless both are positive.
    public init(rowLength: Int, window: Int = SequencePacker.defaultWindow, overlong: OverlongPolicy = .split) throws {
        guard rowLength > 0 else { throw MBDataError(.invalidArgument, "the row length must be positive, got \(rowLength)", parameter: "rowLength") }
        guard window > 0 else { throw MBDataError(.invalidArgument, "the packing window must be positive, got \(window)", parameter: "window") }
        self.rowLength = rowLength
        self.window = window
        self.overlong = overlong
    }

    /// The packer as text for plan fingerprints and checkpoints: every parameter that changes
    /// a row.
    package var key: String { "pack-v1|\(rowLength)|\(window)|\(overlong.rawValue)" }

    /// Packs a whole input of sample lengths (negative lengths are a precondition failure).
    public func pack(_ lengths: [Int]) -> PackedRows {
        var packed = PackedRows(rows: [], statistics: PackingStatistics(rowLength: rowLength))
        for start in stride(from: 0, to: lengths.count, by: window) {
            let part = packWindow(Array(lengths[start..<min(start + window, lengths.count)]), firstSample: start)
            packed.rows += part.rows
            packed.statistics = packed.statistics + part.statistics
        }
        return packed
    }

    /// Packs one window: `lengths` of the samples at input positions `firstSample...`.
    public func packWindow(_ lengths: [Int], firstSample: Int) -> PackedRows {
        var statistics = PackingStatistics(rowLength: rowLength)
        var rows: [PackedRow] = []
        var free: [Int] = []
        for (offset, length) in lengths.enumerated() {
            precondition(length >= 0, "sample \(firstSample + offset) has a negative length")
            statistics.samples += 1
            if length == 0 {
                statistics.emptySamples += 1
                continue
            }
            if length > rowLength {
                guard overlong == .split else {
                    statistics.droppedSamples += 1
                    statistics.droppedTokens += length
                    continue
                }
                statistics.splitSamples += 1
            }
            for pieceStart in stride(from: 0, to: length, by: rowLength) {
                let piece = PackedSegment(sample: firstSample + offset, offset: pieceStart, length: min(rowLength, length - pieceStart))
                if let row = free.firstIndex(where: { $0 >= piece.length }) {
                    rows[row].append(piece)
                    free[row] -= piece.length
                } else {
                    rows.append(PackedRow(segments: [piece]))
                    free.append(rowLength - piece.length)
                }
                statistics.tokens += piece.length
            }
        }
        statistics.rows = rows.count
        return PackedRows(rows: rows, statistics: statistics)
    }

    /// Up to `count` rows from `cursor` on (fewer at the end of the input) and the cursor
    /// after them. `lengths(range)` returns the lengths of the input positions in `range`
    /// (one window at a time); the input has `sampleCount` samples.
    public func rows(
        from cursor: PackingCursor, count: Int, sampleCount: Int, lengths: (Range<Int>) throws -> [Int]
    ) rethrows -> (rows: [PackedRow], next: PackingCursor) {
        var cursor = cursor
        var rows: [PackedRow] = []
        while rows.count < count && cursor.sample < sampleCount {
            let end = min(cursor.sample + window, sampleCount)
            let windowRows = try packWindow(lengths(cursor.sample..<end), firstSample: cursor.sample).rows
            let taken = windowRows.dropFirst(cursor.rowInWindow).prefix(count - rows.count)
            rows += taken
            cursor.row += taken.count
            cursor.rowInWindow += taken.count
            if cursor.rowInWindow >= windowRows.count {
                cursor.sample = end
                cursor.rowInWindow = 0
            }
        }
        return (rows, cursor)
    }

    /// The cursor at row `row` of an input of `sampleCount` samples, found by packing the
    /// windows before it (O(row × window / rows per window) lengths read); nil past the last
    /// row. A checkpoint that keeps the cursor itself restarts in one window instead.
    public func cursor(atRow row: Int, sampleCount: Int, lengths: (Range<Int>) throws -> [Int]) rethrows -> PackingCursor? {
        precondition(row >= 0, "row \(row) is negative")
        var rowsBefore = 0
        for start in stride(from: 0, to: sampleCount, by: window) {
            let end = min(start + window, sampleCount)
            let windowRows = try packWindow(lengths(start..<end), firstSample: start).rows.count
            if row < rowsBefore + windowRows { return PackingCursor(row: row, sample: start, rowInWindow: row - rowsBefore) }
            rowsBefore += windowRows
        }
        return row == rowsBefore ? PackingCursor(row: row, sample: sampleCount, rowInWindow: 0) : nil
    }
}
