/// What ``SequencePacker`` does with a sample longer than a row.
public enum OverlongPolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// Cut it into row-length pieces and a shorter last piece, each its own segment (positions
    /// restart at 0 in every piece); the full pieces fill consecutive rows of their own.
    case split
    /// Leave it out; the samples and tokens dropped are counted.
    case drop
}
