/// Batches that come from another process — an `mbdata serve` daemon (the MBDataClient
/// module implements this for a serve URL). `MultiBatchLoader(remote:…)` runs against it
/// exactly as against a local dataset: the same checkpoint, the same exactly-once rule.
public protocol RemoteBatchSource: Sendable {
    /// Resolves the plan of `configuration` and puts the remote cursor where `checkpoint`
    /// says (nil: the plan starts over).
    func prepare(_ configuration: MultiBatchLoader.Configuration, resumingFrom checkpoint: LoaderCheckpoint?) async throws -> RemotePlan

    /// Delivers, in batch order, every batch of `epoch` for `configuration.rank` not yet
    /// finished, then returns. `deliver` suspends while the loader is busy (back-pressure).
    func stream(
        epoch: Int, configuration: MultiBatchLoader.Configuration, deliver: @Sendable (ReadyBatch) async throws -> Void
    ) async throws

    /// A trainer finished this batch: the remote cursor advances.
    func finished(epoch: Int, batch: Int, configuration: MultiBatchLoader.Configuration) async throws
}

/// What a remote source says of the plan it serves.
public struct RemotePlan: Sendable, Hashable {
    /// The plan fingerprint (MBData's `DatasetPlan.fingerprint`) the source serves.
    public var fingerprint: String
    /// The dataset version the remote plan is pinned to.
    public var datasetVersion: Int
    /// Global batches per epoch of the remote plan.
    public var batchesPerEpoch: Int
    /// The sources of a mixture plan (then `datasetVersion` is 1); nil for one dataset.
    public var mixture: PinnedMixture?

    /// What ``RemoteBatchSource/prepare(_:resumingFrom:)`` returns.
    public init(fingerprint: String, datasetVersion: Int, batchesPerEpoch: Int, mixture: PinnedMixture? = nil) {
        self.fingerprint = fingerprint
        self.datasetVersion = datasetVersion
        self.batchesPerEpoch = batchesPerEpoch
        self.mixture = mixture
    }
}
