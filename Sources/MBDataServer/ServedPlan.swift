import MBData

/// The plan a request resolves to: a dataset plan, the packing of its rows when the
/// request names one (`pack=FIELD:L`), or a mixture of datasets (`mix=…`). Cursors, pins,
/// headers and producers key on it.
struct ServedPlan: Sendable {
    /// What the plan draws from.
    enum Kind: Sendable {
        /// One dataset, unpacked.
        case dataset(DatasetPlan)
        /// One dataset packed into rows.
        case packed(PackedPlan)
        /// A mixture of datasets.
        case mixture(MixtureBatchPlan)
    }

    let kind: Kind
    /// The cursor document's `batches_per_epoch`: the plan's, or for a packed plan the most
    /// any epoch can have (``PackedPlan/mostBatchesPerEpoch``, computed once).
    let batchesPerEpoch: Int

    /// An unpacked plan.
    init(_ plan: DatasetPlan) {
        kind = .dataset(plan)
        batchesPerEpoch = plan.plan.batchesPerEpoch
    }

    /// A packed plan.
    init(packed: PackedPlan) {
        kind = .packed(packed)
        batchesPerEpoch = packed.mostBatchesPerEpoch
    }

    /// A mixture plan.
    init(mixture: MixtureBatchPlan) {
        kind = .mixture(mixture)
        batchesPerEpoch = mixture.plan.batchesPerEpoch
    }

    /// The packed plan; nil for unpacked batches.
    var packed: PackedPlan? {
        guard case .packed(let packed) = kind else { return nil }
        return packed
    }

    /// The mixture plan; nil for one dataset.
    var mixture: MixtureBatchPlan? {
        guard case .mixture(let mixture) = kind else { return nil }
        return mixture
    }

    /// The fingerprint cursors and headers carry: the packed plan's covers its spec, the
    /// mixture plan's its sources' versions, contents and weights.
    var fingerprint: String {
        switch kind {
        case .dataset(let plan): plan.fingerprint
        case .packed(let packed): packed.fingerprint
        case .mixture(let mixture): mixture.fingerprint
        }
    }

    /// The dataset version the plan is pinned to; 1 for a mixture (its sources' versions are
    /// in ``MixtureBatchPlan/pinned``), as a loader's ``RemotePlan`` reports it.
    var datasetVersion: Int {
        switch kind {
        case .dataset(let plan): plan.datasetVersion
        case .packed(let packed): packed.base.datasetVersion
        case .mixture(let mixture): mixture.remotePlan.datasetVersion
        }
    }

    /// The plan's parameters.
    var parameters: PlanParameters {
        switch kind {
        case .dataset(let plan): plan.parameters
        case .packed(let packed): packed.base.parameters
        case .mixture(let mixture): mixture.parameters
        }
    }

    /// The packing spec; nil for unpacked batches.
    var packing: PackingSpec? { packed?.spec }
}
