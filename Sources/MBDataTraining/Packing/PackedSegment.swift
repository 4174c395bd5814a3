/// One segment of a packed row: tokens `offset..<offset + length` of one input sample.
public struct PackedSegment: Sendable, Hashable, Codable {
    /// The sample's position in the packer's input (the plan's order).
    public let sample: Int
    /// The segment's first token within the sample: 0, or a multiple of the row length for
    /// the later pieces of a split sample.
    public let offset: Int
    /// Tokens in the segment (1 through the row length).
    public let length: Int

    /// Tokens `offset..<offset + length` of input sample `sample`.
    package init(sample: Int, offset: Int, length: Int) {
        self.sample = sample
        self.offset = offset
        self.length = length
    }
}
