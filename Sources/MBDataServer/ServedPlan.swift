import MBData

/// The plan a request resolves to: a dataset plan, and the packing of its rows when the
/// request names one (`pack=FIELD:L`). Cursors, pins, headers and producers key on it.
struct ServedPlan: Sendable {
    /// The dataset plan; for a packed plan, the unpacked plan it packs.
    var plan: DatasetPlan
    /// The packed plan; nil for unpacked batches.
    var packed: PackedPlan?
    /// The cursor document's `batches_per_epoch`: the plan's, or for a packed plan the most
    /// any epoch can have (``PackedPlan/mostBatchesPerEpoch``, computed once).
    let batchesPerEpoch: Int

    /// An unpacked plan.
    init(_ plan: DatasetPlan) {
        self.plan = plan
        packed = nil
        batchesPerEpoch = plan.plan.batchesPerEpoch
    }

    /// A packed plan.
    init(packed: PackedPlan) {
        plan = packed.base
        self.packed = packed
        batchesPerEpoch = packed.mostBatchesPerEpoch
    }

    /// The fingerprint cursors and headers carry: the packed plan's covers its spec.
    var fingerprint: String { packed?.fingerprint ?? plan.fingerprint }
    /// The dataset version the plan is pinned to.
    var datasetVersion: Int { plan.datasetVersion }
    /// The plan's parameters.
    var parameters: PlanParameters { plan.parameters }
    /// The packing spec; nil for unpacked batches.
    var packing: PackingSpec? { packed?.spec }
}
