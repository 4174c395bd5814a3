/// One position of a mixture epoch: which sample of which source it holds.
public struct MixtureDraw: Sendable, Hashable {
    /// The source's index in ``MixturePlan/sources``.
    public let source: Int
    /// The sample's index in the source: into its ``DatasetPlan/ids``.
    public let index: Int
    /// Which pass over the source the draw belongs to (0 for the first `sampleCount` draws of
    /// the source since epoch 0, then 1, …).
    public let pass: Int
}
