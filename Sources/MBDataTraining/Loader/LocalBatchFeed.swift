/// A source of batches prepared in this process (a live dataset, a shard set): the storage
/// side of the package implements it and plugs it into ``MultiBatchLoader``.
package protocol LocalBatchFeed: Sendable {
    /// What the plan resolved to: its fingerprint, dataset version and batches per epoch.
    var plan: RemotePlan { get }

    /// Starts preparing `items`, in order, on worker threads with bounded depth.
    func batches(_ items: [PlanItem], configuration: MultiBatchLoader.Configuration) throws -> LocalBatches
}

/// Batches being prepared: the sequence the loader consumes, and how to stop the workers
/// (returning once none of them runs) when the run ends, early or not.
package struct LocalBatches: Sendable {
    package let sequence: any AsyncSequence<Batch, any Error> & Sendable
    package let stop: @Sendable () async -> Void

    package init(_ sequence: some AsyncSequence<Batch, any Error> & Sendable, stop: @escaping @Sendable () async -> Void) {
        self.sequence = sequence
        self.stop = stop
    }
}
