/// How a consumer takes its batches (schemas/serve-protocol.md §3).
public enum StreamMode: String, Codable, Sendable {
    /// Each rank streams its own slice of every global batch.
    case partition
    /// Several members each receive the same batches, with a cursor each.
    case replicate
    /// Consumers of a group lease batches one at a time.
    case share
    /// Consumers of an inference job lease batches one at a time and finish each by
    /// submitting its outputs (schemas/serve-protocol.md §8).
    case infer
}
