/// One packed row: segments laid end to end from column 0, then padding to the row length.
public struct PackedRow: Sendable, Hashable, Codable {
    /// The segments in column order; segment j has segment id j + 1.
    public private(set) var segments: [PackedSegment]
    /// Non-padding tokens: the segments' lengths summed.
    public private(set) var tokenCount: Int

    package init(segments: [PackedSegment]) {
        self.segments = segments
        tokenCount = segments.reduce(0) { $0 + $1.length }
    }

    mutating func append(_ segment: PackedSegment) {
        segments.append(segment)
        tokenCount += segment.length
    }
}
